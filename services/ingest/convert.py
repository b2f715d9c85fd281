"""Raw records (JSON or `RawEvent` bytes) → `ValidEvent` → `Event` / `DeadLetter` protobufs.

With the edge, the only module of ingest that touches generated `mlops.contracts` messages.
"""

from __future__ import annotations

from typing import Any

from mlops import contracts
from mlops.bus import Record
from mlops.contracts import common_pb2, events_pb2

from services.ingest.core import (
    DEFAULT_MAX_FUTURE_SKEW_MS,
    JSON,
    ValidEvent,
    check_size,
    detect_format,
    validate_fields,
    validate_json,
)
from services.ingest.errors import Rejected

__all__ = ["raw_event_fields", "to_dead_letter", "to_event", "validate"]

SERVICE = "ingest"


def validate(
    value: bytes | None,
    *,
    content_type: str | None,
    fallback_event_id: str,
    now_ms: int,
    max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS,
) -> ValidEvent:
    """One raw record, JSON or protobuf (the content type decides, else the first byte), as a `ValidEvent`; raise
    `Rejected` naming the field (never anything else for bad input)."""
    value = check_size(value)
    if detect_format(value, content_type) == JSON:
        return validate_json(
            value, fallback_event_id=fallback_event_id, now_ms=now_ms, max_future_skew_ms=max_future_skew_ms
        )
    return validate_fields(
        raw_event_fields(value),
        fallback_event_id=fallback_event_id,
        now_ms=now_ms,
        max_future_skew_ms=max_future_skew_ms,
    )


def raw_event_fields(value: bytes) -> dict[str, Any]:
    """A `RawEvent`'s fields under the JSON form's names (so both forms share one model)."""
    try:
        raw = contracts.decode(events_pb2.RawEvent, value)
    except contracts.ContractError as exc:
        raise Rejected("malformed_protobuf", "", exc.detail) from exc
    return {
        "entity_id": raw.entity_id,
        "event_time": raw.event_time_ms,
        "schema_version": raw.schema_version,
        "values": dict(raw.values),
        "event_id": raw.event_id or None,
    }


def to_event(ev: ValidEvent, topic: str, partition: int, offset: int, ingest_time_ms: int) -> events_pb2.Event:
    """The typed event, with the raw record's position as its source."""
    return events_pb2.Event(
        event_id=ev.event_id,
        entity_id=ev.entity_id,
        event_time_ms=ev.event_time_ms,
        ingest_time_ms=ingest_time_ms,
        schema_version=ev.schema_version,
        values=ev.values,
        source=common_pb2.SourcePosition(topic=topic, partition=partition, offset=offset),
    )


def to_dead_letter(record: Record, error_type: str, field: str, reason: str, now_ms: int) -> events_pb2.DeadLetter:
    """A rejected record with its original bytes and headers, and the reason naming the field."""
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
