"""MemoryBus's own behaviour beyond the shared contract, and the honesty of mlops.bus's exports."""

from __future__ import annotations

import importlib
import pkgutil

import mlops.bus
import pytest
from mlops.bus import Bus, Consumer, KafkaBus, MemoryBus, Producer, Reader, set_lag
from mlops.bus._lag import CONSUMER_LAG
from mlops.contracts import events_pb2
from mlops.settings import KafkaSettings
from mlops.topics import EVENTS, MODEL_ARTIFACTS


def test_exports_are_honest() -> None:
    public = {name for name in vars(mlops.bus) if not name.startswith("_")} - {"annotations"}
    assert set(mlops.bus.__all__) == public
    for info in pkgutil.iter_modules(mlops.bus.__path__):
        assert info.name.startswith("_"), f"mlops.bus.{info.name}: internal modules start with _"
        module = importlib.import_module(f"mlops.bus.{info.name}")
        assert all(hasattr(module, name) for name in module.__all__)


def test_both_buses_are_buses() -> None:
    buses: list[Bus] = [MemoryBus(), KafkaBus(KafkaSettings(topic_prefix="p."))]
    assert [b.topic(EVENTS) for b in buses] == ["events", "p.events"]
    assert buses[0].settings is None and buses[1].settings is not None
    memory = buses[0]
    assert isinstance(memory.producer(client_id="p"), Producer)
    assert isinstance(memory.consumer(group_id="g", topics=["t"], client_id="c"), Consumer)
    assert isinstance(memory.reader(["t"], client_id="r"), Reader)


def test_topics_take_their_partitions_from_the_spec() -> None:
    bus = MemoryBus(partitions=4)
    reader = bus.reader([bus.topic(MODEL_ARTIFACTS), bus.topic(EVENTS)], client_id="r")
    assert sorted(reader.watermarks()) == [("events", p) for p in range(4)] + [("model.artifacts", 0)]


def test_a_group_shares_partitions_among_live_members() -> None:
    bus = MemoryBus(partitions=4)
    topic = bus.topic(EVENTS)
    a = bus.consumer(group_id="g", topics=[topic], client_id="a")
    b = bus.consumer(group_id="g", topics=[topic], client_id="b")
    assert a.assignment() == [(topic, 0), (topic, 2)] and b.assignment() == [(topic, 1), (topic, 3)]
    producer = bus.producer(client_id="p")
    for i in range(20):
        producer.send(topic, events_pb2.Event(event_id=str(i)), key=f"k{i}")
    assert a.consume(100, 0) == []  # nothing delivered before flush
    producer.flush()
    got_a, got_b = a.consume(100, 0), b.consume(100, 0)
    assert len(got_a) + len(got_b) == 20 and {r.partition for r in got_a} <= {0, 2}
    a.commit(got_a)
    b.close()  # b's partitions move to a, from their committed offsets (none: from the beginning)
    assert a.assignment() == [(topic, p) for p in range(4)]
    assert sorted(r.offset for r in a.consume(100, 0)) == sorted(r.offset for r in got_b)
    assert bus.committed("g", topic, got_a[0].partition) is not None
    assert len(bus.records(topic)) == 20


def test_from_latest_skips_what_was_there() -> None:
    bus = MemoryBus()
    producer = bus.producer(client_id="p")
    producer.send("t", b"old")
    producer.flush()
    late = bus.consumer(group_id="g", topics=["t"], client_id="c", from_beginning=False)
    assert late.consume(10, 0) == []
    producer.send("t", b"new")
    producer.flush()
    assert [r.value for r in late.consume(10, 0)] == [b"new"]


def test_delivery_callbacks_see_the_offset() -> None:
    bus = MemoryBus()
    producer = bus.producer(client_id="p")
    seen: list[tuple[object, int]] = []
    producer.send("t", b"x", key="k", on_delivery=lambda err, msg: seen.append((err, msg.offset())))
    assert len(producer) == 1 and producer.poll() == 1
    assert seen == [(None, 0)]


def test_a_reader_times_out_naming_what_it_waits_for() -> None:
    bus = MemoryBus(partitions=1)
    reader = bus.reader(["t"], client_id="r")
    with pytest.raises(mlops.bus.BusError, match=r"\('t', 0\)"):
        reader.read_until({("t", 0): 1}, timeout=0.05)


def test_memory_clients_have_no_kafka_client() -> None:
    bus = MemoryBus()
    with pytest.raises(NotImplementedError, match="MemoryConsumer"):
        _ = bus.consumer(group_id="g", topics=["t"], client_id="c").raw
    with pytest.raises(NotImplementedError, match="MemoryReader"):
        _ = bus.reader(["t"], client_id="r").raw


def test_set_lag_sets_and_removes_a_series() -> None:
    set_lag("grp-x", "t", 2, 7)
    assert CONSUMER_LAG.labels("t", "2", "grp-x")._value.get() == 7
    set_lag("grp-x", "t", 2, None)
    set_lag("grp-x", "t", 2, None)  # removing twice is fine
    assert all(s.labels["group"] != "grp-x" for m in CONSUMER_LAG.collect() for s in m.samples)
