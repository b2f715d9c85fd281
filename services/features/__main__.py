"""`python -m services.features`: the shared service start-up, the definitions in force, then the faust worker until
SIGTERM."""

from __future__ import annotations

import threading
import time

import faust
from mlops.bus import KafkaBus, wait_for_broker
from mlops.definitions.store import DefinitionsFollower
from mlops.online_rebuild import ensure_rebuilt
from mlops.online_store import RedisOnlineStore
from mlops.service import freeze_survivors, start
from mlops.settings import KafkaSettings, RedisSettings

from services.features.edge import build
from services.features.settings import DEFAULT_METRICS_PORT, FeaturesSettings


def main() -> int:
    settings, kafka, redis = FeaturesSettings(), KafkaSettings(), RedisSettings()
    assigned = threading.Event()
    holder: dict[str, DefinitionsFollower] = {}

    def ready() -> bool:  # assigned partitions, a revision in force, and a live follower keeping it current
        follower = holder.get("follower")
        return assigned.is_set() and follower is not None and follower.current is not None and follower.alive()

    service = start("features", DEFAULT_METRICS_PORT, ready=ready)
    wait_for_broker(kafka)
    bus = KafkaBus(kafka)
    features = build(settings, bus, RedisOnlineStore(redis), on_assigned=assigned.set,
                     rebuild_online_store=lambda: ensure_rebuilt(bus, redis, client_id=f"{settings.app_id}-rebuild"))
    follower = holder["follower"] = DefinitionsFollower(bus, client_id=f"{settings.app_id}-definitions",
                                                        on_change=features.featurizer.reconfigure)
    follower.start(settings.definitions_timeout_s)
    waited = time.monotonic()
    while follower.current is None:  # consume nothing until there is something declared to compute
        if time.monotonic() - waited > 30:
            service.log.info("waiting for definitions (`mlops apply FILE`)")
            waited = time.monotonic()
        time.sleep(0.2)
    service.log.info(
        "features starting",
        extra={"fields": {"app_id": settings.app_id, "events": features.events_topic,
                          "features_log": features.features_log_topic, "revision": follower.current.number}},
    )
    worker = faust.Worker(features.app, loglevel=settings.log_level, override_logging=False)
    freeze_survivors()
    try:
        worker.execute_from_commandline()  # returns (via SystemExit) after SIGTERM/SIGINT and a clean stop
    finally:
        follower.stop()
        service.provider.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
