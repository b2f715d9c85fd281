"""`python -m services.ingest`: validate the declared sources' raw topics until SIGTERM."""

from __future__ import annotations

from mlops.bus import KafkaBus, StopFlag, wait_for_broker
from mlops.service import freeze_survivors, start
from mlops.settings import KafkaSettings

from services.ingest.edge import Ingest
from services.ingest.settings import DEFAULT_METRICS_PORT, IngestSettings


def main() -> int:
    settings, kafka = IngestSettings(), KafkaSettings()
    ingest: Ingest | None = None
    started = start("ingest", DEFAULT_METRICS_PORT, ready=lambda: ingest is not None and ingest.ready)
    stop = StopFlag()
    wait_for_broker(kafka)
    ingest = Ingest(settings, KafkaBus(kafka))
    freeze_survivors()
    try:
        ingest.run(stop)
    finally:
        started.provider.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
