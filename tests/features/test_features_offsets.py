"""Unit: the offsets features commits (`services.features.edge.offsets`), on faust's own consumer class and
records, no broker. Each case is one of the faust paths that committed past unhandled events in the chaos suite;
the first also shows faust's own rule doing it (faust #606), which is why the override exists."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import faust
import pytest
from faust.transport.drivers.aiokafka import Consumer as FaustConsumer
from faust.types import TP, Message

from services.features.edge.offsets import HandledOffsetsConsumer, install

EVENTS = "t.events"
TP0 = TP(EVENTS, 0)


@pytest.fixture
def consumer() -> Iterator[HandledOffsetsConsumer]:
    app = faust.App("test-offsets", broker="kafka://127.0.0.1:1", web_enabled=False)
    install(app, {EVENTS})
    app.topics._acking_topics.add(EVENTS)  # what an agent subscribed to the topic does
    consumer = app.consumer
    assert isinstance(consumer, HandledOffsetsConsumer)
    yield consumer


def message(offset: int, partition: int = 0) -> Message:
    return Message(EVENTS, partition, offset, 0.0, 0, None, b"k", b"v", None, tp=TP(EVENTS, partition))


def acked(consumer: FaustConsumer, committed: int | None, offsets: list[int]) -> None:
    consumer._committed_offset[TP0] = committed
    consumer._acked[TP0] = list(offsets)
    consumer._acked_index[TP0] = set(offsets)


def test_the_event_at_the_committed_offset_holds_the_commit_until_handled(consumer: HandledOffsetsConsumer) -> None:
    # faust's own rule passes over the unhandled event at the committed offset (2585) and commits 2590
    acked(consumer, 2585, [2586, 2587, 2588, 2589])
    assert FaustConsumer._new_offset(consumer, TP0) == 2590

    acked(consumer, 2585, [2586, 2587, 2588, 2589])
    assert consumer._new_offset(TP0) is None
    consumer._acked[TP0].append(2585)
    consumer._acked_index[TP0].add(2585)
    assert consumer._new_offset(TP0) == 2590
    assert consumer._acked[TP0] == []


def test_only_the_run_from_the_committed_offset_is_committed(consumer: HandledOffsetsConsumer) -> None:
    acked(consumer, 10, [10, 11, 12, 14, 15])
    assert consumer._new_offset(TP0) == 13
    assert consumer._acked[TP0] == [14, 15]


def test_an_ack_of_an_event_the_agent_did_not_handle_is_never_committable(consumer: HandledOffsetsConsumer) -> None:
    consumer._committed_offset[TP0] = 5
    skipped, handled = message(5), message(6)
    consumer.mark_handled([handled])
    assert consumer.ack(skipped) is False and skipped.acked  # done for faust (wait_empty), not for the commit
    assert consumer.ack(handled) is True
    assert consumer._acked[TP0] == [6]
    assert consumer._new_offset(TP0) is None  # 5 was skipped, not handled: nothing past it is committed

    again = message(5)  # read again (after a seek) and handled this time
    consumer.mark_handled([again])
    assert consumer.ack(again) is True
    assert consumer._new_offset(TP0) == 7


def test_a_commit_while_partitions_are_revoked_still_starts_at_the_committed_offset(
        consumer: HandledOffsetsConsumer, monkeypatch: pytest.MonkeyPatch) -> None:
    async def revoked_in_faust(revoked: set[TP]) -> None:
        pass

    acked(consumer, 20, [])
    monkeypatch.setattr(consumer, "_on_partitions_revoked", revoked_in_faust)  # the app's part: not tested here
    asyncio.run(consumer.on_partitions_revoked({TP0}))
    assert TP0 not in consumer._committed_offset  # faust forgot it
    consumer._acked[TP0], consumer._acked_index[TP0] = [22, 23], {22, 23}  # 20 and 21: a batch that failed
    assert consumer._new_offset(TP0) is None
    consumer._acked[TP0][:0] = [20, 21]
    assert consumer._new_offset(TP0) == 24


def test_an_offset_jump_is_not_counted_as_handled(consumer: HandledOffsetsConsumer) -> None:
    acked(consumer, 100, [109, 110])
    asyncio.run(consumer._add_gap(TP0, 101, 109))  # faust would add 101..109 to the acked offsets
    assert consumer._new_offset(TP0) is None

    # an unguarded topic keeps faust's gap handling (compacted or transactional topics have real gaps)
    other = TP("t.other", 0)
    consumer._committed_offset[other] = 100
    consumer._acked[other] = [100, 110]
    consumer._acked_index[other] = {100, 110}
    asyncio.run(consumer._add_gap(other, 101, 109))
    assert consumer._new_offset(other) == 111


def test_stream_partitions_stay_paused_until_seeked_to_their_committed_offsets(
        consumer: HandledOffsetsConsumer, monkeypatch: pytest.MonkeyPatch) -> None:
    changelog = TP("test-offsets-views-changelog", 0)
    monkeypatch.setattr(consumer, "assignment", lambda: {TP0, changelog})
    consumer.resume_partitions({TP0, changelog})
    active_during_seek: set[TP] = set()

    async def seek_to_committed() -> dict[TP, int]:
        active_during_seek.update(consumer._get_active_partitions())
        return {TP0: 42}

    monkeypatch.setattr(consumer, "seek_to_committed", seek_to_committed)
    asyncio.run(consumer.perform_seek())
    assert TP0 not in active_during_seek and changelog in active_during_seek
    assert TP0 in consumer._get_active_partitions()  # resumed once positioned
    assert consumer._committed_offset[TP0] == 42 and consumer._read_offset[TP0] == 42


def test_a_partition_never_committed_commits_only_the_run_from_its_first_offset(
        consumer: HandledOffsetsConsumer) -> None:
    acked(consumer, None, [1, 2])
    assert consumer._new_offset(TP0) is None  # not positioned yet: where the run must start is unknown
    consumer._first[TP0] = 0
    assert consumer._new_offset(TP0) is None  # the partition's first event (0) is not handled: 1 and 2 wait
    consumer._acked[TP0].insert(0, 0)
    consumer._acked_index[TP0].add(0)
    assert consumer._new_offset(TP0) == 3


def test_a_partition_never_committed_is_positioned_at_its_first_offset_while_paused(
        consumer: HandledOffsetsConsumer, monkeypatch: pytest.MonkeyPatch) -> None:
    # faust drops what a fetch in flight returns for a paused partition; a committed offset brings those records
    # back by its seek, a partition never committed needs the seek to its first offset
    monkeypatch.setattr(consumer, "assignment", lambda: {TP0})
    consumer.resume_partitions({TP0})
    seeks: list[tuple[TP, int, bool]] = []

    async def seek_to_committed() -> dict[TP, int | None]:
        return {TP0: None}

    async def earliest_offsets(*tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, 7)

    async def seek(tp: TP, offset: int) -> None:
        seeks.append((tp, offset, tp in consumer._get_active_partitions()))

    monkeypatch.setattr(consumer, "seek_to_committed", seek_to_committed)
    monkeypatch.setattr(consumer, "earliest_offsets", earliest_offsets)
    monkeypatch.setattr(consumer, "seek", seek)
    asyncio.run(consumer.perform_seek())
    assert seeks == [(TP0, 7, False)]  # seeked while paused
    assert TP0 in consumer._get_active_partitions()
    assert consumer._first[TP0] == 7
    acked(consumer, None, [7, 8])
    assert consumer._new_offset(TP0) == 9
