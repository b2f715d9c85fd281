"""Unit tests of ingest's transport-free core: every rejection names its field and error type."""

from __future__ import annotations

import json

import pytest
from mlops import contracts
from mlops.contracts import events_pb2
from mlops.schema import MAX_RAW_RECORD_BYTES

from services.ingest.convert import validate
from services.ingest.core import JSON, PROTOBUF, detect_format
from services.ingest.errors import Rejected

NOW = 1_800_000_000_000
T = 1_700_000_000_000


def raw(**over: object) -> bytes:
    doc: dict[str, object] = {
        "entity_id": "e1",
        "event_time": T,
        "schema_version": 1,
        "values": {"x0": 1.0, "x1": 2, "x2": 10},
    }
    doc.update(over)
    return json.dumps(doc).encode()


def check(value: bytes, content_type: str | None = None):
    return validate(value, content_type=content_type, fallback_event_id="raw/0/7", now_ms=NOW)


def test_valid_json_with_int_time() -> None:
    ev = check(raw())
    assert (ev.entity_id, ev.event_time_ms, ev.schema_version) == ("e1", T, 1)
    assert ev.values == {"x0": 1.0, "x1": 2.0, "x2": 10.0}
    assert ev.event_id == "raw/0/7"


def test_valid_json_with_iso_time_and_event_id() -> None:
    ev = check(raw(event_time="2023-11-14T22:13:20Z", event_id="abc"))
    assert ev.event_time_ms == T and ev.event_id == "abc"
    assert check(raw(event_time="2023-11-14T22:13:20+00:00")).event_time_ms == T


def test_valid_protobuf() -> None:
    msg = events_pb2.RawEvent(
        entity_id="e2", event_time_ms=T, schema_version=1, values={"x0": 0.0, "x1": 5.5, "x2": 9.0}, event_id="p1"
    )
    data = contracts.encode(msg)
    ev = check(data)
    assert (ev.entity_id, ev.event_id, ev.values["x1"]) == ("e2", "p1", 5.5)
    assert check(data, contracts.CONTENT_TYPE).entity_id == "e2"


@pytest.mark.parametrize(
    ("value", "error_type", "field"),
    [
        (raw(values={"x0": 1, "x1": 2}), "missing_field", "values.x2"),
        (raw(values={"x0": 1, "x1": 2, "x2": 11}), "out_of_range", "values.x2"),
        (raw(values={"x0": -0.1, "x1": 2, "x2": 1}), "out_of_range", "values.x0"),
        (raw(values={"x0": "1", "x1": 2, "x2": 1}), "invalid_type", "values.x0"),
        (raw(values={"x0": True, "x1": 2, "x2": 1}), "invalid_type", "values.x0"),
        (raw(values={"x0": 1, "x1": 2, "x2": 1, "x9": 1}), "unknown_field", "values.x9"),
        (raw().replace(b'"x1": 2', b'"x1": NaN'), "non_finite", "values.x1"),
        (raw().replace(b'"x1": 2', b'"x1": Infinity'), "non_finite", "values.x1"),
        (raw(entity_id=""), "invalid_value", "entity_id"),
        (raw(entity_id="   "), "invalid_value", "entity_id"),
        (raw(entity_id="e" * 129), "invalid_value", "entity_id"),
        (raw(entity_id=5), "invalid_type", "entity_id"),
        (raw(schema_version=2), "unsupported_schema_version", "schema_version"),
        (raw(event_time="yesterday"), "invalid_event_time", "event_time"),
        (raw(event_time=-1), "invalid_event_time", "event_time"),
        (raw(event_time=NOW + 2 * 24 * 3600 * 1000), "invalid_event_time", "event_time"),
        (
            json.dumps({"entity_id": "e", "schema_version": 1, "values": {}}).encode(),
            "missing_field",
            "event_time",
        ),
    ],
)
def test_rejections_name_the_field(value: bytes, error_type: str, field: str) -> None:
    with pytest.raises(Rejected) as info:
        check(value)
    assert info.value.error_type == error_type
    assert info.value.field == field
    assert field in info.value.reason


@pytest.mark.parametrize(
    ("value", "error_type"),
    [
        (b'{"entity_id": "e1", ', "malformed_json"),
        (b"[1, 2]", "malformed_json"),
        (b"", "empty_record"),
        (b"\x08\x01\x12\xff\xff", "malformed_protobuf"),
        (b"{" + b" " * MAX_RAW_RECORD_BYTES + b"}", "oversize"),
    ],
)
def test_whole_record_rejections(value: bytes, error_type: str) -> None:
    with pytest.raises(Rejected) as info:
        check(value)
    assert info.value.error_type == error_type and info.value.field == ""


def test_protobuf_defaults_are_rejected() -> None:
    with pytest.raises(Rejected) as info:
        check(
            contracts.encode(
                events_pb2.RawEvent(event_time_ms=T, schema_version=1, values={"x0": 1, "x1": 1, "x2": 1})
            )
        )
    assert info.value.field == "entity_id"


def test_detect_format() -> None:
    assert detect_format(b'  {"a": 1}', None) == JSON
    assert detect_format(b"\x08\x01", None) == PROTOBUF
    assert detect_format(b"\x08\x01", "application/json") == JSON
    assert detect_format(b"{", "application/x-protobuf") == PROTOBUF


def test_garbage_never_escapes_as_another_exception() -> None:
    import random

    rng = random.Random(7)
    for _ in range(300):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        try:
            check(blob)
        except Rejected:
            pass


def test_fast_path_agrees_with_the_model() -> None:
    """The JSON fast path never accepts what the model refuses, and gives the same ValidEvent when both accept."""
    from services.ingest import core as validation

    def via_model(value: bytes) -> object:
        try:
            m = validation.RawEventModel.model_validate_json(value)
        except Exception:
            return "rejected"
        if int(m.event_time) > NOW + 24 * 3600 * 1000:
            return "rejected"
        vals = {k: v for k, v in m.values.model_dump().items() if v is not None}
        return (m.event_id or "raw/0/7", m.entity_id, int(m.event_time), m.schema_version, vals)

    cases = [
        raw(), raw(event_id="x"), raw(event_id=None), raw(schema_version=1.0), raw(schema_version=True),
        raw(event_time=1.5e12), raw(event_time=True), raw(event_time=0), raw(entity_id=" "), raw(entity_id=5),
        raw(values={"x0": True, "x1": 1, "x2": 1}), raw(values={"x0": 1, "x1": 1, "x2": 1, "y": 1}),
        raw(event_id="e" * 257), raw(event_id=7), raw(extra=1), raw(values={"x0": 1, "x1": 1, "x2": None}),
        raw(event_time=NOW + 10**12), b'{"entity_id": "e", "entity_id": "f", "event_time": 5, "schema_version": 1,'
        b' "values": {"x0": 1, "x1": 1, "x2": 1}}',
    ]
    for value in cases:
        fast = validation._validate_fast(value, "raw/0/7", NOW, 24 * 3600 * 1000)
        expected = via_model(value)
        if fast is not None:
            got = (fast.event_id, fast.entity_id, fast.event_time_ms, fast.schema_version, fast.values)
            assert got == expected, value
        if expected == "rejected":
            assert fast is None, value
            with pytest.raises(Rejected):
                check(value)
        else:
            ev = check(value)
            assert (ev.event_id, ev.entity_id, ev.event_time_ms, ev.schema_version, ev.values) == expected
