"""The transport-free core of ingest: a raw record's JSON bytes or decoded fields in, a typed `ValidEvent` out, or
`Rejected` naming the field.

The JSON form is `{"entity_id", "event_time" (epoch ms int or ISO-8601 string), "schema_version", "values": {...},
"event_id"?}`; the protobuf form is `RawEvent`, whose fields `convert.raw_event_fields` hands to `validate_fields`.
Both go through the same pydantic model, built from the declared RAW_FIELDS (types, ranges, required fields;
NaN/inf refused; unknown fields refused).

Hot path: JSON records are first checked by `_FAST`, a strict TypedDict validator built from the same RAW_FIELDS
(pydantic-core parses and validates the bytes in one pass and returns plain dicts: no model instance, no
model_dump). It accepts only a subset of what `RawEventModel` accepts (integer event_time, every check at least as
strict), so anything it refuses — an ISO time, or any error — goes through `RawEventModel`, which either accepts
it or names the offending field. Accepting the fast path therefore never accepts something the model refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from mlops.schema import MAX_ENTITY_ID_LENGTH, MAX_RAW_RECORD_BYTES, RAW_FIELDS, SUPPORTED_SCHEMA_VERSIONS
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model, field_validator
from typing_extensions import NotRequired, TypedDict  # noqa: UP035 (pydantic needs this TypedDict on 3.11)

from services.ingest.errors import Rejected

JSON = "json"
PROTOBUF = "protobuf"
DEFAULT_MAX_FUTURE_SKEW_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class ValidEvent:
    event_id: str
    entity_id: str
    event_time_ms: int
    schema_version: int
    values: dict[str, float]


def _values_model() -> type[BaseModel]:
    fields: dict[str, Any] = {
        f.name: (
            float | None if not f.required else float,
            Field(None if not f.required else ..., ge=f.minimum, le=f.maximum, allow_inf_nan=False, strict=True,
                  description=f.description),
        )
        for f in RAW_FIELDS
    }
    return create_model("RawValues", __config__=ConfigDict(extra="forbid", frozen=True), **fields)


RawValues = _values_model()


def _fast_adapter() -> TypeAdapter[Any]:
    """The strict fast-path validator of the common valid JSON record (see the module docstring)."""
    strict = ConfigDict(extra="forbid", strict=True)

    def number(f: Any) -> Any:
        return Annotated[float, Field(ge=f.minimum, le=f.maximum, allow_inf_nan=False)]

    values: dict[str, Any] = {
        f.name: number(f) if f.required else NotRequired[number(f) | None] for f in RAW_FIELDS  # type: ignore[misc]
    }
    values_td = TypedDict("FastRawValues", values)  # type: ignore[operator]
    values_td.__pydantic_config__ = strict  # type: ignore[attr-defined]
    event_td = TypedDict(  # type: ignore[operator]  # noqa: UP013 (functional: built at run time)
        "FastRawEvent",
        {
            "entity_id": Annotated[str, Field(min_length=1, max_length=MAX_ENTITY_ID_LENGTH)],
            "event_time": Annotated[int, Field(gt=0)],  # ISO strings take the model path
            "schema_version": int,  # membership in SUPPORTED_SCHEMA_VERSIONS is checked by the caller
            "values": values_td,
            "event_id": NotRequired[Annotated[str, Field(max_length=256)] | None],
        },
    )
    event_td.__pydantic_config__ = strict  # type: ignore[attr-defined]
    return TypeAdapter(event_td)


_FAST = _fast_adapter()
_OPTIONAL_VALUES = any(not f.required for f in RAW_FIELDS)


class RawEventModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    entity_id: str = Field(min_length=1, max_length=MAX_ENTITY_ID_LENGTH, strict=True)
    event_time: int | str
    schema_version: int = Field(strict=True)
    values: RawValues  # type: ignore[valid-type]
    event_id: str | None = Field(None, max_length=256)

    @field_validator("entity_id")
    @classmethod
    def _entity_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("entity id is blank")
        return v

    @field_validator("schema_version")
    @classmethod
    def _known_schema(cls, v: int) -> int:
        if v not in SUPPORTED_SCHEMA_VERSIONS:
            raise ValueError(f"unsupported schema_version {v}; supported: {sorted(SUPPORTED_SCHEMA_VERSIONS)}")
        return v

    @field_validator("event_time", mode="before")
    @classmethod
    def _event_time_ms(cls, v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int | str):
            raise ValueError("event_time must be epoch milliseconds (integer) or an ISO-8601 string")
        if isinstance(v, str):
            try:
                dt = datetime.fromisoformat(v.replace("Z", "+00:00") if v.endswith("Z") else v)
            except ValueError as exc:
                raise ValueError(f"not an ISO-8601 time: {v[:40]!r}") from exc
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            v = int(dt.timestamp() * 1000)
        if v <= 0:
            raise ValueError("event_time must be after 1970-01-01")
        return v


# pydantic error type -> our machine-readable error_type
_ERROR_TYPES = {
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
    "finite_number": "non_finite",
    "less_than_equal": "out_of_range",
    "greater_than_equal": "out_of_range",
    "string_too_short": "invalid_value",
    "string_too_long": "invalid_value",
    "json_invalid": "malformed_json",
    "model_type": "malformed_json",
    "model_attributes_type": "malformed_json",
}


def _rejection(err: ValidationError) -> Rejected:
    first = err.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in first["loc"])
    # union members add their type to the location (event_time.int); keep the field path only
    field = loc.split(".function-")[0]
    for suffix in (".int", ".str"):
        field = field.removesuffix(suffix)
    kind = first["type"]
    error_type = _ERROR_TYPES.get(kind, "invalid_type" if kind.endswith("_type") else "invalid_value")
    if field == "schema_version" and kind == "value_error":
        error_type = "unsupported_schema_version"
    if field == "event_time" and kind == "value_error":
        error_type = "invalid_event_time"
    if error_type == "malformed_json":
        field = ""
    return Rejected(error_type, field, first["msg"].removeprefix("Value error, "))


def detect_format(value: bytes, content_type: str | None) -> str:
    """JSON or protobuf: the content-type header decides; without one, the first non-blank byte ('{' is JSON)."""
    if content_type:
        ct = content_type.lower()
        if "protobuf" in ct:
            return PROTOBUF
        if "json" in ct:
            return JSON
    head = value[:16].lstrip()
    return JSON if head[:1] in (b"{", b"[", b'"') else PROTOBUF


def check_size(value: bytes | None) -> bytes:
    """The record's bytes, refused when empty or over the raw-record limit."""
    if value is None or len(value) == 0:
        raise Rejected("empty_record", "", "record has no value")
    if len(value) > MAX_RAW_RECORD_BYTES:
        raise Rejected("oversize", "", f"{len(value)} bytes > limit {MAX_RAW_RECORD_BYTES}")
    return value


