"""Dead letters (events.dlq): a record a service refuses, with the reason naming the field, its position and as
much of its original as fits. The original is kept up to a cap, with the whole value's size and sha256, so a record
near the broker's limit cannot make a dead letter over it (which would fail the produce and crash-loop the service).
"""

from __future__ import annotations

import hashlib
import time

from mlops.bus import Record
from mlops.contracts import common_pb2, events_pb2

__all__ = ["DEFAULT_ORIGINAL_BYTES", "INVALID_LABEL", "dead_letter"]

DEFAULT_ORIGINAL_BYTES = 64 * 1024
INVALID_LABEL = "invalid_label"  # error_type of a label that cannot be read or does not fit its model
_MAX_REASON_CHARS, _MAX_HEADER_CHARS = 4096, 1024  # a reason or header quoting a huge value stays small


def dead_letter(record: Record, service: str, error_type: str, field: str, reason: str, now_ms: int | None = None,
                max_original_bytes: int = DEFAULT_ORIGINAL_BYTES) -> events_pb2.DeadLetter:
    """`record` refused by `service`: the first `max_original_bytes` of its key and value (the value's whole size
    and sha256 always), its headers, and the reason naming `field`."""
    value = record.value or b""
    return events_pb2.DeadLetter(
        original_key=(record.key or b"")[:max_original_bytes],
        original_value=value[:max_original_bytes],
        reason=reason[:_MAX_REASON_CHARS],
        field=field[:_MAX_REASON_CHARS],
        error_type=error_type,
        source=common_pb2.SourcePosition(topic=record.topic, partition=record.partition, offset=record.offset),
        failed_at_ms=int(time.time() * 1000) if now_ms is None else now_ms,
        service=service,
        original_headers={k: v.decode("utf-8", "replace")[:_MAX_HEADER_CHARS] for k, v in record.headers.items()},
        original_size=len(value),
        original_sha256=hashlib.sha256(value).hexdigest(),
        original_truncated=len(value) > max_original_bytes,
    )
