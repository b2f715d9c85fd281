"""The batch path of ingest (no broker): Event bytes written directly are the bytes protobuf writes; a batch gives
the same events and dead letters, in the same order, as the per-record path; traces continue as before."""

from __future__ import annotations

import json

import pytest
from ingest_definitions import DELIVERY, EVERYTHING, SEA, apply, validator
from mlops import contracts
from mlops.bus import MemoryBus, Record
from mlops.contracts import events_pb2
from mlops.telemetry import setup_tracing
from mlops.topics import EVENTS, EVENTS_DLQ, RAW_EVENTS, TopicSpec
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_ingest_edge_kafka import good

from services.ingest.convert import EventEncoder, to_event, validate
from services.ingest.core import MAX_RAW_RECORD_BYTES, ValidEvent
from services.ingest.edge import Ingest
from services.ingest.settings import IngestSettings

T0 = 1_700_000_000_000
NOW = T0 + 60_000


def test_the_encoder_writes_every_event_field() -> None:
    assert EventEncoder.FIELDS == tuple(f.name for f in events_pb2.Event.DESCRIPTOR.fields)


@pytest.mark.parametrize(("values", "categories", "partition", "offset", "ids"), [
    ({"x0": 1.5, "x1": 0.0, "x2": -0.0}, {}, 0, 0, ("raw/0/0", "e")),
    ({"n": 3, "t": 1_800_000_000_000, "b": 1.0, "tiny": 5e-324, "huge": 1.7e308, "neg": -2.5}, {}, 2, 300,
     ("o-1", "c9")),
    ({}, {"mode": "eco", "site": "é" * 70, "zone": "__other__", "empty": ""}, 1, 2**40, ("x" * 300, "ü" * 129)),
    ({"k" * 200: 1.0, "a": 2.0, "Z": 3.0}, {"b": "v"}, 2**31 - 1, 2**63 - 1, ("id", "e" * 128)),
    ({"x0": 1.0}, {}, 0, 5, ("", "e")),  # empty strings are proto3 defaults: omitted
])
def test_event_bytes_are_what_protobuf_writes(values: dict, categories: dict, partition: int, offset: int,
                                              ids: tuple[str, str]) -> None:
    for source_name, schema_version, ingest_ms in (("readings", 3, NOW), ("", 0, 0)):
        ev = ValidEvent(source_name, ids[0], ids[1], T0 + 7, schema_version, values, categories)
        want = contracts.encode(to_event(ev, "raw.events", partition, offset, ingest_ms))
        got = EventEncoder(source_name, schema_version, "raw.events", ingest_ms).encode(
            ids[0], ids[1], T0 + 7, values, categories, partition, offset)
        assert got == want
        assert contracts.decode(events_pb2.Event, got) == contracts.decode(events_pb2.Event, want)


def test_one_encoder_writes_records_of_any_keys_in_any_order() -> None:
    """An encoder serves a whole batch: maps with other keys, the same keys in another order, offsets and times
    across the 7-bit boundaries its caches split at."""
    encoder = EventEncoder("orders", 1, "orders.raw", NOW)
    maps = [{"a": 1.0, "b": 2.0}, {"b": 2.0, "a": 1.0}, {"a": 5.0}, {}, {"b": 1.0, "amount": 3.0, "a": 0.5}]
    for i, values in enumerate(maps * 3):
        offset, time_ms = [0, 1, 127, 128, 129, 16383, 16384, 2**35][i % 8], [1, 127, 128, T0 + i][i % 4]
        ev = ValidEvent("orders", f"orders.raw/0/{offset}", f"c{i}", time_ms, 1, values, {"ch": "web"} if i % 2 else {})
        want = contracts.encode(to_event(ev, "orders.raw", i % 3, offset, NOW))
        assert encoder.encode(ev.event_id, ev.entity_id, time_ms, values, ev.categories, i % 3, offset) == want


def test_the_batch_leaves_empty_oversize_and_unparsable_records_to_the_full_path() -> None:
    v = validator(SEA, "sea_events")
    doc = json.loads(good(1))
    oversize = json.dumps(doc | {"event_id": "x" * 200}).replace('"values"', " " * MAX_RAW_RECORD_BYTES
                                                                 + '"values"').encode()
    docs = v.validate_json_batch([b"", oversize, b"nope", None, good(1), good(2) + b" trailing", b"[1]"],
                                 now_ms=NOW)
    assert docs[:4] == [None] * 4 and docs[5:] == [None, None]
    assert docs[4] is not None and docs[4]["entity_id"] == doc["entity_id"]


def _mixed_sea() -> list[tuple[bytes, dict[str, str] | None]]:
    """Raw SEA records of every kind the per-record path knows, among common valid ones."""
    raw = events_pb2.RawEvent(entity_id="p1", event_time_ms=T0, schema_version=1, values={"x0": 1, "x1": 2, "x2": 3})
    return [
        (good(0), None),
        (good(1).replace(b'"event_time": 1700000000001', b'"event_time": "2023-11-14T22:13:20.001Z"'), None),
        (good(2), None),
        (b'{"entity_id": "e", "values": {}}', None),  # missing fields: dead letter
        (good(4), {"content-type": "application/json"}),
        (contracts.encode(raw), {"content-type": contracts.CONTENT_TYPE}),  # protobuf RawEvent
        (good(6).replace(b'"x2": 9.0', b'"x2": 11.0'), None),  # out of range: dead letter
        (good(7), None),
        (b"", None),
        (good(9), None),
    ]


