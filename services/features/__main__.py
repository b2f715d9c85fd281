"""`python -m services.features`: the shared service start-up, then the faust worker until SIGTERM."""

from __future__ import annotations

import threading

import faust
from mlops.bus import KafkaBus, wait_for_broker
from mlops.online_store import RedisOnlineStore
from mlops.service import start
from mlops.settings import KafkaSettings, RedisSettings

from services.features.edge import build
from services.features.settings import DEFAULT_METRICS_PORT, FeaturesSettings


def main() -> int:
    settings, kafka, redis = FeaturesSettings(), KafkaSettings(), RedisSettings()
    assigned = threading.Event()
    service = start("features", DEFAULT_METRICS_PORT, ready=assigned.is_set)
    wait_for_broker(kafka)
    features = build(settings, KafkaBus(kafka), RedisOnlineStore(redis), on_assigned=assigned.set)
    service.log.info(
        "features starting",
        extra={"fields": {"app_id": settings.app_id, "events": features.events_topic,
                          "features_log": features.features_log_topic}},
    )
    worker = faust.Worker(features.app, loglevel=settings.log_level, override_logging=False)
    try:
        worker.execute_from_commandline()  # returns (via SystemExit) after SIGTERM/SIGINT and a clean stop
    finally:
        service.provider.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
