"""Unit tests of ingest's core on declared sources other than SEA: every field type and unknown-category policy
(a source declaring them all), the delivery example (categorical fields, its own id and time fields), RawEvent
protobufs, and the fast path agreeing with the full one."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from ingest_definitions import DELIVERY, EVERYTHING, assert_fast_path_agrees, validator
from mlops import contracts
from mlops.contracts import events_pb2
from mlops.definitions import DefinitionsError

from services.ingest.convert import to_event, validate
from services.ingest.core import OTHER, SourceValidator, ValidEvent
from services.ingest.errors import Rejected

NOW = 1_800_000_000_000
T = 1_700_000_000_000
READINGS = validator(EVERYTHING, "readings")
ORDERS = validator(DELIVERY, "orders")


def reading(drop: tuple[str, ...] = (), **values: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "device_id": "d1", "at": T, "schema_version": 3,
        "values": {"temp": 21.5, "count": 7, "door_open": False, "mode": "eco", "site": "berlin-3", "zone": "n",
                   "firmware": "v2", "serviced_at": T - 1000, "humidity": 40, "alarm": True},
    }
    doc["values"].update(values)
    for name in drop:
        del doc["values"][name]
    return doc


def order(**values: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "customer_id": "c1", "ordered_at": T, "schema_version": 1,
        "values": {"amount": 12.5, "items": 2, "express": True, "channel": "web", "payment": "card"},
    }
    doc["values"].update(values)
    return doc


def check(v: SourceValidator, doc: dict[str, Any] | bytes, content_type: str | None = None) -> ValidEvent:
    value = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return validate(value, v, content_type=content_type, fallback_event_id="raw/0/7", now_ms=NOW)


def rejected(v: SourceValidator, doc: dict[str, Any] | bytes) -> Rejected:
    with pytest.raises(Rejected) as info:
        check(v, doc)
    assert info.value.field in info.value.reason
    return info.value


def test_every_type_valid() -> None:
    ev = check(READINGS, reading())
    assert (ev.source_name, ev.entity_id, ev.event_time_ms, ev.schema_version) == ("readings", "d1", T, 3)
    assert ev.values == {"temp": 21.5, "count": 7, "door_open": 0.0, "serviced_at": T - 1000, "humidity": 40,
                         "alarm": 1.0}
    assert dict(ev.categories) == {"mode": "eco", "site": "berlin-3", "zone": "n", "firmware": "v2"}
    assert all(type(v) is float for k, v in ev.values.items() if k in ("door_open", "alarm"))  # bool as 0/1


def test_optional_fields_absent_or_null() -> None:
    ev = check(READINGS, reading(drop=("humidity", "alarm", "firmware")))
    assert "humidity" not in ev.values and "alarm" not in ev.values and "firmware" not in ev.categories
    ev = check(READINGS, reading(humidity=None, alarm=None, firmware=None))
    assert "humidity" not in ev.values and "alarm" not in ev.values and "firmware" not in ev.categories


def test_unknown_category_policies() -> None:
    assert check(READINGS, reading(zone="east")).categories["zone"] == OTHER  # unknown: other
    assert "firmware" not in check(READINGS, reading(firmware="v9")).categories  # unknown: missing
    assert check(READINGS, reading(site="anything at all")).categories["site"] == "anything at all"  # no vocabulary
    err = rejected(READINGS, reading(mode="turbo"))  # unknown: reject
    assert (err.error_type, err.field) == ("unknown_category", "values.mode") and "turbo" in err.reason


def test_timestamps_and_ints() -> None:
    assert check(READINGS, reading(serviced_at="2023-11-14T22:13:20Z")).values["serviced_at"] == T
    assert check(READINGS, reading(serviced_at="2023-11-14T22:13:20")).values["serviced_at"] == T  # naive: UTC
    assert check(READINGS, reading(count=7.0)).values["count"] == 7  # an integral number is an int
    ev = check(READINGS, {**reading(), "at": "2023-11-14T23:13:20+01:00"})
    assert ev.event_time_ms == T


@pytest.mark.parametrize(
    ("doc", "error_type", "field"),
    [
        (reading(temp=61), "out_of_range", "values.temp"),
        (reading(temp=-40.5), "out_of_range", "values.temp"),
        (reading(temp="21"), "invalid_type", "values.temp"),
        (reading(temp=True), "invalid_type", "values.temp"),
        (reading(count=7.5), "invalid_value", "values.count"),
        (reading(count=1001), "out_of_range", "values.count"),
        (reading(count="7"), "invalid_type", "values.count"),
        (reading(count=True), "invalid_type", "values.count"),
        (reading(door_open=1), "invalid_type", "values.door_open"),
        (reading(door_open="true"), "invalid_type", "values.door_open"),
        (reading(alarm=0), "invalid_type", "values.alarm"),
        (reading(mode=3), "invalid_type", "values.mode"),
        (reading(mode=None), "invalid_type", "values.mode"),
        (reading(site=["a"]), "invalid_type", "values.site"),
        (reading(site="x" * 257), "invalid_value", "values.site"),
        (reading(zone=1.5), "invalid_type", "values.zone"),
        (reading(serviced_at="last tuesday"), "invalid_value", "values.serviced_at"),
        (reading(serviced_at=1.5), "invalid_value", "values.serviced_at"),
        (reading(serviced_at=-5), "invalid_value", "values.serviced_at"),
        (reading(humidity=101), "out_of_range", "values.humidity"),
        (reading(drop=("mode",)), "missing_field", "values.mode"),
        (reading(drop=("serviced_at",)), "missing_field", "values.serviced_at"),
        (reading(extra=1), "unknown_field", "values.extra"),
        ({**reading(), "schema_version": 1}, "unsupported_schema_version", "schema_version"),
        ({**reading(), "at": "soon"}, "invalid_event_time", "at"),
        ({**reading(), "at": NOW + 10**10}, "invalid_event_time", "at"),
        ({**reading(), "device_id": " "}, "invalid_value", "device_id"),
        ({k: v for k, v in reading().items() if k != "device_id"}, "missing_field", "device_id"),
        ({**reading(), "entity_id": "d1"}, "unknown_field", "entity_id"),  # the id lives under its declared name
        ({**reading(), "event_time": T}, "unknown_field", "event_time"),
    ],
)
def test_rejections_name_the_field(doc: dict[str, Any], error_type: str, field: str) -> None:
    err = rejected(READINGS, doc)
    assert (err.error_type, err.field) == (error_type, field), err.reason


def test_non_finite_numbers_are_refused() -> None:
    base = json.dumps(reading())
    for text, field in ((base.replace('"temp": 21.5', '"temp": NaN'), "values.temp"),
                        (base.replace('"humidity": 40', '"humidity": Infinity'), "values.humidity"),
                        (base.replace('"count": 7', '"count": NaN'), "values.count")):
        err = rejected(READINGS, text.encode())
        assert (err.error_type, err.field) == ("non_finite", field), err.reason


def test_delivery_orders() -> None:
    ev = check(ORDERS, order())
    assert (ev.source_name, ev.entity_id, ev.event_time_ms) == ("orders", "c1", T)
    assert ev.values == {"amount": 12.5, "items": 2, "express": 1.0}
    assert dict(ev.categories) == {"channel": "web", "payment": "card"}
    assert check(ORDERS, order(channel="phone")).categories["channel"] == OTHER
    assert "payment" not in check(ORDERS, order(payment="bitcoin")).categories
    ev = check(ORDERS, order(express=False, payment=None))
    assert ev.values["express"] == 0.0 and "payment" not in ev.categories
    for doc, error_type, field in [
        (order(items=0), "out_of_range", "values.items"),
        (order(amount=5000.01), "out_of_range", "values.amount"),
        (order(express="yes"), "invalid_type", "values.express"),
        (order(channel=None), "invalid_type", "values.channel"),
        ({**order(), "entity_id": "c1"}, "unknown_field", "entity_id"),
        ({**order(), "ordered_at": "2023-13-45"}, "invalid_event_time", "ordered_at"),
    ]:
        err = rejected(ORDERS, doc)
        assert (err.error_type, err.field) == (error_type, field), err.reason


def test_events_carry_source_name_and_categories() -> None:
    event = to_event(check(ORDERS, order(channel="kiosk")), "orders.raw", 1, 9, NOW)
    assert event.source_name == "orders" and dict(event.categories) == {"channel": OTHER, "payment": "card"}
    assert dict(event.values) == {"amount": 12.5, "items": 2.0, "express": 1.0}
    event = to_event(check(validator(DELIVERY, "orders"), order(payment=None)), "orders.raw", 0, 1, NOW)
    assert dict(event.categories) == {"channel": "web"}


def test_raw_event_protobuf_of_any_source() -> None:
    raw = events_pb2.RawEvent(
        entity_id="c7", event_time_ms=T, schema_version=1, event_id="p1",
        values={"amount": 30.0, "items": 3.0, "express": 0.0}, categories={"channel": "app", "payment": "cash"},
    )
    ev = check(ORDERS, contracts.encode(raw))
    assert (ev.entity_id, ev.event_id, ev.event_time_ms) == ("c7", "p1", T)
    assert ev.values == {"amount": 30.0, "items": 3, "express": 0.0}
    assert dict(ev.categories) == {"channel": "app", "payment": "cash"}
    raw = events_pb2.RawEvent(
        entity_id="d2", event_time_ms=T, schema_version=3,
        values={"temp": 1.0, "count": 2.0, "door_open": 1.0, "serviced_at": float(T)},
        categories={"mode": "boost", "site": "s", "zone": "w"},
    )
    ev = check(READINGS, contracts.encode(raw), contracts.CONTENT_TYPE)
    assert ev.values == {"temp": 1.0, "count": 2, "door_open": 1.0, "serviced_at": T}
    assert dict(ev.categories) == {"mode": "boost", "site": "s", "zone": OTHER}


@pytest.mark.parametrize(
    ("values", "categories", "error_type", "field"),
    [
        ({"amount": 1.0, "items": 1.5, "express": 1.0}, {"channel": "web"}, "invalid_value", "values.items"),
        ({"amount": 1.0, "items": 1.0, "express": 0.5}, {"channel": "web"}, "invalid_type", "values.express"),
        ({"amount": 1.0, "items": 1.0, "express": 1.0, "channel": 1.0}, {}, "invalid_type", "values.channel"),
        ({"amount": 1.0, "items": 1.0, "express": 1.0}, {"channel": "web", "amount": "x"}, "invalid_value",
         "values.amount"),
        ({"amount": 1.0, "items": 1.0, "express": 1.0}, {}, "missing_field", "values.channel"),
        ({"amount": 1.0, "items": 1.0, "express": 1.0, "tip": 2.0}, {"channel": "web"}, "unknown_field",
         "values.tip"),
    ],
)
def test_raw_event_rejections_name_the_field(values: dict, categories: dict, error_type: str, field: str) -> None:
    raw = events_pb2.RawEvent(entity_id="c1", event_time_ms=T, schema_version=1, values=values,
                              categories=categories)
    err = rejected(ORDERS, contracts.encode(raw))
    assert (err.error_type, err.field) == (error_type, field), err.reason
    raw = events_pb2.RawEvent(event_time_ms=T, schema_version=1, values={"amount": 1.0, "items": 1.0,
                                                                         "express": 1.0}, categories={"channel": "web"})
    assert rejected(ORDERS, contracts.encode(raw)).field == "customer_id"  # protobuf defaults are not values


def test_fast_path_agrees_with_the_full_path() -> None:
    docs = [
        reading(), reading(zone="east"), reading(firmware="v9"), reading(firmware=None), reading(mode="turbo"),
        reading(count=7.0), reading(count=7.5), reading(serviced_at="2023-11-14T22:13:20Z"), reading(door_open=1),
        reading(drop=("humidity", "alarm", "firmware")), reading(humidity=None), reading(alarm=None),
        {**reading(), "schema_version": 1}, {**reading(), "at": "2023-11-14T22:13:20Z"}, {**reading(), "x": 1},
        {**reading(), "device_id": ""}, {**reading(), "event_id": "abc"}, reading(site="") , reading(zone=None),
    ]
    assert_fast_path_agrees(READINGS, [json.dumps(doc).encode() for doc in docs], NOW)
    docs = [order(), order(channel="phone"), order(payment="bitcoin"), order(payment=None), order(items=2.0),
            order(express=1), {**order(), "ordered_at": NOW + 10**12}]
    assert_fast_path_agrees(ORDERS, [json.dumps(doc).encode() for doc in docs], NOW)


def test_a_source_whose_id_or_time_field_clashes_with_the_record_keys_is_refused_at_apply() -> None:
    doc = copy.deepcopy(EVERYTHING)
    doc["entities"][0]["id_field"] = "values"
    with pytest.raises(DefinitionsError, match="id field 'values'"):
        validator(doc, "readings")
