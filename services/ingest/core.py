"""The transport-free core of ingest: a declared source compiled into a `SourceValidator`, which turns a raw
record's JSON bytes (or the fields of a decoded `RawEvent`) into a typed `ValidEvent`, or raises `Rejected` naming
the field.

A source's JSON record is `{<entity id_field>, <event_time_field> (epoch ms int or ISO-8601 string),
"schema_version", "values": {<declared field>: value, ...}, "event_id"?}`. Field types: float and int with their
ranges (an int must be integral), bool (JSON true/false only), categorical (a string; outside the vocabulary the
field's `unknown` policy rejects it, keeps it as `__other__` or treats the field as absent), timestamp (epoch ms
int or ISO-8601 string, kept as epoch ms). Required fields must be there; an optional one may be absent or null;
unknown fields, NaN and infinities are refused; `schema_version` must be the source's.

Two validators per source, both built once per definitions revision (never per record):
- `_fast`, a strict TypedDict validator of the common valid record: pydantic-core parses and checks the bytes in
  one pass and returns plain dicts (no model instance, no dump). It accepts a subset of what `_full` accepts
  (integer times, vocabulary values only, every check at least as strict).
- `_full`, the same layout with the lenient cases (ISO times, integral floats for ints, the unknown-category
  policies) and a precise error for everything else; each refusal names its field.
Anything `_fast` refuses goes through `_full`, which accepts it the slow way or names the field, so the fast path
never accepts what `_full` refuses. Only sources with categorical, bool or optional fields pay for splitting the
values afterwards.

A poll batch is validated at once (`validate_json_batch`): `_fast` over the whole list of raw values in one
pydantic-core call (each item parsed as JSON and validated in Rust; an item it refuses comes back as its bytes
instead of failing the batch), so per record Python only picks the accepted documents; the rest take the full path
one by one (`validate_json`), which names the field.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Annotated, Any, Literal

from mlops.definitions import Definitions, FieldType, Source, SourceField
from mlops.definitions.model import UnknownCategory
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, Json, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError
from typing_extensions import NotRequired, TypedDict  # noqa: UP035 (pydantic needs this TypedDict on 3.11)

from services.ingest.errors import Rejected

__all__ = [
    "DEFAULT_MAX_FUTURE_SKEW_MS",
    "JSON",
    "MAX_ENTITY_ID_LENGTH",
    "MAX_RAW_RECORD_BYTES",
    "OTHER",
    "PROTOBUF",
    "SourceValidator",
    "ValidEvent",
    "check_size",
    "compile_sources",
    "detect_format",
]

JSON = "json"
PROTOBUF = "protobuf"
DEFAULT_MAX_FUTURE_SKEW_MS = 24 * 3600 * 1000
MAX_ENTITY_ID_LENGTH = 128
MAX_EVENT_ID_LENGTH = 256
MAX_CATEGORY_LENGTH = 256
MAX_RAW_RECORD_BYTES = 64 * 1024  # larger raw records are dead-lettered as oversize
OTHER = "__other__"  # what a categorical value outside the vocabulary becomes under `unknown: other`
RESERVED_KEYS = ("schema_version", "values", "event_id")  # the record's own keys beside the id and time fields
_NO_CATEGORIES: Mapping[str, str] = MappingProxyType({})
_STRICT = ConfigDict(extra="forbid", strict=True)


@dataclass(frozen=True, slots=True)
class ValidEvent:
    source_name: str
    event_id: str
    entity_id: str
    event_time_ms: int
    schema_version: int
    values: dict[str, float]  # numeric, bool (0/1) and timestamp (epoch ms) fields
    categories: Mapping[str, str] = field(default_factory=dict)  # categorical fields: the value or OTHER


# --- the lenient checks of the full path (errors carry our own error types) --------------------------------
def _fail(error_type: str, message: str) -> PydanticCustomError:
    # the message is final text, not a template: double the braces a value may contain
    return PydanticCustomError(error_type, message.replace("{", "{{").replace("}", "}}"))


def _epoch_ms(v: Any, error_type: str, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int | str):
        raise _fail(error_type, f"{what} must be epoch milliseconds (integer) or an ISO-8601 string")
    if isinstance(v, str):
        try:
            dt = datetime.fromisoformat(v.replace("Z", "+00:00") if v.endswith("Z") else v)
        except ValueError:
            raise _fail(error_type, f"not an ISO-8601 time: {v[:40]!r}") from None
        v = int((dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)).timestamp() * 1000)
    if v <= 0:
        raise _fail(error_type, f"{what} must be after 1970-01-01")
    return v


def _integral(v: Any) -> Any:
    """An int field takes integral numbers (2 or 2.0); a fraction, NaN or infinity is refused."""
    if isinstance(v, float):
        if not math.isfinite(v):
            raise _fail("non_finite", "an int field needs a finite number")
        if not v.is_integer():
            raise _fail("invalid_value", f"an int field needs an integral number, got {v!r}")
        return int(v)
    return v


def _categorical(f: SourceField) -> Callable[[Any], str | None]:
    known = frozenset(f.vocabulary or ())
    policy = f.unknown

    def check(v: Any) -> str | None:
        if v is None and not f.required:
            return None
        if not isinstance(v, str):
            raise _fail("invalid_type", f"a categorical value must be a string, got {type(v).__name__}")
        if len(v) > MAX_CATEGORY_LENGTH:
            raise _fail("invalid_value", f"longer than {MAX_CATEGORY_LENGTH} characters")
        if not known or v in known:
            return v
        if policy is UnknownCategory.OTHER:
            return OTHER
        if policy is UnknownCategory.MISSING:
            return None
        raise _fail("unknown_category", f"{v[:40]!r} is not in the vocabulary {sorted(known)}")

    return check


def _bool_from_double(v: Any) -> Any:
    return bool(v) if isinstance(v, float) and v in (0.0, 1.0) else v


def _int_from_double(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _not_blank(v: str) -> str:
    if not v.strip():
        raise _fail("invalid_value", "entity id is blank")
    return v


def _schema(source: Source) -> Callable[[int], int]:
    def check(v: int) -> int:
        if v != source.schema_version:
            raise _fail("unsupported_schema_version",
                        f"unsupported schema_version {v}; source {source.name!r} is at {source.schema_version}")
        return v

    return check


# --- per-field types -------------------------------------------------------------------------------------------
def _bounds(f: SourceField) -> dict[str, Any]:
    if f.type is FieldType.INT:  # integer bounds, so the error message reads like the declaration
        return {"ge": None if f.minimum is None else math.ceil(f.minimum),
                "le": None if f.maximum is None else math.floor(f.maximum)}
    return {"ge": f.minimum, "le": f.maximum}


def _field_type(f: SourceField, *, fast: bool) -> Any:
    if f.type is FieldType.FLOAT:
        t: Any = Annotated[float, Field(allow_inf_nan=False, **_bounds(f))]
    elif f.type is FieldType.INT:
        t = Annotated[int, Field(**_bounds(f))] if fast else Annotated[int, BeforeValidator(_integral),
                                                                        Field(**_bounds(f))]
    elif f.type is FieldType.BOOL:
        t = bool
    elif f.type is FieldType.TIMESTAMP:
        t = Annotated[int, Field(gt=0)] if fast else Annotated[
            int, BeforeValidator(lambda v: _epoch_ms(v, "invalid_value", "a timestamp"))]
    elif f.vocabulary is None:
        t = Annotated[str, Field(max_length=MAX_CATEGORY_LENGTH)]
    elif fast:  # only the vocabulary: anything else takes the full path and its `unknown` policy
        t = Literal[f.vocabulary]  # type: ignore[valid-type]
    else:
        return Annotated[Any, AfterValidator(_categorical(f))] if f.required else NotRequired[
            Annotated[Any, AfterValidator(_categorical(f))]]
    return t if f.required else NotRequired[t | None]


def _layout(source: Source, id_field: str, *, fast: bool) -> Any:
    """The record's TypedDict: the id and time fields under their declared names, then the record's own keys."""
    values = TypedDict(f"{source.name}_values", {f.name: _field_type(f, fast=fast) for f in source.fields})  # type: ignore[operator]
    values.__pydantic_config__ = _STRICT  # type: ignore[attr-defined]
    entity_id: Any = Annotated[str, Field(min_length=1, max_length=MAX_ENTITY_ID_LENGTH)]
    if fast:  # blank ids, schema versions and future times are checked by the caller
        event_time: Any = Annotated[int, Field(gt=0)]
        schema_version: Any = int
    else:
        entity_id = Annotated[entity_id, AfterValidator(_not_blank)]
        time_field = source.event_time_field
        event_time = Annotated[int, BeforeValidator(lambda v: _epoch_ms(v, "invalid_event_time", time_field))]
        schema_version = Annotated[int, AfterValidator(_schema(source))]
    record = TypedDict(f"{source.name}_record", {  # type: ignore[operator]  # noqa: UP013 (built at run time)
        id_field: entity_id,
        source.event_time_field: event_time,
        "schema_version": schema_version,
        "values": values,
        "event_id": NotRequired[Annotated[str, Field(max_length=MAX_EVENT_ID_LENGTH)] | None],
    })
    record.__pydantic_config__ = _STRICT  # type: ignore[attr-defined]
    return record


def _batch_of(record: Any) -> TypeAdapter[list[Any]]:
    """A list of raw values, each parsed as JSON and validated as `record` — or, when it is not one, returned as
    it came (left to right: the record first), so one bad record never fails the batch."""
    return TypeAdapter(list[Annotated[Json[record] | Any, Field(union_mode="left_to_right")]])  # type: ignore[valid-type]


# pydantic error type -> our machine-readable error_type (our own checks already raise with ours)
_ERROR_TYPES = {
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
    "finite_number": "non_finite",
    "less_than_equal": "out_of_range",
    "greater_than_equal": "out_of_range",
    "greater_than": "out_of_range",
    "string_too_short": "invalid_value",
    "string_too_long": "invalid_value",
}
_OWN_TYPES = frozenset({"invalid_value", "invalid_type", "non_finite", "unknown_category", "invalid_event_time",
                        "unsupported_schema_version"})


def _rejection(err: ValidationError) -> Rejected:
    first = err.errors(include_url=False)[0]
    loc, kind = first["loc"], first["type"]
    if kind == "json_invalid" or not loc:  # not JSON, or not a JSON object
        return Rejected("malformed_json", "", first["msg"])
    error_type = _ERROR_TYPES.get(kind) or (
        kind if kind in _OWN_TYPES else "invalid_type" if kind.endswith("_type") else "invalid_value")
    return Rejected(error_type, ".".join(str(p) for p in loc), first["msg"])


class SourceValidator:
    """One declared source's records → `ValidEvent`, or `Rejected` naming the field. Immutable once built."""

    def __init__(self, source: Source, id_field: str):
        clash = {id_field, source.event_time_field} & set(RESERVED_KEYS)
        if clash or id_field == source.event_time_field:
            raise ValueError(f"source {source.name!r}: its id field {id_field!r} and event time field "
                             f"{source.event_time_field!r} must differ from each other and from {RESERVED_KEYS}")
        self.source_name = source.name
        self.schema_version = source.schema_version
        self.id_field = id_field
        self.time_field = source.event_time_field
        fast = _layout(source, id_field, fast=True)
        self._fast = TypeAdapter(fast)
        self._fast_batch = _batch_of(fast)
        self._full = TypeAdapter(_layout(source, id_field, fast=False))
        self._categorical = tuple(f.name for f in source.fields if f.type is FieldType.CATEGORICAL)
        self._bools = tuple(f.name for f in source.fields if f.type is FieldType.BOOL)
        self._optional = any(not f.required for f in source.fields)
        # a RawEvent carries every number as a double: how bool and timestamp fields read one
        self._doubles: dict[str, Callable[[Any], Any]] = {
            f.name: _bool_from_double if f.type is FieldType.BOOL else _int_from_double
            for f in source.fields if f.type in (FieldType.BOOL, FieldType.TIMESTAMP)}
        # a source of required float/int/timestamp fields only (SEA): the validated values are the event's as is
        self._split = bool(self._categorical or self._bools or self._optional)

    def validate_json(self, value: bytes, *, fallback_event_id: str, now_ms: int,
                      max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS) -> ValidEvent:
        """Validate one JSON record; raise `Rejected` (never anything else for bad input)."""
        fast = self._validate_fast(value, fallback_event_id, now_ms, max_future_skew_ms)
        if fast is not None:
            return fast
        try:
            doc = self._full.validate_json(value)
        except ValidationError as exc:
            raise _rejection(exc) from None
        return self._event(doc, fallback_event_id, now_ms, max_future_skew_ms)

    def validate_json_batch(self, values: Sequence[bytes | None], *, now_ms: int,
                            max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS) -> list[dict[str, Any] | None]:
        """The common valid JSON records of a batch in one pydantic-core call: for each value its validated
        document (the record's fields under their JSON names; `values` not yet `finish`ed), or None where the
        record must take the full path (`validate_json`: accepted the slow way, or `Rejected` naming the field).
        Never raises for bad input. Empty and oversize values are left to the full path (`check_size`)."""
        docs = self._fast_batch.validate_python(
            [v if v is not None and 0 < len(v) <= MAX_RAW_RECORD_BYTES else b"" for v in values])
        limit, version, id_field, time_field = now_ms + max_future_skew_ms, self.schema_version, self.id_field, \
            self.time_field
        return [doc if doc.__class__ is dict and doc[time_field] <= limit and doc["schema_version"] == version
                and doc[id_field].strip() else None for doc in docs]

    def validate_fields(self, fields: Mapping[str, Any], *, fallback_event_id: str, now_ms: int,
                        max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS) -> ValidEvent:
        """Validate one record already decoded into the JSON form's fields (e.g. from a RawEvent, whose numbers
        are all doubles: a bool field's 0/1 is taken as false/true); raise `Rejected`."""
        values = fields.get("values")
        if self._doubles and isinstance(values, dict):
            fields = {**fields, "values": {k: self._doubles[k](v) if k in self._doubles else v
                                           for k, v in values.items()}}
        try:
            doc = self._full.validate_python(fields)
        except ValidationError as exc:
            raise _rejection(exc) from None
        return self._event(doc, fallback_event_id, now_ms, max_future_skew_ms)

    def _event(self, doc: dict[str, Any], fallback_event_id: str, now_ms: int, max_future_skew_ms: int
               ) -> ValidEvent:
        event_time_ms = doc[self.time_field]
        if event_time_ms > now_ms + max_future_skew_ms:
            raise Rejected("invalid_event_time", self.time_field, f"{event_time_ms} is too far in the future")
        values, categories = self.finish(doc["values"])
        return ValidEvent(self.source_name, doc.get("event_id") or fallback_event_id, doc[self.id_field],
                          event_time_ms, doc["schema_version"], values, categories)

    def finish(self, values: dict[str, Any]) -> tuple[dict[str, Any], Mapping[str, str]]:
        """Absent (null) fields dropped, categorical values moved out, bools as 0/1."""
        if not self._split:
            return values, _NO_CATEGORIES
        if self._optional:
            values = {k: v for k, v in values.items() if v is not None}
        categories = _NO_CATEGORIES
        if self._categorical:
            categories = {k: values.pop(k) for k in self._categorical if k in values}
        for k in self._bools:
            if k in values:
                values[k] = 1.0 if values[k] else 0.0
        return values, categories

    def _validate_fast(self, value: bytes, fallback_event_id: str, now_ms: int, max_future_skew_ms: int
                       ) -> ValidEvent | None:
        """The common valid JSON record in one pydantic-core pass; None sends the record through the full path
        (which accepts it the slow way or raises `Rejected` naming the field)."""
        try:
            doc = self._fast.validate_json(value)
        except ValidationError:
            return None
        entity_id = doc[self.id_field]
        event_time_ms = doc[self.time_field]
        if (
            not entity_id.strip()
            or doc["schema_version"] != self.schema_version
            or event_time_ms > now_ms + max_future_skew_ms
        ):
            return None
        values, categories = self.finish(doc["values"])
        return ValidEvent(self.source_name, doc.get("event_id") or fallback_event_id, entity_id, event_time_ms,
                          doc["schema_version"], values, categories)


def compile_sources(definitions: Definitions) -> dict[str, SourceValidator]:
    """A validator per declared source, by source name (built once per definitions revision)."""
    return {s.name: SourceValidator(s, definitions.entity(s.entity).id_field) for s in definitions.sources}


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
