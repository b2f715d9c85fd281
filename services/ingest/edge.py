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

from mlops.bus import HEADER_CONTENT_TYPE, Bus, FailurePolicy, Record, StopFlag, run_loop
from mlops.telemetry import extract_context, messaging_attributes, tracer
from mlops.topics import EVENTS, EVENTS_DLQ, RAW_EVENTS
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from services.ingest import metrics
from services.ingest.convert import to_dead_letter, to_event, validate
from services.ingest.errors import Rejected
from services.ingest.settings import IngestSettings

log = logging.getLogger("mlops.ingest")
_tracer = tracer("mlops.ingest")
INTERNAL_ERROR = "internal_error"
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


class Ingest:
    """One ingest process: a consumer-group member with its producer, on the bus it is given."""

    def __init__(self, settings: IngestSettings, bus: Bus):
        self.settings = settings
        self.raw_topic = bus.topic(RAW_EVENTS)
        self.events_topic = bus.topic(EVENTS)
        self.dlq_topic = bus.topic(EVENTS_DLQ)
        client_id = f"{settings.client_id}-{socket.gethostname()}-{os.getpid()}"
        self.producer = bus.producer(client_id=client_id)
        self.consumer = bus.consumer(group_id=settings.group_id, topics=[self.raw_topic], client_id=client_id)
        self.assigned = False  # readiness: set by the loop's thread (the consumer is not shared across threads)
        # the span attributes every record shares (messaging semantic conventions); per record only the
        # partition, offset, key and event id are added
        self._span_attrs = messaging_attributes("process", self.raw_topic, group=settings.group_id)

    def run(self, stop: StopFlag) -> int:
        """Consume until `stop`; returns the number of records handled."""
        log.info("ingest running", extra={"fields": {"source": self.raw_topic, "events": self.events_topic,
                                                      "dlq": self.dlq_topic, "group": self.settings.group_id}})
        # each record's failures are dead-lettered inside handle_batch; a failure of the batch itself is a bug of
        # this loop: stop without committing, so the batch is read again after a restart
        return run_loop(
            self.consumer,
            handle_batch=self.handle_batch,
            stop=stop,
            policy=FailurePolicy.STOP,
            producer=self.producer,
            batch_size=self.settings.batch_size,
            poll_timeout=self.settings.poll_timeout_s,
            on_idle=self._check_assigned,
        )

    def _check_assigned(self) -> None:
        self.assigned = bool(self.consumer.assignment())

    # --- per batch: run_loop flushes the producer and commits after it returns ---------------------------------
    def handle_batch(self, records: list[Record]) -> None:
        """Validate every record into events or dead letters; metrics are published once per batch (hot path)."""
        started = time.perf_counter()
        handle = self.handle
        out = 0
        dlq: dict[str, int] = {}
        for record in records:
            try:
                error_type = handle(record)
            except Exception as exc:  # a bug, not bad input: the record still goes to the DLQ (never lost)
                error_type = self.on_unexpected(record, exc)
            if error_type is None:
                out += 1
            else:
                dlq[error_type] = dlq.get(error_type, 0) + 1
        seconds = time.perf_counter() - started
        metrics.RECORDS_IN.inc(len(records))
        if out:
            metrics.RECORDS_OUT.inc(out)
        for error_type, n in dlq.items():
            metrics.RECORDS_DLQ.labels(error_type).inc(n)
        metrics.PROCESSING.observe(seconds / len(records))
        metrics.BATCH.observe(seconds)
        self._check_assigned()

    # --- per record ------------------------------------------------------------------------------------------
    def handle(self, record: Record) -> str | None:
        """Produce the record's Event, or its DeadLetter; returns the dead letter's error type (None: an event)."""
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
            return rej.error_type
        except Exception as exc:  # a bug in validation: still one span per record, then it is dead-lettered
            span = self._start_span(parent, start_ns, partition, offset, key, None)
            _failed(span, exc)
            span.end()
            raise
        span = self._start_span(parent, start_ns, partition, offset, key, ev.event_id)
        try:
            self.producer.send(
                self.events_topic,
                to_event(ev, topic, partition, offset, now_ms),
                key=ev.entity_id,
                headers=trace_headers(span, headers),
            )
        except Exception as exc:  # a bug, not bad input: the record is dead-lettered
            _failed(span, exc)
            raise
        finally:
            span.end()
        return None

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

    def on_unexpected(self, record: Record, exc: Exception) -> str:
        """A bug, not bad input: the record still goes to the DLQ (never lost, never a crash loop)."""
        log.exception("unexpected error; dead-lettering", extra={"fields": {"where": record.where}})
        self._dead_letter(record, INTERNAL_ERROR, "", f"{type(exc).__name__}: {exc}", int(time.time() * 1000))
        return INTERNAL_ERROR
