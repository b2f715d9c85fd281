"""Latency does not depend on traffic: a consumer hands over what has arrived and never waits for a full batch.

librdkafka's `consume(n, timeout)` returns when n messages are there or the timeout expires, so a lone record used to
wait the whole poll timeout behind a large batch size. These tests prove the bus's behaviour structurally — which
waits the client is asked for, and that a lone record comes back from a consume (or a run_loop) whose batch can
never fill and whose timeout is far longer than the test's deadline — not with tight timings (the figures are in
loadtests/bench_bus.py's latency rows).
"""

from __future__ import annotations

import threading
import time
import uuid

from mlops.bus import Bus, MemoryBus, Record, StopFlag, run_loop
from mlops.bus._kafka import Consumer, consume_arrived
from mlops.bus._reader import Reader
from mlops.contracts import events_pb2
from mlops.topics import EVENTS

NEVER = 600.0  # a poll timeout no test waits for: returning at all within DEADLINE proves it was not waited out
DEADLINE = 60.0


class _Client:
    """A confluent-kafka consumer double: hands out `arrived` (what the client has fetched) and records each call."""

    def __init__(self, arrived: list[list[str]]):
        self.arrived = arrived  # what each successive call finds in the client's queue
        self.calls: list[tuple[int, float]] = []

    def consume(self, num: int, timeout: float) -> list[str]:
        self.calls.append((num, timeout))
        batch = self.arrived.pop(0) if self.arrived else []
        assert len(batch) <= num
        return batch


def test_what_has_arrived_is_taken_without_waiting() -> None:
    client = _Client([["a", "b", "c"]])
    assert consume_arrived(client, 1000, NEVER) == ["a", "b", "c"]
    assert client.calls == [(1000, 0)]  # never asked to wait for the other 997


def test_an_empty_queue_waits_for_one_record_then_drains_without_waiting() -> None:
    client = _Client([[], ["a"], ["b", "c"]])
    assert consume_arrived(client, 1000, NEVER) == ["a", "b", "c"]
    assert client.calls == [(1000, 0), (1, NEVER), (999, 0)]  # the only blocking wait is for one message


def test_nothing_arrives_within_the_timeout() -> None:
    client = _Client([[], []])
    assert consume_arrived(client, 1000, 0.5) == []
    assert client.calls == [(1000, 0), (1, 0.5)]
    zero = _Client([[]])
    assert consume_arrived(zero, 10, 0) == [] and zero.calls == [(10, 0)]


def test_consumer_and_reader_consume_what_has_arrived() -> None:
    for cls in (Consumer, Reader):
        client = _Client([[], [], []])
        member = cls.__new__(cls)  # no broker: only the confluent-kafka client is swapped for the double
        member._consumer = client  # type: ignore[assignment]
        if cls is Reader:
            member._ahead, member._next = [], {}  # type: ignore[attr-defined]
        assert member.consume(5000, NEVER) == []
        assert client.calls == [(5000, 0), (1, NEVER)], cls.__name__


def test_a_memory_consumer_returns_a_lone_record_as_it_arrives() -> None:
    bus = MemoryBus(partitions=1)
    consumer = bus.consumer(group_id="g", topics=["t"], client_id="c")
    got: list[Record] = []
    waiting = threading.Thread(target=lambda: got.extend(consumer.consume(100_000, NEVER)), daemon=True)
    waiting.start()
    producer = bus.producer(client_id="p")
    producer.send("t", b"lone", key=b"k")
    producer.flush()
    waiting.join(DEADLINE)
    assert not waiting.is_alive() and [r.value for r in got] == [b"lone"]
    consumer.close()


def test_run_loop_hands_over_a_lone_record_with_a_batch_that_never_fills(bus: Bus) -> None:
    """batch_size 100k and a 600 s poll timeout: the record is handled, flushed and committed, and the loop ends,
    long before either could be waited out."""
    topic = bus.topic(EVENTS)
    producer = bus.producer(client_id="lone")
    producer.send(topic, events_pb2.Event(event_id="lone", entity_id="e"), key="e")
    producer.flush()
    group = f"g-{uuid.uuid4().hex[:8]}"
    stop = StopFlag(install_signals=False)
    seen: list[str] = []

    def handle(record: Record) -> None:
        seen.append(record.decode(events_pb2.Event).event_id)
        stop.set()

    consumer = bus.consumer(group_id=group, topics=[topic], client_id="lone-loop")
    loop = threading.Thread(target=run_loop, args=(consumer, handle), daemon=True,
                            kwargs={"stop": stop, "batch_size": 100_000, "poll_timeout": NEVER})
    started = time.monotonic()
    loop.start()
    loop.join(DEADLINE)
    assert not loop.is_alive(), f"run_loop still waiting after {time.monotonic() - started:.0f}s"
    assert seen == ["lone"]
    # it was committed: the group's next member starts after it
    producer.send(topic, events_pb2.Event(event_id="next", entity_id="e"), key="e")
    producer.flush()
    after = bus.consumer(group_id=group, topics=[topic], client_id="after")
    got: list[Record] = []
    deadline = time.monotonic() + DEADLINE
    try:
        while not got and time.monotonic() < deadline:
            got = after.consume(10, 0.5)
    finally:
        after.close()
    assert [r.decode(events_pb2.Event).event_id for r in got] == ["next"]
