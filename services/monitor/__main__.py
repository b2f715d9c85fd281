"""`python -m services.monitor`: settings → logging → tracing → ops server → consume until SIGTERM."""

from __future__ import annotations

import logging
import sys

from mlops.bus import StopFlag, wait_for_broker
from mlops.settings import KafkaSettings, TelemetrySettings
from mlops.telemetry import setup_logging, setup_tracing, start_ops_server

from services.monitor.edge import MonitorService
from services.monitor.settings import DEFAULT_METRICS_PORT, MonitorSettings


def main() -> int:
    settings, kafka, telemetry = MonitorSettings(), KafkaSettings(), TelemetrySettings()
    setup_logging(telemetry)
    setup_tracing("monitor", telemetry)
    log = logging.getLogger("mlops.monitor")
    stop = StopFlag()
    service = MonitorService(settings, kafka)
    port = start_ops_server(
        telemetry.metrics_port if telemetry.metrics_port is not None else DEFAULT_METRICS_PORT, ready=service.ready
    )
    log.info("monitor starting", extra={"fields": {"metrics_port": port, "settings": settings.model_dump()}})
    wait_for_broker(kafka)
    handled = service.run(stop)
    log.info("monitor stopped", extra={"fields": {"records": handled}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
