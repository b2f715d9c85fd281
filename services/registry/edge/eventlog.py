"""registry.log on the broker: write events (and wait for the acknowledgement), replay them on start."""

from __future__ import annotations

import logging
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition
from confluent_kafka import Consumer as _KafkaConsumer
from mlops import contracts
from mlops.artifacts import ArtifactError, ArtifactReader
from mlops.bus import Producer, watermarks
from mlops.contracts import models_pb2
from mlops.settings import KafkaSettings
from mlops.telemetry import messaging_attributes, tracer
from mlops.topics import MODEL_PROMOTED, REGISTRY_LOG, topic_name
from opentelemetry.trace import SpanKind

from services.registry.convert import event_in, event_key, event_out, promotion_out
from services.registry.core import Event, Promotion, RegistryState
from services.registry.errors import ArtifactRejected
from services.registry.metrics import PROMOTIONS

log = logging.getLogger("mlops.registry")
_tracer = tracer("mlops.registry")


class EventLog:
    """Persists events to registry.log and announces promotions on model.promoted."""

    def __init__(self, kafka_settings: KafkaSettings, producer: Producer):
        self.producer = producer
        self.log_topic = topic_name(REGISTRY_LOG, kafka_settings)
        self.promoted_topic = topic_name(MODEL_PROMOTED, kafka_settings)

    def persist(self, events: list[Event]) -> None:
        for e in events:
            self.producer.send(self.log_topic, event_out(e), key=event_key(e))
        self.producer.flush()  # raises BusError → the command fails and nothing is applied

    def announce(self, promotion: Promotion) -> None:
        # the promote span: a child of the candidate's span (gate promotion, in the training trace) or of the
        # gRPC call (manual promote / rollback); model.promoted carries its traceparent to inference
        attrs = messaging_attributes("publish", self.promoted_topic, key=promotion.model_name) | {
            "mlops.model": promotion.model_name, "mlops.model_version": promotion.version,
            "mlops.previous_version": promotion.previous_version, "mlops.action": promotion.action}
        with _tracer.start_as_current_span("registry.promote", kind=SpanKind.PRODUCER, attributes=attrs):
            self.producer.send(self.promoted_topic, promotion_out(promotion), key=promotion.model_name)
            self.producer.flush()
        PROMOTIONS.labels(promotion.model_name, promotion.action).inc()


def replay(kafka_settings: KafkaSettings, timeout: float = 60.0) -> tuple[RegistryState, int]:
    """Rebuild the state from registry.log: read every partition from the beginning to its high watermark (as of
    now) with an assigned consumer (no group, nothing committed). Returns (state, records applied)."""
    topic = topic_name(REGISTRY_LOG, kafka_settings)
    consumer = _KafkaConsumer(kafka_settings.client_config() | {
        "group.id": f"registry-replay-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
        "enable.partition.eof": True, "isolation.level": "read_committed",
        "fetch.max.bytes": kafka_settings.max_message_bytes,
        "max.partition.fetch.bytes": kafka_settings.max_message_bytes,
    })
    state, applied = RegistryState(), 0
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            raise KafkaException(f"registry.log topic {topic} missing: {meta.error if meta else 'no metadata'}")
        ends: dict[int, int] = {}
        for p in meta.partitions:
            low, high = watermarks(consumer, topic, p, timeout)
            if high > low:
                ends[p] = high
        if not ends:
            return state, 0
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        deadline = time.monotonic() + timeout
        pending = set(ends)
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"replaying {topic} took longer than {timeout}s")
            for msg in consumer.consume(500, 0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                        continue
                    raise KafkaException(err)
                if msg.offset() >= ends[msg.partition()] - 1:
                    pending.discard(msg.partition())
                if msg.offset() >= ends[msg.partition()] or msg.value() is None:
                    continue
                try:
                    event = event_in(contracts.decode(models_pb2.RegistryEvent, msg.value(),
                                                      f"{topic}/{msg.partition()}@{msg.offset()}"))
                except (contracts.ContractError, ValueError) as exc:
                    log.error("skipping unreadable registry.log record", extra={"fields": {"error": str(exc)}})
                    continue
                state.apply(event)
                applied += 1
    finally:
        consumer.close()
    return state, applied


def artifact_fetcher(kafka_settings: KafkaSettings, timeout: float):
    """sha256 → verified bytes from model.artifacts; missing or corrupt → ArtifactRejected."""
    reader = ArtifactReader(kafka_settings)

    def fetch(sha256: str) -> bytes:
        try:
            return reader.get(sha256, timeout=timeout)
        except ArtifactError as exc:
            raise ArtifactRejected(sha256, str(exc)) from exc

    return fetch
