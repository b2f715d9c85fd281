"""The batch path of ingest, and the tracing both paths share.

A poll batch's records of one source topic are validated at once (`SourceValidator.validate_json_batch`: one
pydantic-core call over the list), their Event bytes written by an `EventEncoder` (what every event of the batch
shares encoded once), and produced in one tight loop (`Producer.send_encoded`). What the batch path does not accept
— a bad record, a lenient form (an ISO time, 2.0 for an int, a category outside the vocabulary), a protobuf
`RawEvent`, a bug — is handed back, in order, to the per-record path, which accepts it the slow way or dead-letters
it naming the field; events before it are produced first, so events keep the records' order.

Tracing: a record carrying a `traceparent` gets its own `process <topic>` span, child of the producer's (its trace
continues, sampled or not as the parent says); records without one share one `process <topic>` span per batch (a
root, sampled by the configured ratio like any root; `messaging.batch.message_count` says how many), whose context
their events carry — a root span per record cost more than validating it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mlops.bus import HEADER_CONTENT_TYPE, Producer, Record
from mlops.telemetry import context_headers, extract_context, tracer
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from services.ingest.convert import EventEncoder
from services.ingest.core import JSON, SourceValidator, detect_format

__all__ = ["NO_PARENT", "BatchPath", "Route", "by_topic", "failed", "record_span", "trace_headers"]

log = logging.getLogger("mlops.ingest")
_tracer = tracer("mlops.ingest")
NO_PARENT = Context()  # records without a traceparent start a new trace (never the loop thread's context)
Pending = list[tuple[bytes | None, bytes, dict[str, str] | None]]  # (key, Event bytes, trace headers)


@dataclass(frozen=True)
class Route:
    """What a record of one source topic needs: its source's validator and the span attributes every record of
    the topic shares (messaging semantic conventions; per record only partition, offset, key and event id)."""

    validator: SourceValidator
    span_attrs: dict[str, Any]


def trace_headers(span: Span, incoming: dict[str, bytes]) -> dict[str, str] | None:
    """W3C `traceparent` (+ `tracestate`) of `span` for the outgoing record, and the incoming `baggage` passed on
    unchanged — what propagate.inject would write, without making the span current for the send."""
    out = context_headers(span.get_span_context())
    if not out:
        return None
    baggage = incoming.get("baggage")
    if baggage:
        out["baggage"] = baggage.decode("utf-8", "replace")
    return out


def record_span(route: Route, parent: Context, start_ns: int, partition: int, offset: int, key: bytes | None,
                event_id: str | None) -> Span:
    """One record's `process <topic>` span (CONSUMER, named per the messaging conventions), child of `parent`."""
    attrs = dict(route.span_attrs)
    attrs["messaging.destination.partition.id"] = str(partition)
    attrs["messaging.kafka.offset"] = offset
    if key is not None:
        attrs["messaging.kafka.message.key"] = key.decode("utf-8", "replace")
    if event_id is not None:
        attrs["mlops.event_id"] = event_id
    return _tracer.start_span(f"process {attrs['messaging.destination.name']}", context=parent,
                              kind=SpanKind.CONSUMER, attributes=attrs,
                              start_time=start_ns)


def failed(span: Span, exc: Exception) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


def by_topic(records: list[Record]) -> list[tuple[str, list[Record]]]:
    """The records of each topic, in order (a batch usually holds one source's topic)."""
    topic = records[0].topic
    if all(r.topic == topic for r in records):
        return [(topic, records)]
    groups: dict[str, list[Record]] = {}
    for r in records:
        groups.setdefault(r.topic, []).append(r)
    return list(groups.items())


def _not_json(headers: dict[str, bytes]) -> bool:
    """A content-type header that makes the record something else than JSON (as `detect_format` decides)."""
    content_type = headers.get(HEADER_CONTENT_TYPE)
    return content_type is not None and detect_format(b"{", content_type.decode("utf-8", "replace")) != JSON


class BatchPath:
    """The batch path of one ingest process (the loop's thread only)."""

    def __init__(self, producer: Producer, events_topic: str, max_future_skew_ms: int):
        self._producer = producer
        self._events_topic = events_topic
        self._max_future_skew_ms = max_future_skew_ms
        self._sent = 0

    def take_sent(self) -> int:
        """Events queued since the last call."""
        sent, self._sent = self._sent, 0
        return sent

    def leftovers(self, route: Route, topic: str, records: list[Record]) -> Iterator[Record]:
        """Produce the events of the records of `topic` the batch path accepts; yield each other record, in order,
        after the events before it are queued."""
        start_ns = time.time_ns()
        now_ms = start_ns // 1_000_000
        validator = route.validator
        docs = validator.validate_json_batch([r.value for r in records], now_ms=now_ms,
                                             max_future_skew_ms=self._max_future_skew_ms)
        encode = EventEncoder(validator.source_name, validator.schema_version, topic, now_ms).encode
        finish, id_field, time_field = validator.finish, validator.id_field, validator.time_field
        pending: Pending = []
        spans: list[Span] = []
        batch_span: Span | None = None
        batch_trace: dict[str, str] | None = None
        untraced = 0
        for record, doc in zip(records, docs, strict=True):
            try:
                headers = record.headers
                if doc is None or (headers and _not_json(headers)):
                    self._send(pending, spans)
                    yield record
                    continue
                partition, offset = record.partition, record.offset
                event_id = doc.get("event_id") or f"{topic}/{partition}/{offset}"
                values, categories = finish(doc["values"])
                entity_id = doc[id_field]
                payload = encode(event_id, entity_id, doc[time_field], values, categories, partition, offset)
                if "traceparent" in headers:
                    span = record_span(route, extract_context(headers), start_ns, partition, offset, record.key,
                                       event_id)
                    spans.append(span)
                    trace = trace_headers(span, headers)
                else:
                    if batch_span is None:
                        batch_span = _tracer.start_span(f"process {route.span_attrs['messaging.destination.name']}",
                                                        context=NO_PARENT, kind=SpanKind.CONSUMER,
                                                        attributes=route.span_attrs, start_time=start_ns)
                        batch_trace = trace_headers(batch_span, {})
                    untraced += 1
                    trace = trace_headers(batch_span, headers) if "baggage" in headers else batch_trace
            except Exception:  # a bug on this path: the per-record path handles the record (or dead-letters it)
                log.exception("batch path failed; the record takes the per-record path",
                              extra={"fields": {"where": record.where}})
                self._send(pending, spans)
                yield record
                continue
            pending.append((entity_id.encode(), payload, trace))
        self._send(pending, spans)
        if batch_span is not None:
            batch_span.set_attribute("messaging.batch.message_count", untraced)
            batch_span.end()

    def _send(self, pending: Pending, spans: list[Span]) -> None:
        """Queue the events accepted so far, then end their records' spans."""
        if pending:
            self._producer.send_encoded(self._events_topic, EventEncoder.message_type, pending)
            self._sent += len(pending)
            pending.clear()
        for span in spans:
            span.end()
        spans.clear()
