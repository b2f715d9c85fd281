"""The offsets features commits: never past an event the agent has not handled.

faust-streaming (0.15.3, and its master) can commit an offset past events that were never handled, so a restart or
a rebalance skips them for good (the chaos suite's "contiguous run of events never on features.log"). Three
faust paths do it, seen in this app with the chaos suite's kill -9 and rebalance:

1. **The head of the acked list** (`Consumer._new_offset`, faust #606, fix proposed in #707): with the committed
   offset C, faust commits the acked run even when it starts at C + 1 — the event at C, still unhandled, is
   passed over (`min(acked) - committed > 1` should be `> 0`).
2. **Gaps** (`Consumer._add_gap`): when the fetch loop sees an offset jump it counts the missing offsets as acked
   (meant for compacted or transactional topics). On `events` a jump only comes from faust's own race after a
   rebalance: recovery resumes the stream partitions *before* seeking them to the committed offsets, so a batch
   fetched from before the seek is delivered after it, the jump back to the committed offset looks like a gap,
   and the re-fetched records below the read offset are dropped (faust #596 describes the same race).
3. **Acks of skipped events**: a record that reaches the stream during a rebalance (flow control suspended, or a
   generation older than the consumer's) is acked without being handled; with its partition's committed offset
   just dropped, the next commit (the one faust makes while partitions are revoked) passes it.

4. **A partition the group never committed** (found by killing features before its first commit): the stream
   partitions are paused while they are positioned (below), faust drops what a fetch already in flight returns
   for a paused partition, and with no committed offset there is no seek back to those records: they were never
   read, and the first commit (which had no committed offset to start from) passed over them.

`HandledOffsetsConsumer` closes all four for the topics it guards (the agent's source): an offset counts as acked
only when the agent marked its message handled (`mark_handled`, after features.log was acknowledged and the state
written), the commit is the run of such offsets starting exactly at the committed offset (or, never committed, at the
partition's first offset, where reading starts), jumps are never counted as acked, and stream partitions stay
paused until they are positioned at their committed offsets (never committed: at their first). A hole
that is never handled holds the partition's commits back (a restart re-reads from it: at-least-once, and window
aggregates de-duplicate replays) rather than losing events.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable
from typing import Any

from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP, Message
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

__all__ = ["HandledOffsetsConsumer", "install"]

log = logging.getLogger("mlops.features")


class HandledOffsetsConsumer(AIOKafkaConsumer):
    """faust's aiokafka consumer, committing on `guarded` topics only offsets the agent has handled."""

    guarded: frozenset[str] = frozenset()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handled: weakref.WeakSet[Message] = weakref.WeakSet()
        # committed offsets of partitions being revoked: faust forgets them before it commits a last time
        self._revoking: dict[TP, int] = {}
        # partitions the group has never committed: the first offset, where reading starts (a commit starts there)
        self._first: dict[TP, int] = {}

    def mark_handled(self, messages: Iterable[Message]) -> None:
        """The agent is done with these records (its outputs acknowledged): their acks may be committed."""
        self._handled.update(messages)

    def ack(self, message: Message) -> bool:
        if message.topic in self.guarded and message not in self._handled:
            # acked by faust's stream machinery without having been handled (skipped during a rebalance, or its
            # batch failed): done for faust's bookkeeping, never committable
            with ack_lock:
                if not message.acked:
                    message.acked = True
                    self._unacked_messages.discard(message)
                    notify(self._waiting_for_ack)
            return False
        self._handled.discard(message)
        return bool(super().ack(message))

    def _new_offset(self, tp: TP) -> int | None:
        if tp.topic not in self.guarded:
            return super()._new_offset(tp)
        acked = self._acked[tp]
        committed = self._committed_offset.get(tp)
        if committed is None:
            committed = self._revoking.get(tp, self._first.get(tp))
        if committed is None:  # not positioned yet: no run can be known to start where reading starts
            return None
        stale = [offset for offset in acked if offset < committed]  # a replay's: nothing left to commit
        if stale:
            acked[:] = [offset for offset in acked if offset >= committed]
            self._acked_index[tp].difference_update(stale)
        if not acked:
            return None
        acked.sort()
        if acked[0] != committed:
            return None  # the event at the committed offset is not handled yet
        end = 1
        while end < len(acked) and acked[end] == acked[end - 1] + 1:
            end += 1
        done = acked[:end]
        del acked[:end]
        self._acked_index[tp].difference_update(done)
        return done[-1] + 1

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        if tp.topic not in self.guarded:
            await super()._add_gap(tp, offset_from, offset_to)
            return
        # an offset jump on a guarded topic is never counted as handled: commits wait for the records to be
        # delivered and handled (after a restart they are read again)
        log.warning("offset jump on a guarded topic: not counted as handled", extra={"fields": {
            "topic": tp.topic, "partition": tp.partition, "from": offset_from, "to": offset_to,
            "committed": self._committed_offset[tp]}})

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        # faust drops the revoked partitions' committed offsets, then commits what was acked since: without them
        # that commit would not start at the committed offset
        self._revoking = {tp: offset for tp in revoked if tp.topic in self.guarded
                          and (offset := self._committed_offset.get(tp)) is not None}
        await super().on_partitions_revoked(revoked)

    async def perform_seek(self) -> None:
        # faust resumes the stream partitions before this seek: fetched now, their records would be delivered from
        # the old position and then look like a gap (path 2); keep them paused until positioned
        streams = {tp for tp in self.assignment() if tp.topic in self.guarded}
        self.pause_partitions(streams)
        try:
            await super().perform_seek()
            self._revoking = {}  # the committed offsets are known again
            # never committed: no seek above brings back what faust dropped while paused (path 4); read from the
            # first offset, as the consumer's reset ("earliest") does for a group's first start
            fresh = [tp for tp in streams if self._committed_offset.get(tp) is None]
            if fresh:
                first = await self.earliest_offsets(*fresh)
                for tp in fresh:
                    await self.seek(tp, first[tp])
                self._first.update({tp: first[tp] for tp in fresh})
        finally:
            self.resume_partitions(streams)


def install(app: Any, guarded: Iterable[str]) -> type[HandledOffsetsConsumer]:
    """Make `app` (not started yet) consume with a `HandledOffsetsConsumer` guarding the topics `guarded`."""
    consumer_class = type("HandledOffsetsConsumer", (HandledOffsetsConsumer,), {"guarded": frozenset(guarded)})
    app.transport.Consumer = consumer_class
    return consumer_class
