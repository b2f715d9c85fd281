"""`python -m services.registry`: replay registry.log, then serve the gRPC API and gate model.candidates until
SIGTERM."""

from __future__ import annotations

import threading

from mlops import service
from mlops.bus import KafkaBus, StopFlag, wait_for_broker
from mlops.settings import KafkaSettings

from services.registry.edge import build, run
from services.registry.settings import RegistrySettings

DEFAULT_METRICS_PORT = 9104


def main() -> int:
    settings, kafka = RegistrySettings(), KafkaSettings()
    ready = threading.Event()
    started = service.start("registry", DEFAULT_METRICS_PORT, ready.is_set)
    stop = StopFlag()
    wait_for_broker(kafka)
    app = build(settings, KafkaBus(kafka))
    ready.set()
    started.log.info("registry started", extra={"fields": {
        "grpc_port": app.grpc_port, "ops_port": started.ops_port, "topic_prefix": kafka.topic_prefix}})
    try:
        handled = run(app, settings, stop)
    finally:
        app.stop()
        started.provider.shutdown()
    started.log.info("registry stopped", extra={"fields": {"candidates": handled}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
