"""`python -m services.monitor`: the shared start-up, then consume until SIGTERM."""

from __future__ import annotations

import sys

from mlops import service
from mlops.bus import KafkaBus, StopFlag, wait_for_broker
from mlops.settings import KafkaSettings

from services.monitor.edge import MonitorService
from services.monitor.settings import DEFAULT_METRICS_PORT, MonitorSettings


def main() -> int:
    settings, kafka = MonitorSettings(), KafkaSettings()
    stop = StopFlag()
    monitor = MonitorService(settings, KafkaBus(kafka))
    log = service.start("monitor", DEFAULT_METRICS_PORT, ready=monitor.ready).log
    log.info("monitor starting", extra={"fields": {"settings": settings.model_dump()}})
    wait_for_broker(kafka)
    service.freeze_survivors()
    handled = monitor.run(stop)
    log.info("monitor stopped", extra={"fields": {"records": handled}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
