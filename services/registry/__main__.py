"""`python -m services.registry`: settings → logging → tracing → ops server → replay → gRPC + consume until
SIGTERM."""

from __future__ import annotations

import logging
import threading

from mlops.bus import Producer, StopFlag, wait_for_broker
from mlops.settings import KafkaSettings, TelemetrySettings
from mlops.telemetry import setup_logging, setup_tracing, start_ops_server

from services.registry.service import build, run
from services.registry.settings import RegistrySettings

DEFAULT_METRICS_PORT = 9104


def main() -> int:
    settings, kafka, telemetry = RegistrySettings(), KafkaSettings(), TelemetrySettings()
    setup_logging(telemetry)
    setup_tracing("registry", telemetry)
    log = logging.getLogger("mlops.registry")
    ready = threading.Event()
    ops_port = start_ops_server(
        telemetry.metrics_port if telemetry.metrics_port is not None else DEFAULT_METRICS_PORT, ready=ready.is_set)
    stop = StopFlag()
    wait_for_broker(kafka)
    producer = Producer(kafka, client_id="registry")
    app = build(settings, kafka, producer)
    ready.set()
    log.info("registry started", extra={"fields": {"grpc_port": app.grpc_port, "ops_port": ops_port,
                                                   "topic_prefix": kafka.topic_prefix}})
    try:
        handled = run(app, settings, kafka, stop)
    finally:
        app.stop()
    log.info("registry stopped", extra={"fields": {"candidates": handled}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
