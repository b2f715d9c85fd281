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
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import TopicPartition
from mlops.bus import HEADER_CONTENT_TYPE, Consumer, FailurePolicy, Producer, Record, StopFlag, run_loop
from mlops.settings import KafkaSettings
from mlops.telemetry import extract_context, messaging_attributes, tracer
from mlops.topics import EVENTS, EVENTS_DLQ, RAW_EVENTS, topic_name
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from services.ingest import metrics
from services.ingest.convert import to_dead_letter, to_event, validate
from services.ingest.errors import Rejected
from services.ingest.settings import IngestSettings

log = logging.getLogger("mlops.ingest")
_tracer = tracer("mlops.ingest")
_NO_PARENT = Context()  # records without a traceparent start a new trace (never the loop thread's context)


def trace_headers(span: Span, incoming: dict[str, bytes]) -> dict[str, str] | None:
    """W3C `traceparent` (+ `tracestate`) of `span` for the outgoing record, and the incoming `baggage` passed on
    unchanged — what propagate.inject would write, without making the span current for the send."""
    sc = span.get_span_context()
    if not sc.is_valid:
        return None
    out = {"traceparent": f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{sc.trace_flags:02x}"}
    if sc.trace_state:
        out["tracestate"] = sc.trace_state.to_header()
    baggage = incoming.get("baggage")
    if baggage:
        out["baggage"] = baggage.decode("utf-8", "replace")
    return out


def _failed(span: Span, exc: Exception) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


class _BatchConsumer(Consumer):
    """mlops.bus.Consumer that tells ingest where run_loop's batches start and end: run_loop consumes a batch,
    handles it record by record, flushes the producer (all acknowledged) and only then commits. The ingest metrics
    are published once per batch there instead of once per record."""

    def __init__(self, *args: Any, on_batch: Callable[[int, float], None], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._on_batch = on_batch
        self._batch_started = 0.0

    def consume(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        records = super().consume(max_records, timeout)
        if records:
            self._batch_started = time.perf_counter()
        return records

    def commit(self, records: Iterable[Record]) -> None:
        super().commit(records)
        n = len(records) if isinstance(records, list) else sum(1 for _ in records)
        self._on_batch(n, time.perf_counter() - self._batch_started)


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
        self.consumer = _BatchConsumer(
            kafka, group_id=settings.group_id, topics=[self.raw_topic], client_id=client_id, on_batch=self._on_batch
        )
        self._last_lag = 0.0
        self.assigned = False
        # the span attributes every record shares (messaging semantic conventions); per record only the
        # partition, offset, key and event id are added
        self._span_attrs = messaging_attributes("process", self.raw_topic, group=settings.group_id)
        # per-batch metric accumulators (published by _on_batch after the batch is flushed and committed)
        self._out = 0
        self._dlq: dict[str, int] = {}
        self._handle_s = 0.0

    # --- per record ------------------------------------------------------------------------------------------
    def handle(self, record: Record) -> None:
        started = time.perf_counter()
        start_ns = time.time_ns()
        now_ms = start_ns // 1_000_000
        topic, partition, offset, key = record.topic, record.partition, record.offset, record.key
        headers = record.headers
        # one CONSUMER span per record, child of the producer's span when the record carries a traceparent; it is
        # started after validation with the time taken before it, so it still covers validate+convert+produce
        parent = extract_context(headers) if "traceparent" in headers else _NO_PARENT
        try:
            ev = validate(
                record.value,
                content_type=record.header(HEADER_CONTENT_TYPE),
                fallback_event_id=f"{topic}/{partition}/{offset}",
                now_ms=now_ms,
                max_future_skew_ms=self.settings.max_future_skew_ms,
            )
        except Rejected as rej:
            span = self._start_span(parent, start_ns, partition, offset, key, None)
            try:
                span.set_attribute("mlops.dlq.error_type", rej.error_type)
                span.set_status(Status(StatusCode.ERROR, rej.reason))
                self._dead_letter(record, rej.error_type, rej.field, rej.reason, now_ms, trace_headers(span, headers))
            finally:
                span.end()
        except Exception as exc:  # a bug in validation: still one span per record, then run_loop dead-letters it
            span = self._start_span(parent, start_ns, partition, offset, key, None)
            _failed(span, exc)
            span.end()
            raise
        else:
            span = self._start_span(parent, start_ns, partition, offset, key, ev.event_id)
            try:
                self.producer.send(
                    self.events_topic,
                    to_event(ev, topic, partition, offset, now_ms),
                    key=ev.entity_id,
                    headers=trace_headers(span, headers),
                )
                self._out += 1
            except Exception as exc:  # a bug, not bad input: run_loop dead-letters the record
                _failed(span, exc)
                raise
            finally:
                span.end()
        self._handle_s += time.perf_counter() - started

    def _start_span(
        self, parent: Context, start_ns: int, partition: int, offset: int, key: bytes | None, event_id: str | None
    ) -> Span:
        attrs = dict(self._span_attrs)
        attrs["messaging.destination.partition.id"] = str(partition)
        attrs["messaging.kafka.offset"] = offset
        if key is not None:
            attrs["messaging.kafka.message.key"] = key.decode("utf-8", "replace")
        if event_id is not None:
            attrs["mlops.event_id"] = event_id
        return _tracer.start_span(
            "ingest validate", context=parent, kind=SpanKind.CONSUMER, attributes=attrs, start_time=start_ns
        )

    def _dead_letter(
        self,
        record: Record,
        error_type: str,
        field: str,
        reason: str,
        now_ms: int,
        headers: dict[str, str] | None = None,
    ) -> None:
        dead = to_dead_letter(record, error_type, field, reason, now_ms)
        self.producer.send(self.dlq_topic, dead, key=record.key, headers=headers)
        self._dlq[error_type] = self._dlq.get(error_type, 0) + 1

    # --- per batch ---------------------------------------------------------------------------------------------
    def _on_batch(self, records: int, batch_s: float) -> None:
        """After a batch is handled, flushed (acknowledged) and committed: publish its metrics."""
        metrics.RECORDS_IN.inc(records)
        if self._out:
            metrics.RECORDS_OUT.inc(self._out)
        for error_type, n in self._dlq.items():
            metrics.RECORDS_DLQ.labels(error_type).inc(n)
        metrics.PROCESSING.observe(self._handle_s / records)
        metrics.BATCH.observe(batch_s)
        self._out, self._dlq, self._handle_s = 0, {}, 0.0
        self.refresh_lag()

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

        return run_loop(
            self.consumer,
            self.handle,
            stop=stop,
            policy=FailurePolicy.DEAD_LETTER,
            dead_letter=self.on_unexpected,
            producer=self.producer,
            batch_size=self.settings.batch_size,
            poll_timeout=self.settings.poll_timeout_s,
            on_idle=lambda: self.refresh_lag(),
        )