def _raw_records(bus: MemoryBus, topic: str, items: list[tuple[bytes, dict[str, str] | None]]) -> list[Record]:
    producer = bus.producer(client_id="raw")
    for value, headers in items:
        producer.send(topic, value, key="k", headers=headers)
    producer.flush()
    return bus.records(topic)


def _ingest(bus: MemoryBus) -> Ingest:
    ingest = Ingest(IngestSettings(group_id="batch"), bus)
    ingest.follower.start(5)
    return ingest


@pytest.mark.parametrize(("definitions", "source", "make"), [
    (SEA, "sea_events", None),
    (DELIVERY, "orders", "order"),
    (EVERYTHING, "readings", "reading"),
])
def test_a_batch_gives_the_per_record_paths_events_and_dead_letters_in_order(definitions, source, make) -> None:  # noqa: ANN001
    bus = MemoryBus(partitions=1)
    revision = apply(bus, definitions)
    src = next(s for s in revision.definitions.sources if s.name == source)
    topic = bus.topic(TopicSpec(src.topic, "raw records"))
    items = _mixed_sea() if make is None else [(value, None) for value in _examples(make)]
    records = _raw_records(bus, topic, items)
    ingest = _ingest(bus)
    try:
        ingest.handle_batch(records)
        ingest.producer.flush()
    finally:
        ingest.follower.stop()
    got = [r.decode(events_pb2.Event) for r in bus.records(bus.topic(EVENTS))]
    v = ingest._config.routes[topic].validator  # type: ignore[union-attr]
    want, dead = [], []
    for r in records:  # what the per-record path makes of each record, at the batch's ingest time
        try:
            ev = validate(r.value, v, content_type=r.header("content-type"), now_ms=got[0].ingest_time_ms,
                          fallback_event_id=f"{r.topic}/{r.partition}/{r.offset}")
            pb = to_event(ev, r.topic, r.partition, r.offset, got[0].ingest_time_ms)
            want.append(contracts.decode(events_pb2.Event, contracts.encode(pb)))
        except Exception as exc:  # noqa: BLE001
            dead.append(getattr(exc, "field", "?"))
    for ev in got:
        ev.ingest_time_ms = got[0].ingest_time_ms  # the per-record path stamps its own clock
    assert got == want and len(got) + len(dead) == len(records)
    dlq = [r.decode(events_pb2.DeadLetter) for r in bus.records(bus.topic(EVENTS_DLQ))]
    assert [d.field for d in dlq] == dead


def _examples(kind: str) -> list[bytes]:
    if kind == "order":
        base = {"customer_id": "c1", "ordered_at": T0, "schema_version": 1,
                "values": {"amount": 10.0, "items": 2, "express": True, "channel": "web"}}
        variants = [{}, {"payment": "card"}, {"payment": None}, {"items": 2.0}, {"items": 2.5}, {"channel": "fax"},
                    {"express": 1}, {"amount": -1.0}]
        return [json.dumps(base | {"event_id": f"o-{i}", "values": base["values"] | v}).encode()
                for i, v in enumerate(variants)]
    base = {"device_id": "d1", "at": T0, "schema_version": 3, "values": {
        "temp": 20.5, "count": 3, "door_open": False, "mode": "eco", "site": "lab", "zone": "n", "serviced_at": T0}}
    variants = [{}, {"zone": "w"}, {"firmware": "v9"}, {"firmware": "v1", "humidity": 50, "alarm": True},
                {"mode": "turbo"}, {"serviced_at": "2023-11-14T22:13:20Z"}, {"temp": float("nan")}, {"count": -1}]
    return [json.dumps(base | {"values": base["values"] | v}).encode() for v in variants]


def test_traces_continue_through_the_batch_path() -> None:
    exporter = InMemorySpanExporter()
    setup_tracing("ingest-batch-test", exporter=exporter)
    bus = MemoryBus(partitions=1)
    apply(bus, SEA)
    sampled, unsampled = "ab" * 16, "cd" * 16
    records = _raw_records(bus, bus.topic(RAW_EVENTS), [
        (good(0), {"traceparent": f"00-{sampled}-{'11' * 8}-01", "baggage": "tenant=a"}),
        (good(1), None),
        (good(2), {"traceparent": f"00-{unsampled}-{'22' * 8}-00"}),
        (good(3), None),
    ])
    ingest = _ingest(bus)
    try:
        exporter.clear()
        ingest.handle_batch(records)
        ingest.producer.flush()
    finally:
        ingest.follower.stop()
    out = [r.headers for r in bus.records(bus.topic(EVENTS))]
    parents = [h["traceparent"].decode().split("-") for h in out]
    spans = [s for s in exporter.get_finished_spans() if s.name.startswith("process ")]
    [child] = [s for s in spans if format(s.context.trace_id, "032x") == sampled]
    assert child.parent is not None and format(child.parent.span_id, "016x") == "11" * 8
    assert parents[0][1:3] == [sampled, format(child.context.span_id, "016x")] and int(parents[0][3], 16) & 1
    assert out[0]["baggage"] == b"tenant=a"
    assert parents[2][1] == unsampled and not int(parents[2][3], 16) & 1  # not sampled upstream: nor here
    assert not [s for s in spans if format(s.context.trace_id, "032x") == unsampled]
    [batch] = [s for s in spans if s.parent is None]  # the untraced records share one root span
    assert parents[1] == parents[3]
    assert parents[1][1:3] == [format(batch.context.trace_id, "032x"), format(batch.context.span_id, "016x")]
    assert int(parents[1][3], 16) & 1  # sampled
    assert batch.attributes["messaging.batch.message_count"] == 2
