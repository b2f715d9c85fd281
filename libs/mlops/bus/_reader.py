"""`Reader`: reads partitions it assigns itself — no consumer group, nothing committed. For compacted state topics
(replayed to their end on start) and broadcasts every process must see (each reader gets every record)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Literal

from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from mlops.bus._kafka import (
    RETRIABLE,
    ConfluentClient,
    consume_arrived,
    consumer_config,
    transient,
    watermarks,
)
from mlops.bus._record import BusError, Record
from mlops.settings import KafkaSettings

__all__ = ["Position", "Reader", "Start"]

Position = tuple[str, int]  # (topic, partition)
# where a Reader starts: the first record kept, the current end, or an offset per partition (only those are read)
Start = Literal["beginning", "end"] | Mapping[Position, int]

# librdkafka refuses a consumer without a group id; a Reader never subscribes or commits, so the group stays unused
READER_GROUP = "mlops-reader"


class Reader(ConfluentClient):
    """Assigned partitions, no consumer group, never commits."""

    def __init__(
        self,
        settings: KafkaSettings,
        topics: Iterable[str],
        *,
        client_id: str,
        start: Start = "beginning",
        extra: dict[str, object] | None = None,
    ):
        conf = consumer_config(settings, client_id) | {"group.id": READER_GROUP, "enable.partition.eof": True}
        self._make(settings, conf | (extra or {}))
        self._next: dict[Position, int] = {}  # the offset after the last record (or EOF) seen, per partition
        self._ahead: list[Record] = []  # records read past the ends of a read_until, returned by the next call
        try:
            self._assign(list(topics), start)
        except BaseException:
            self._consumer.close()
            raise

    def _assign(self, topics: list[str], start: Start) -> None:
        if isinstance(start, Mapping):
            wanted = dict(start)
        else:
            wanted = {}
            for (topic, partition), (low, high) in self.watermarks(topics).items():
                # a concrete end offset, not OFFSET_END: records produced before the first fetch are not skipped
                wanted[(topic, partition)] = OFFSET_BEGINNING if start == "beginning" else high
                self._next[(topic, partition)] = low if start == "beginning" else high
        self._next.update({tp: offset for tp, offset in wanted.items() if offset >= 0})
        self._consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in wanted.items()])

    def watermarks(self, topics: Iterable[str] | None = None, timeout: float = 10.0) -> dict[Position, tuple[int, int]]:
        """(low, high) watermark of every partition of `topics` (default: the assigned ones), from the broker."""
        if topics is None:
            positions = sorted(self._next.keys() | {(tp.topic, tp.partition) for tp in self._consumer.assignment()})
        else:
            positions = [(t, p) for t in topics for p in self._partitions(t, timeout)]
        return {(t, p): watermarks(self._consumer, t, p, timeout) for t, p in positions}

    def _partitions(self, topic: str, timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        while True:
            meta = self._consumer.list_topics(topic, timeout=timeout).topics.get(topic)
            error = meta.error if meta is not None else "no metadata"
            if meta is not None and error is None and meta.partitions:
                return sorted(meta.partitions)
            retriable = meta is not None and error is not None and error.code() in RETRIABLE
            if not retriable or time.monotonic() > deadline:
                raise BusError(f"topic {topic} cannot be read: {error}")
            time.sleep(0.2)

    def read_to_end(self, timeout: float = 30.0) -> list[Record]:
        """Every record from the current positions up to the high watermarks taken now."""
        return self.read_until({tp: high for tp, (_low, high) in self.watermarks().items()}, timeout)

    def read_until(self, ends: Mapping[Position, int], timeout: float = 30.0) -> list[Record]:
        """Every record from the current positions up to (not including) `ends[(topic, partition)]`, by partition
        then offset; raises BusError if they have not all arrived within `timeout`."""
        out = [r for r in self._ahead if r.offset < ends.get((r.topic, r.partition), -1)]
        self._ahead = [r for r in self._ahead if r.offset >= ends.get((r.topic, r.partition), -1)]
        pending = {tp: end for tp, end in ends.items() if self._next.get(tp, 0) < end}
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise BusError(f"read {len(out)} records in {timeout}s; still waiting for {sorted(pending)}")
            for record in self._fetch(500, 0.5):
                if record.offset < ends.get((record.topic, record.partition), -1):
                    out.append(record)
                else:
                    self._ahead.append(record)
            for tp in list(pending):
                if self._next.get(tp, 0) < pending[tp]:  # control records (transactions) advance only the position
                    [pos] = self._consumer.position([TopicPartition(*tp)])
                    self._next[tp] = max(self._next.get(tp, 0), pos.offset)
                if self._next.get(tp, 0) >= pending[tp]:
                    del pending[tp]
        out.sort(key=lambda r: (r.topic, r.partition, r.offset))
        return out

    def consume(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        """Up to `max_records` of what has arrived (waiting up to `timeout` for the first, never for a full batch)."""
        if self._ahead:
            out, self._ahead = self._ahead[:max_records], self._ahead[max_records:]
            return out
        return self._fetch(max_records, timeout)

    def _fetch(self, max_records: int, timeout: float) -> list[Record]:
        out: list[Record] = []
        msgs = consume_arrived(self._consumer, max_records, timeout)
        if not msgs:
            self._raise_refused()
        for msg in msgs:
            tp, offset, err = (msg.topic(), msg.partition()), msg.offset(), msg.error()
            if err is None:
                out.append(Record(msg))
                self._next[tp] = offset + 1
            elif err.code() == KafkaError._PARTITION_EOF:  # the log ends at `offset`: everything before is read
                self._next[tp] = max(self._next.get(tp, 0), offset)
            elif not transient(err):  # a broker failing over is recovered from by the client itself
                raise BusError(f"reading {tp[0]}/{tp[1]}: {err}")
        return out
