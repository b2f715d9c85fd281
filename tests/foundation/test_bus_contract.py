"""The same assertions against both buses (Feast's universal tests): KafkaBus on the real broker and MemoryBus in
process, so an edge tested with MemoryBus behaves the same on Kafka."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from mlops import contracts
from mlops.bus import (
    CONSUMER_LAG,
    Bus,
    Consumer,
    FailurePolicy,
    Reader,
    Record,
    StopFlag,
    run_loop,
)
from mlops.contracts import events_pb2, models_pb2
from mlops.topics import EVENTS, PREDICTIONS, REGISTRY_LOG


def _events(n: int, start: int = 0) -> list[events_pb2.Event]:
    return [events_pb2.Event(event_id=f"e{i}", entity_id=f"ent-{i % 5}", event_time_ms=1_700_000_000_000 + i)
            for i in range(start, start + n)]


def _send(bus: Bus, topic: str, events: list[events_pb2.Event]) -> None:
    producer = bus.producer(client_id="contract")
    for ev in events:
        producer.send(topic, ev, key=ev.entity_id, headers={"x-test": ev.event_id})
    producer.flush()
    assert len(producer) == 0


def _drain(source: Consumer | Reader, n: int, timeout: float = 30.0) -> list[Record]:
    got: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got.extend(source.consume(500, 0.5))
    return got


def _ids(records: list[Record]) -> list[str]:
    return sorted(r.decode(events_pb2.Event).event_id for r in records)


def _group() -> str:
    return f"g-{uuid.uuid4().hex[:8]}"


def _lag_series(group: str) -> dict[tuple[str, int], float]:
    return {(s.labels["topic"], int(s.labels["partition"])): s.value
            for metric in CONSUMER_LAG.collect() for s in metric.samples if s.labels["group"] == group}


def test_produce_consume_commit_resume(bus: Bus) -> None:
    topic = bus.topic(EVENTS)
    sent = _events(30)
    before_ms = int(time.time() * 1000) - 1000
    _send(bus, topic, sent)
    group = _group()
    first = bus.consumer(group_id=group, topics=[topic], client_id="first")
    got = _drain(first, 30)
    assert _ids(got) == sorted(e.event_id for e in sent)
    record = next(r for r in got if r.decode(events_pb2.Event).event_id == "e7")
    assert record.key == b"ent-2" and record.header("x-test") == "e7"
    assert record.header("message-type") == "mlops.v1.Event"
    assert record.header("contract-version") == str(contracts.CONTRACT_VERSION)
    assert record.timestamp_ms >= before_ms and f"topic={topic}" in record.where
    by_key: dict[bytes | None, set[int]] = {}
    for r in got:  # one key, one partition; offsets rise within a partition in consume order
        by_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(parts) == 1 for parts in by_key.values())
    first.commit(got)
    first.close()

    _send(bus, topic, _events(10, start=30))
    second = bus.consumer(group_id=group, topics=[topic], client_id="second")
    again = _drain(second, 10)
    assert _ids(again) == sorted(f"e{i}" for i in range(30, 40))  # resumes after the commit
    assert _drain(second, 1, timeout=1.0) == []
    second.close()

    rewound = bus.consumer(group_id=group, topics=[topic], client_id="rewound", rewind=True)
    assert len(_drain(rewound, 40)) == 40  # rewind: from the start whatever was committed
    rewound.close()


def test_reader_reads_a_compacted_topic_to_its_end_then_follows(bus: Bus) -> None:
    topic = bus.topic(REGISTRY_LOG)
    producer = bus.producer(client_id="contract")
    for i, name in enumerate(["a", "b", "a"]):
        producer.send(topic, models_pb2.RegistryEvent(model_name=name, sequence=i), key=name)
    producer.flush()

    reader = bus.reader([topic], client_id="replay")
    state = reader.read_to_end(timeout=30)
    assert [(r.key, r.decode(models_pb2.RegistryEvent).sequence) for r in state] == [(b"a", 0), (b"b", 1), (b"a", 2)]
    assert [r.offset for r in state] == sorted(r.offset for r in state)
    assert reader.read_to_end(timeout=5) == []  # already at the end

    tail = bus.reader([topic], client_id="tail", start="end")
    assert tail.read_to_end(timeout=5) == []
    producer.send(topic, models_pb2.RegistryEvent(model_name="c", sequence=3), key="c")
    producer.flush()
    for follower in (reader, tail):
        [new] = _drain(follower, 1)
        assert new.key == b"c"
        follower.close()


def _run(bus: Bus, topic: str, n: int, **kwargs: object) -> tuple[int, list[str]]:
    """run_loop over a fresh group until `n` records were seen; returns (handled, event ids seen)."""
    seen: list[str] = []
    stop = StopFlag(install_signals=False)
    handle: Callable[[Record], None] | None = kwargs.pop("handle", None)  # type: ignore[assignment]

    def wrapped(record: Record) -> None:
        seen.append(record.decode(events_pb2.Event).event_id)
        if len(seen) >= n:
            stop.set()
        assert handle is not None
        handle(record)

    consumer = bus.consumer(group_id=kwargs.pop("group", _group()), topics=[topic], client_id="loop")
    handled = run_loop(consumer, wrapped, stop=stop, **kwargs)  # type: ignore[arg-type]
    return handled, seen


def _fail_on(event_id: str) -> Callable[[Record], None]:
    def handle(record: Record) -> None:
        if record.decode(events_pb2.Event).event_id == event_id:
            raise ValueError(f"cannot handle {event_id}")

    return handle


def test_run_loop_policies(bus: Bus) -> None:
    topic = bus.topic(EVENTS)
    _send(bus, topic, _events(6))

    group = _group()
    with pytest.raises(ValueError, match="cannot handle e3"):
        _run(bus, topic, 6, handle=_fail_on("e3"), group=group, policy=FailurePolicy.STOP)
    # STOP committed nothing of the failed batch: the group reads e3 again
    retry = bus.consumer(group_id=group, topics=[topic], client_id="retry")
    assert "e3" in _ids(_drain(retry, 6))
    retry.close()

    handled, seen = _run(bus, topic, 6, handle=_fail_on("e3"), policy=FailurePolicy.SKIP_AND_LOG)
    assert handled == 6 and sorted(seen) == [f"e{i}" for i in range(6)]

    dead: list[tuple[str, Exception]] = []
    group = _group()
    handled, _ = _run(bus, topic, 6, handle=_fail_on("e3"), group=group, policy=FailurePolicy.DEAD_LETTER,
                      dead_letter=lambda r, e: dead.append((r.decode(events_pb2.Event).event_id, e)))
    assert [(i, type(e)) for i, e in dead] == [("e3", ValueError)]
    after = bus.consumer(group_id=group, topics=[topic], client_id="after")  # committed past every record
    assert _drain(after, 1, timeout=2.0) == []
    after.close()


def test_run_loop_batches_flush_the_producer_and_keep_the_lag_gauge(bus: Bus) -> None:
    source, sink = bus.topic(EVENTS), bus.topic(PREDICTIONS)
    _send(bus, source, _events(40))
    producer = bus.producer(client_id="loop-out")
    group = _group()
    stop = StopFlag(install_signals=False)
    batches: list[int] = []
    lag_at_idle: list[dict[tuple[str, int], float]] = []

    def handle_batch(records: list[Record]) -> None:
        batches.append(len(records))
        if len(batches) == 2:
            raise RuntimeError("one bad batch")
        for r in records:
            producer.send(sink, r.value, key=r.key)

    def idle() -> None:
        if sum(batches) >= 40:
            lag_at_idle.append(_lag_series(group))
            stop.set()

    dead: list[Record] = []
    consumer = bus.consumer(group_id=group, topics=[source], client_id="batcher")
    handled = run_loop(consumer, handle_batch=handle_batch, stop=stop, producer=producer, batch_size=10,
                       policy=FailurePolicy.DEAD_LETTER, dead_letter=lambda r, e: dead.append(r), on_idle=idle)
    assert handled == 40 == sum(batches) and all(b <= 10 for b in batches)
    assert len(dead) == batches[1]  # the failed batch: each of its records dead-lettered
    reader = bus.reader([sink], client_id="check")
    # every output was flushed before its batch was committed
    assert len(reader.read_to_end(timeout=30)) == 40 - batches[1]
    reader.close()
    # the gauge showed each partition that holds records, caught up (0) once all was committed; then removed
    partitions_with_records = {(r.topic, r.partition) for r in _records(bus, source)}
    assert partitions_with_records <= set(lag_at_idle[-1]) and set(lag_at_idle[-1].values()) == {0.0}
    assert _lag_series(group) == {}


def test_run_loop_refuses_a_wrong_setup(bus: Bus) -> None:
    consumer = bus.consumer(group_id=_group(), topics=[bus.topic(EVENTS)], client_id="x")
    stop = StopFlag(install_signals=False)
    try:
        with pytest.raises(ValueError, match="exactly one"):
            run_loop(consumer, stop=stop)
        with pytest.raises(ValueError, match="DEAD_LETTER"):
            run_loop(consumer, lambda r: None, stop=stop, policy=FailurePolicy.DEAD_LETTER)
    finally:
        consumer.close()


def _records(bus: Bus, topic: str) -> list[Record]:
    reader = bus.reader([topic], client_id="all")
    try:
        return reader.read_to_end(timeout=30)
    finally:
        reader.close()
