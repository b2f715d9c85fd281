"""The ingest edge on the in-process bus: the declared sources' raw records in → events and dead letters out,
offsets committed, the bus's lag gauge kept, and definitions changing under a running ingest. No broker."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import yaml
from ingest_definitions import DELIVERY, SEA, apply
from mlops.bus import MemoryBus, StopFlag
from mlops.contracts import events_pb2
from mlops.topics import EVENTS, EVENTS_DLQ, RAW_EVENTS, TopicSpec
from prometheus_client import REGISTRY
from test_ingest_edge_kafka import BAD, good
from testkit import wait_until

from services.ingest.edge import Ingest
from services.ingest.settings import IngestSettings

T0 = 1_700_000_000_000
ORDERS = TopicSpec("orders.raw", "orders")


@contextmanager
def running(bus: MemoryBus, settings: IngestSettings) -> Iterator[Ingest]:
    """An ingest loop on a thread, stopped (flush + commit) on exit."""
    ingest = Ingest(settings, bus)
    stop = StopFlag(install_signals=False)
    thread = threading.Thread(target=ingest.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield ingest
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive()
    assert not ingest.follower.alive()


def committed(bus: MemoryBus, group: str, topic: str) -> int:
    return sum(bus.committed(group, topic, p) or 0 for p in range(len(bus._partitions(topic))))


def events(bus: MemoryBus) -> list[events_pb2.Event]:
    return [r.decode(events_pb2.Event) for r in bus.records(bus.topic(EVENTS))]


def dead_letters(bus: MemoryBus) -> list[events_pb2.DeadLetter]:
    return [r.decode(events_pb2.DeadLetter) for r in bus.records(bus.topic(EVENTS_DLQ))]


def order(i: int, **values: object) -> bytes:
    doc = {"customer_id": f"c{i % 5}", "ordered_at": T0 + i, "schema_version": 1, "event_id": f"o-{i}",
           "values": {"amount": 10.0 + i, "items": 1 + i % 3, "express": i % 2 == 0, "channel": "web"} | values}
    return json.dumps(doc).encode()


def run_until_committed(bus: MemoryBus, settings: IngestSettings, total: int, timeout: float = 20.0) -> dict:
    """Run an ingest on a thread until its group has committed `total` records of raw.events; returns the bus's
    lag gauge per partition of the group, read while the loop still ran."""
    raw = bus.topic(RAW_EVENTS)
    partitions = range(bus.default_partitions)
    lag: dict = {}
    with running(bus, settings) as ingest:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            labels = {"topic": raw, "group": settings.group_id}
            lag = {p: REGISTRY.get_sample_value("mlops_consumer_lag_records", labels | {"partition": str(p)})
                   for p in partitions}
            # the gauge follows each commit: done once both show everything
            if committed(bus, settings.group_id, raw) >= total and all(v == 0 for v in lag.values()):
                break
            time.sleep(0.01)
        assert ingest.assigned and ingest.ready
    return lag


def test_raw_records_become_events_and_dead_letters_naming_the_field() -> None:
    bus = MemoryBus(partitions=3)
    apply(bus, SEA)
    producer = bus.producer(client_id="test")
    raw = bus.topic(RAW_EVENTS)
    for i in range(30):
        producer.send(raw, good(i), key=f"e{i}")
    for value, _field in BAD:
        producer.send(raw, value, key="bad", headers={"origin": "test"})
    producer.send(raw, b"", key="empty")
    producer.flush()
    total = 30 + len(BAD) + 1
    settings = IngestSettings(group_id="ingest-memory", poll_timeout_s=0.05, batch_size=7)

    lag = run_until_committed(bus, settings, total)

    evs = events(bus)
    assert sorted(e.event_id for e in evs) == sorted(f"ev-{i}" for i in range(30))
    assert all(e.source.topic == raw and e.ingest_time_ms > 0 and e.source_name == "sea_events" for e in evs)
    by_value = {d.original_value: d for d in dead_letters(bus)}
    for value, field in BAD:
        d = by_value[value]
        assert d.field == field and field in d.reason and d.error_type, d.reason
        assert d.original_key == b"bad" and d.original_headers["origin"] == "test" and d.service == "ingest"
    assert by_value[b""].error_type == "empty_record"
    for p in range(3):  # every partition committed to its end
        assert bus.committed(settings.group_id, raw, p) == sum(1 for r in bus.records(raw) if r.partition == p)
    assert lag == {0: 0.0, 1: 0.0, 2: 0.0}


def test_nothing_is_consumed_until_definitions_declare_a_source() -> None:
    bus = MemoryBus(partitions=2)
    producer = bus.producer(client_id="test")
    for i in range(10):
        producer.send(bus.topic(RAW_EVENTS), good(i), key=f"e{i}")
    producer.flush()
    settings = IngestSettings(group_id="ingest-waits", poll_timeout_s=0.05)
    with running(bus, settings) as ingest:
        assert wait_until(ingest.follower.alive)  # it read the definitions topic to its end: no revision
        assert not ingest.ready and ingest.revision is None and ingest.consumer is None
        assert events(bus) == [] and committed(bus, settings.group_id, bus.topic(RAW_EVENTS)) == 0
        apply(bus, SEA)  # the records waited in the topic
        assert wait_until(lambda: len(events(bus)) == 10), len(events(bus))
        assert wait_until(lambda: ingest.ready) and ingest.revision == 1


def test_delivery_orders_on_their_own_topic() -> None:
    bus = MemoryBus(partitions=2)
    apply(bus, DELIVERY)
    producer = bus.producer(client_id="test")
    topic = bus.topic(ORDERS)
    for i in range(6):
        producer.send(topic, order(i), key=f"c{i}")
    producer.send(topic, order(6, channel="fax"), key="c6")  # unknown: other
    producer.send(topic, order(7, payment="bitcoin"), key="c7")  # unknown: missing
    producer.send(topic, order(8, items=0), key="bad")
    producer.send(topic, order(9, express="yes"), key="bad")
    producer.send(topic, good(1), key="bad")  # a SEA record on the orders topic
    producer.flush()
    settings = IngestSettings(group_id="ingest-delivery", poll_timeout_s=0.05)
    with running(bus, settings):
        assert wait_until(lambda: committed(bus, settings.group_id, topic) == 11)
    by_id = {e.event_id: e for e in events(bus)}
    assert sorted(by_id) == [f"o-{i}" for i in range(8)]
    assert all(e.source_name == "orders" and e.source.topic == topic for e in by_id.values())
    assert dict(by_id["o-0"].values) == {"amount": 10.0, "items": 1.0, "express": 1.0}
    assert dict(by_id["o-0"].categories) == {"channel": "web"}
    assert by_id["o-6"].categories["channel"] == "__other__" and "payment" not in by_id["o-7"].categories
    dead = sorted((d.error_type, d.field) for d in dead_letters(bus))
    assert dead == [("invalid_type", "values.express"), ("missing_field", "customer_id"),
                    ("out_of_range", "values.items")]


def test_a_definitions_change_mid_stream_switches_validation_without_a_restart() -> None:
    bus = MemoryBus(partitions=2)
    first = apply(bus, SEA)
    producer = bus.producer(client_id="test")
    raw, orders = bus.topic(RAW_EVENTS), bus.topic(ORDERS)
    settings = IngestSettings(group_id="ingest-switch", poll_timeout_s=0.05)
    with running(bus, settings) as ingest:
        for i in range(5):
            producer.send(raw, good(i), key=f"e{i}")  # x0 = i % 10, valid under revision 1
        producer.send(raw, good(7), key="e7")
        producer.flush()
        assert wait_until(lambda: len(events(bus)) == 6)
        consumer = ingest.consumer

        # revision 2: x0 narrowed to [0, 5], and the delivery source (a new topic) declared beside SEA
        doc = yaml.safe_load(SEA.read_text())
        doc["sources"][0]["fields"][0]["maximum"] = 5
        second = apply(bus, doc)
        third = apply(bus, DELIVERY)
        assert (first.number, second.number, third.number) == (1, 2, 3)
        assert wait_until(lambda: ingest.revision == 3 and ingest.consumer is not consumer and ingest.ready)

        producer.send(raw, good(17), key="e17")  # x0 = 7: refused now
        producer.send(raw, good(13), key="e13")  # x0 = 3: still fine
        producer.send(orders, order(1), key="c1")
        producer.flush()
        assert wait_until(lambda: len(events(bus)) == 8 and len(dead_letters(bus)) == 1)
    [dead] = dead_letters(bus)
    assert (dead.error_type, dead.field) == ("out_of_range", "values.x0") and "5" in dead.reason
    assert {e.event_id: e.source_name for e in events(bus)[-8:]}["o-1"] == "orders"
    assert committed(bus, settings.group_id, raw) == 8 and committed(bus, settings.group_id, orders) == 1


def test_a_record_of_a_topic_no_longer_declared_is_dead_lettered_naming_the_topic() -> None:
    bus = MemoryBus(partitions=1)
    apply(bus, DELIVERY)
    producer = bus.producer(client_id="test")
    producer.send(bus.topic(RAW_EVENTS), good(1), key="e1")  # SEA's topic, declared by no source now
    producer.flush()
    ingest = Ingest(IngestSettings(group_id="ingest-gone"), bus)
    ingest.follower.start(5)
    try:
        [record] = bus.records(bus.topic(RAW_EVENTS))
        ingest.handle_batch([record])  # as a subscription made under an older revision would deliver it
        ingest.producer.flush()
    finally:
        ingest.follower.stop()
    [dead] = dead_letters(bus)
    assert dead.error_type == "unknown_topic" and bus.topic(RAW_EVENTS) in dead.reason and "revision 1" in dead.reason
    assert dead.original_value == good(1) and events(bus) == []


def test_a_revision_ingest_cannot_compile_keeps_the_one_in_force(monkeypatch) -> None:
    import services.ingest.edge as edge

    bus = MemoryBus(partitions=1)
    apply(bus, SEA)
    ingest = Ingest(IngestSettings(group_id="ingest-keep"), bus)
    ingest.follower.start(5)
    try:
        assert ingest.revision == 1

        def newer_than_this_release(definitions):  # noqa: ANN001, ANN202
            raise ValueError("a field type this release does not know")

        # e.g. a revision written by a newer release: apply accepted it, this ingest cannot validate by it
        monkeypatch.setattr(edge, "compile_sources", newer_than_this_release)
        apply(bus, yaml.safe_load(DELIVERY.read_text()))
        assert wait_until(lambda: ingest.follower.current is not None and ingest.follower.current.number == 2)
        assert ingest.revision == 1
    finally:
        ingest.follower.stop()


def test_a_bug_in_handling_dead_letters_the_record_and_the_loop_goes_on(monkeypatch) -> None:
    """A bug on the batch path hands the record to the per-record path; a bug there too dead-letters it."""
    import services.ingest.edge as edge
    import services.ingest.edge.batch as batch

    real = edge.to_event

    def flaky(ev, *args):  # noqa: ANN001, ANN002
        if ev.event_id == "ev-3":
            raise KeyError("boom")
        return real(ev, *args)

    class FlakyEncoder(batch.EventEncoder):
        def encode(self, event_id, *args):  # noqa: ANN001, ANN002, ANN202
            if event_id == "ev-3":
                raise KeyError("boom on the batch path")
            return super().encode(event_id, *args)

    monkeypatch.setattr(edge, "to_event", flaky)
    monkeypatch.setattr(batch, "EventEncoder", FlakyEncoder)
    bus = MemoryBus(partitions=1)
    apply(bus, SEA)
    producer = bus.producer(client_id="test")
    for i in range(6):
        producer.send(bus.topic(RAW_EVENTS), good(i), key="k")
    producer.flush()
    run_until_committed(bus, IngestSettings(group_id="ingest-bug", poll_timeout_s=0.05), 6)
    assert len(bus.records(bus.topic(EVENTS))) == 5
    [dead] = dead_letters(bus)
    assert dead.error_type == "internal_error" and "KeyError" in dead.reason
