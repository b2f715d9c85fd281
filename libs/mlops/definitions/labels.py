"""Reading a model's labels as declared: `Label` protobufs or JSON from any Kafka client, checked per task.

A label that cannot be read or does not fit its model (a 2.0 for a binary model, NaN, an undeclared class) raises
`LabelError` naming the field, so a consumer can dead-letter it instead of training on it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlops import contracts
from mlops.contracts import events_pb2
from mlops.definitions.model import Model, Task
from mlops.errors import MlopsError

__all__ = ["LabelError", "LabelRow", "check_label", "decode_label"]


class LabelError(MlopsError):
    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


@dataclass(frozen=True)
class LabelRow:
    entity_id: str
    event_time_ms: int
    value: float
    request_id: str = ""


def _time_ms(value: Any, field: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise LabelError(field, f"not an ISO-8601 time: {value[:40]!r}") from None
        return int((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp() * 1000)
    raise LabelError(field, "must be epoch milliseconds (integer) or an ISO-8601 string")


def decode_label(value: bytes | None, model: Model, id_field: str, message_type: str | None = None) -> LabelRow:
    """One label record of `model`: protobuf when the producer said so (`message-type` header), JSON otherwise."""
    if value is None:
        raise LabelError("", "record has no value")
    if message_type == events_pb2.Label.DESCRIPTOR.full_name:
        try:
            pb = contracts.decode(events_pb2.Label, value)
        except contracts.ContractError as exc:
            raise LabelError("", str(exc)) from None
        row = LabelRow(pb.entity_id, pb.event_time_ms, pb.label, pb.request_id)
    else:
        try:
            doc = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LabelError("", f"neither a Label protobuf nor JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise LabelError("", "a JSON label must be an object")
        spec = model.label
        for field in (id_field, spec.event_time_field, spec.field):
            if field not in doc:
                raise LabelError(field, "missing")
        entity = doc[id_field]
        if not isinstance(entity, str) or not entity.strip():
            raise LabelError(id_field, "must be a non-empty string")
        raw = doc[spec.field]
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise LabelError(spec.field, f"must be a number, got {type(raw).__name__}")
        request_id = doc.get("request_id") or ""
        row = LabelRow(entity, _time_ms(doc[spec.event_time_field], spec.event_time_field), float(raw),
                       str(request_id))
    check_label(model, row.value)
    return row


def check_label(model: Model, value: float) -> None:
    """Raise LabelError when `value` cannot be a label of `model`'s task."""
    field = model.label.field
    if not math.isfinite(value):
        raise LabelError(field, f"{value} is not a finite number")
    if model.task is Task.BINARY and value not in (0.0, 1.0):
        raise LabelError(field, f"{value:g} is not 0 or 1 (binary model {model.name!r})")
    if model.task is Task.MULTICLASS and model.classes is not None and value not in model.classes:
        raise LabelError(field, f"{value:g} is not one of the classes {list(model.classes)} of {model.name!r}")
