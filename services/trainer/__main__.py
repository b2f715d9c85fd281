"""`python -m services.trainer`: settings → logging → tracing → ops server → consume until SIGTERM."""

from __future__ import annotations

import logging
import threading

from mlops.bus import Producer, StopFlag, wait_for_broker
from mlops.settings import KafkaSettings, TelemetrySettings
from mlops.telemetry import setup_logging, setup_tracing, start_ops_server

from services.trainer.data import offline_store_loader
from services.trainer.service import TrainerService, run
from services.trainer.settings import TrainerSettings

DEFAULT_METRICS_PORT = 9103


def preload() -> None:
    """Import the training stack before taking requests: sklearn, skl2onnx and onnxruntime take seconds to import
    on a busy machine, which the first retrain (the one answering a drift) should not pay."""
    import onnxruntime  # noqa: F401
    import skl2onnx  # noqa: F401
    from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: F401
    from sklearn.metrics import roc_auc_score  # noqa: F401


def main() -> int:
    settings, kafka, telemetry = TrainerSettings(), KafkaSettings(), TelemetrySettings()
    setup_logging(telemetry)
    setup_tracing("trainer", telemetry)
    log = logging.getLogger("mlops.trainer")
    ready = threading.Event()
    port = start_ops_server(telemetry.metrics_port if telemetry.metrics_port is not None else DEFAULT_METRICS_PORT,
                            ready=ready.is_set)
    stop = StopFlag()
    wait_for_broker(kafka)
    preload()
    producer = Producer(kafka, client_id="trainer")
    service = TrainerService(settings, kafka, producer, offline_store_loader(
        kafka, labels_within_features=settings.labels_within_features))
    log.info("trainer started", extra={"fields": {"ops_port": port, "code_version": service.code_version,
                                                  "topic_prefix": kafka.topic_prefix}})
    trainings = run(service, stop, on_ready=ready.set)
    log.info("trainer stopped", extra={"fields": {"trainings": trainings}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
