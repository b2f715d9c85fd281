"""Follows `model.promoted` and hot-swaps champions.

Every replica must see every promotion, so each process reads the topic with its own consumer group from the
beginning (`rewind`): on start that replays the history and the last record per model name is the current
champion; afterwards each new record is applied as it arrives. Loading (artifact fetch by sha256, session build,
warm-up) happens here in the background thread; the swap itself is one reference assignment in the repository.
"""

from __future__ import annotations

import logging
import threading
import uuid

from mlops.artifacts import ArtifactReader
from mlops.bus import Consumer, Record
from mlops.contracts import ContractError, models_pb2
from mlops.settings import KafkaSettings
from mlops.telemetry import extract_context, messaging_attributes, tracer
from mlops.topics import MODEL_PROMOTED, topic_name

from services.inference import convert
from services.inference.core import ModelRepository, SessionOptions, apply_promotion

log = logging.getLogger("mlops.inference")
_tracer = tracer("mlops.inference")


class PromotionWatcher:
    def __init__(self, kafka: KafkaSettings, repository: ModelRepository, options: SessionOptions,
                 default_features: tuple[str, ...], artifact_timeout_s: float = 60.0):
        self._kafka, self._repository, self._options = kafka, repository, options
        self._default_features = default_features
        self._reader = ArtifactReader(kafka)
        self._timeout = artifact_timeout_s
        self._topic = topic_name(MODEL_PROMOTED, kafka)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="promotion-watcher", daemon=True)
        self.errors = 0

    def start(self) -> None:
        self._thread.start()

    def _fetch(self, sha256: str) -> bytes:
        return self._reader.get(sha256, timeout=self._timeout)

    def _run(self) -> None:
        consumer = Consumer(self._kafka, group_id=f"inference-{uuid.uuid4().hex[:12]}", topics=[self._topic],
                            client_id="inference-promotions", rewind=True)
        try:
            while not self._stop.is_set():
                records = consumer.consume(500, 0.5)
                if not records:
                    continue
                latest: dict[str, Record] = {}
                for r in records:  # a replayed history collapses to the last record per model name
                    try:
                        latest[r.decode(models_pb2.ModelPromoted).model_name] = r
                    except ContractError as exc:
                        self.errors += 1
                        log.error("bad model.promoted record", extra={"fields": {"error": str(exc)}})
                for record in latest.values():
                    self._handle(record)
                consumer.commit(records)
        except Exception as exc:
            log.exception("promotion watcher stopped", extra={"fields": {"error": str(exc)}})
        finally:
            consumer.close()

    def _handle(self, record: Record) -> None:
        promoted = convert.promotion(record.decode(models_pb2.ModelPromoted))
        with _tracer.start_as_current_span(
            "inference.swap", context=extract_context(record.headers),
            attributes=messaging_attributes("process", record.topic, record.partition, record.offset, record.key)
            | {"mlops.model": promoted.model_name, "mlops.version": promoted.version},
        ):
            try:
                apply_promotion(self._repository, promoted, self._fetch, self._options, self._default_features)
            except Exception as exc:  # the old champion keeps serving; the failure is loud
                self.errors += 1
                log.error("promotion not applied", extra={"fields": {
                    "model": promoted.model_name, "version": promoted.version, "error": str(exc)}})

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
