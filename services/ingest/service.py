"""The Kafka edge of ingest: raw.events → validate (core) → events | events.dlq, at-least-once.

Delivery: `mlops.bus.run_loop` handles a batch, flushes the idempotent producer (every Event / DeadLetter is
acknowledged by the broker) and only then commits the batch's offsets. A crash in between re-reads the batch, so
a record can be written twice but never lost; the event id of a record without one is derived from its source
position (topic/partition/offset), so a replayed duplicate carries the same event id and downstream can drop it.
(Kafka transactions would give exactly-once at the cost of a transaction per batch and read_committed readers;
features and the offline store are idempotent per event id / point in time, so at-least-once is the choice.)
"""

from __future__ import annotations

import logging
import os
import socket
import time

from confluent_kafka import TopicPartition
from mlops.bus import HEADER_CONTENT_TYPE, Consumer, FailurePolicy, Producer, Record, StopFlag, run_loop
from mlops.contracts import common_pb2, events_pb2
from mlops.settings import KafkaSettings
from mlops.telemetry import extract_context, messaging_attributes, tracer
from mlops.topics import EVENTS, EVENTS_DLQ, RAW_EVENTS, topic_name
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import metrics
from .errors import Rejected
from .settings import IngestSettings
from .validation import ValidEvent, validate

log = logging.getLogger("mlops.ingest")
_tracer = tracer("mlops.ingest")
SERVICE = "ingest"


def to_event(ev: ValidEvent, record: Record, ingest_time_ms: int) -> events_pb2.Event:
    return events_pb2.Event(
        event_id=ev.event_id,
        entity_id=ev.entity_id,
        event_time_ms=ev.event_time_ms,
        ingest_time_ms=ingest_time_ms,
        schema_version=ev.schema_version,
        values=ev.values,
        source=common_pb2.SourcePosition(topic=record.topic, partition=record.partition, offset=record.offset),
    )


def to_dead_letter(record: Record, error_type: str, field: str, reason: str, now_ms: int) -> events_pb2.DeadLetter:
    return events_pb2.DeadLetter(
        original_key=record.key or b"",
        original_value=record.value or b"",
        reason=reason,
        field=field,
        error_type=error_type,
        source=common_pb2.SourcePosition(topic=record.topic, partition=record.partition, offset=record.offset),
        failed_at_ms=now_ms,
        service=SERVICE,
        original_headers={k: v.decode("utf-8", "replace") for k, v in record.headers.items()},
    )


class Ingest:
    """One ingest process: a consumer-group member with its producer."""

    def __init__(self, settings: IngestSettings, kafka: KafkaSettings):
        self.settings = settings
        self.kafka = kafka
        self.raw_topic = topic_name(RAW_EVENTS, kafka)
        self.events_topic = topic_name(EVENTS, kafka)
        self.dlq_topic = topic_name(EVENTS_DLQ, kafka)
        client_id = f"{settings.client_id}-{socket.gethostname()}-{os.getpid()}"
        self.producer = Producer(kafka, client_id=client_id)
        self.consumer = Consumer(kafka, group_id=settings.group_id, topics=[self.raw_topic], client_id=client_id)
        self._last_lag = 0.0
        self.assigned = False

    # --- per record ------------------------------------------------------------------------------------------
    def handle(self, record: Record) -> None:
        started = time.perf_counter()
        metrics.RECORDS_IN.inc()
        attrs = messaging_attributes("process", record.topic, record.partition, record.offset, record.key,
                                     self.settings.group_id)
        with _tracer.start_as_current_span(
            "ingest validate", context=extract_context(record.headers), kind=SpanKind.CONSUMER, attributes=attrs
        ) as span:
            now_ms = int(time.time() * 1000)
            try:
                ev = validate(
                    record.value,
                    content_type=record.header(HEADER_CONTENT_TYPE),
                    fallback_event_id=f"{record.topic}/{record.partition}/{record.offset}",
                    now_ms=now_ms,
                    max_future_skew_ms=self.settings.max_future_skew_ms,
                )
            except Rejected as rej:
                span.set_attribute("mlops.dlq.error_type", rej.error_type)
                span.set_status(Status(StatusCode.ERROR, rej.reason))
                self._dead_letter(record, rej.error_type, rej.field, rej.reason, now_ms)
            else:
                span.set_attribute("mlops.event_id", ev.event_id)
                self.producer.send(self.events_topic, to_event(ev, record, now_ms), key=ev.entity_id)
                metrics.RECORDS_OUT.inc()
        metrics.PROCESSING.observe(time.perf_counter() - started)

    def _dead_letter(self, record: Record, error_type: str, field: str, reason: str, now_ms: int) -> None:
        dead = to_dead_letter(record, error_type, field, reason, now_ms)
        self.producer.send(self.dlq_topic, dead, key=record.key)
        metrics.RECORDS_DLQ.labels(error_type).inc()

    def on_unexpected(self, record: Record, exc: Exception) -> None:
        """A bug, not bad input: the record still goes to the DLQ (never lost, never a crash loop)."""
        log.exception("unexpected error; dead-lettering", extra={"fields": {"where": record.where}})
        self._dead_letter(record, "internal_error", "", f"{type(exc).__name__}: {exc}", int(time.time() * 1000))

    # --- lag ---------------------------------------------------------------------------------------------------
    def refresh_lag(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_lag < self.settings.lag_interval_s:
            return
        self._last_lag = now
        raw = self.consumer.raw
        try:
            assignment = raw.assignment()
            self.assigned = bool(assignment)
            for tp in raw.position(assignment):
                _low, high = raw.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), cached=True)
                if tp.offset >= 0 and high >= 0:
                    metrics.CONSUMER_LAG.labels(str(tp.partition)).set(max(0, high - tp.offset))
        except Exception as exc:  # metrics must never stop the loop
            log.debug("lag refresh failed", extra={"fields": {"error": str(exc)}})

    def run(self, stop: StopFlag) -> int:
        """Consume until `stop`; returns the number of records handled."""
        log.info("ingest running", extra={"fields": {"source": self.raw_topic, "events": self.events_topic,
                                                      "dlq": self.dlq_topic, "group": self.settings.group_id}})

        def handle(record: Record) -> None:
            self.handle(record)
            self.refresh_lag()

        return run_loop(
            self.consumer,
            handle,
            stop=stop,
            policy=FailurePolicy.DEAD_LETTER,
            dead_letter=self.on_unexpected,
            producer=self.producer,
            batch_size=self.settings.batch_size,
            poll_timeout=self.settings.poll_timeout_s,
            on_idle=lambda: self.refresh_lag(),
        )
