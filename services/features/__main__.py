"""`python -m services.features`: settings → logging → tracing → ops server → the faust worker until SIGTERM."""

from __future__ import annotations

import logging

import faust
from mlops.bus import wait_for_broker
from mlops.settings import KafkaSettings, RedisSettings, TelemetrySettings
from mlops.telemetry import setup_logging, setup_tracing, start_ops_server

from .app import create_app
from .settings import DEFAULT_METRICS_PORT, FeaturesSettings


def main() -> int:
    settings, kafka, redis, telemetry = FeaturesSettings(), KafkaSettings(), RedisSettings(), TelemetrySettings()
    setup_logging(telemetry)
    provider = setup_tracing("features", telemetry)
    wait_for_broker(kafka)
    features = create_app(settings, kafka, redis)
    port = start_ops_server(
        telemetry.metrics_port if telemetry.metrics_port is not None else DEFAULT_METRICS_PORT,
        ready=lambda: features.ready["assigned"],
    )
    logging.getLogger("mlops.features").info(
        "features starting",
        extra={"fields": {"ops_port": port, "app_id": settings.app_id, "events": features.events_topic,
                          "features_log": features.features_log_topic}},
    )
    worker = faust.Worker(features.app, loglevel=settings.log_level, override_logging=False)
    try:
        worker.execute_from_commandline()  # returns (via SystemExit) after SIGTERM/SIGINT and a clean stop
    finally:
        provider.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