def validate_json(
    value: bytes, *, fallback_event_id: str, now_ms: int, max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS
) -> ValidEvent:
    """Validate one JSON record; raise `Rejected` (never anything else for bad input)."""
    fast = _validate_fast(value, fallback_event_id, now_ms, max_future_skew_ms)
    if fast is not None:
        return fast
    try:
        model = RawEventModel.model_validate_json(value)
    except ValidationError as exc:
        raise _rejection(exc) from exc
    return _valid_event(model, fallback_event_id, now_ms, max_future_skew_ms)


def validate_fields(
    fields: Mapping[str, Any],
    *,
    fallback_event_id: str,
    now_ms: int,
    max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS,
) -> ValidEvent:
    """Validate one record already decoded into fields (e.g. from a RawEvent); raise `Rejected`."""
    try:
        model = RawEventModel.model_validate(fields)
    except ValidationError as exc:
        raise _rejection(exc) from exc
    return _valid_event(model, fallback_event_id, now_ms, max_future_skew_ms)


def _valid_event(model: RawEventModel, fallback_event_id: str, now_ms: int, max_future_skew_ms: int) -> ValidEvent:
    event_time_ms = int(model.event_time)
    if event_time_ms > now_ms + max_future_skew_ms:
        raise Rejected("invalid_event_time", "event_time", f"{event_time_ms} is too far in the future")
    values = {k: v for k, v in model.values.model_dump().items() if v is not None}
    return ValidEvent(
        event_id=model.event_id or fallback_event_id,
        entity_id=model.entity_id,
        event_time_ms=event_time_ms,
        schema_version=model.schema_version,
        values=values,
    )


def _validate_fast(value: bytes, fallback_event_id: str, now_ms: int, max_future_skew_ms: int) -> ValidEvent | None:
    """The common valid JSON record in one pydantic-core pass; None sends the record through the model path
    (which accepts it the slow way or raises `Rejected` naming the field)."""
    try:
        doc = _FAST.validate_json(value)
    except ValidationError:
        return None
    entity_id = doc["entity_id"]
    event_time_ms = doc["event_time"]
    if (
        not entity_id.strip()
        or doc["schema_version"] not in SUPPORTED_SCHEMA_VERSIONS
        or event_time_ms > now_ms + max_future_skew_ms
    ):
        return None
    values = doc["values"]
    if _OPTIONAL_VALUES:
        values = {k: v for k, v in values.items() if v is not None}
    return ValidEvent(
        event_id=doc.get("event_id") or fallback_event_id,
        entity_id=entity_id,
        event_time_ms=event_time_ms,
        schema_version=doc["schema_version"],
        values=values,
    )
