"""`python -m services.ingest`: settings → logging → tracing → ops server → consume until SIGTERM."""

from __future__ import annotations

import logging

from mlops.bus import StopFlag, wait_for_broker
from mlops.settings import KafkaSettings, TelemetrySettings
from mlops.telemetry import setup_logging, setup_tracing, start_ops_server

from .service import Ingest
from .settings import DEFAULT_METRICS_PORT, IngestSettings


def main() -> int:
    settings, kafka, telemetry = IngestSettings(), KafkaSettings(), TelemetrySettings()
    setup_logging(telemetry)
    provider = setup_tracing("ingest", telemetry)
    stop = StopFlag()
    wait_for_broker(kafka)
    ingest = Ingest(settings, kafka)
    port = start_ops_server(
        telemetry.metrics_port if telemetry.metrics_port is not None else DEFAULT_METRICS_PORT,
        ready=lambda: ingest.assigned,
    )
    logging.getLogger("mlops.ingest").info("ops server", extra={"fields": {"port": port}})
    try:
        ingest.run(stop)
    finally:
        provider.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
