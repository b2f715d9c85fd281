"""`MemoryBus`: the bus in one process, for unit tests of edges. It keeps what the edges rely on: topics made on
demand with keyed partitions, per-group committed offsets (a new member resumes after the last commit, `rewind`
re-reads), partitions shared out among a group's live members, readers without a group, headers, timestamps,
and a producer whose `flush` (or `poll`) delivers synchronously."""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from google.protobuf.message import Message as PbMessage

from mlops.bus._kafka import Consumer, DeliveryCallback, Producer
from mlops.bus._reader import Position, Reader, Start
from mlops.bus._record import BusError, Record, next_offsets
from mlops.topics import TopicSpec

__all__ = ["MemoryBus", "MemoryConsumer", "MemoryProducer", "MemoryReader"]

_CREATE_TIME = 1  # confluent_kafka.TIMESTAMP_CREATE_TIME


class _Message:
    """The methods of confluent-kafka's Message that Record and delivery callbacks read."""

    __slots__ = ("_topic", "_partition", "_offset", "_key", "_value", "_headers", "_ts")

    def __init__(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
                 headers: list[tuple[str, bytes | None]], ts_ms: int):
        self._topic, self._partition, self._offset = topic, partition, offset
        self._key, self._value, self._headers, self._ts = key, value, headers, ts_ms

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes | None]]:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return _CREATE_TIME, self._ts

    def error(self) -> None:
        return None


def _no_raw(obj: object) -> NoReturn:
    raise NotImplementedError(f"{type(obj).__name__} is in-process: it has no confluent-kafka client")


class MemoryBus:
    """An in-process bus with the interface of KafkaBus (`Bus`)."""

    def __init__(self, partitions: int = 3, *, topic_prefix: str = ""):
        self.default_partitions = partitions
        self.topic_prefix = topic_prefix
        self._cond = threading.Condition()
        self._logs: dict[str, list[list[_Message]]] = {}
        self._committed: dict[tuple[str, str, int], int] = {}  # (group, topic, partition) → next offset
        self._members: dict[str, list[MemoryConsumer]] = {}  # group → live members, in join order
        self._round_robin = 0

    @property
    def settings(self) -> None:
        return None

    def topic(self, spec: TopicSpec) -> str:
        name = f"{self.topic_prefix}{spec.name}"
        self.create_topic(name, spec.partitions)
        return name

    def create_topic(self, name: str, partitions: int | None = None) -> None:
        """Make `name` with `partitions` (default: the bus's) unless it exists."""
        with self._cond:
            if name not in self._logs:
                self._logs[name] = [[] for _ in range(partitions or self.default_partitions)]

    def producer(self, *, client_id: str, extra: dict[str, object] | None = None) -> MemoryProducer:
        return MemoryProducer(self, client_id=client_id)

    def consumer(self, **options: Any) -> MemoryConsumer:
        """A group member; takes Bus.consumer's keywords (`extra`, librdkafka settings, is ignored)."""
        options.pop("extra", None)
        return MemoryConsumer(self, **options)

    def reader(self, topics: Iterable[str], *, client_id: str, start: Start = "beginning") -> MemoryReader:
        return MemoryReader(self, topics, client_id=client_id, start=start)

    # --- for assertions in tests ----------------------------------------------------------------------------
    def records(self, topic: str) -> list[Record]:
        """Every record of `topic`, by partition then offset."""
        with self._cond:
            return [Record(m) for log in self._partitions(topic) for m in log]

    def committed(self, group: str, topic: str, partition: int) -> int | None:
        """The group's committed offset (the next to read) of one partition, None if never committed."""
        with self._cond:
            return self._committed.get((group, topic, partition))

    # --- used by the clients (callers hold self._cond where noted) ------------------------------------------
    def _partitions(self, topic: str) -> list[list[_Message]]:
        if topic not in self._logs:
            self.create_topic(topic)
        return self._logs[topic]

    def _append(self, topic: str, key: bytes | None, value: bytes | None, headers: dict[str, str]) -> _Message:
        with self._cond:
            logs = self._partitions(topic)
            if key is None:
                self._round_robin += 1
                partition = self._round_robin % len(logs)
            else:
                partition = zlib.crc32(key) % len(logs)
            log = logs[partition]
            msg = _Message(topic, partition, len(log), key, value,
                           [(k, v.encode("utf-8")) for k, v in headers.items()], int(time.time() * 1000))
            log.append(msg)
            self._cond.notify_all()
            return msg

    def _take(self, positions: dict[Position, int], max_records: int, ends: Mapping[Position, int] | None = None
              ) -> list[Record]:
        """Up to `max_records` from `positions` (advanced past them), each partition stopping at `ends`. Caller
        holds the lock."""
        out: list[Record] = []
        for (topic, partition), pos in positions.items():
            log = self._partitions(topic)[partition]
            stop = min(len(log), pos + max_records - len(out))
            if ends is not None:
                stop = min(stop, ends.get((topic, partition), pos))
            out.extend(Record(m) for m in log[pos:stop])
            positions[(topic, partition)] = max(pos, stop)
        return out

    def _wait(self, deadline: float) -> bool:
        """Wait for a new record until `deadline`; False once it has passed. Caller holds the lock."""
        remaining = deadline - time.monotonic()
        return remaining > 0 and (self._cond.wait(remaining) or time.monotonic() < deadline)

    def _assigned(self, member: MemoryConsumer) -> list[Position]:
        """The partitions of `member`'s topics it holds: partition p of a topic goes to the (p mod n)-th of the n
        live members of its group subscribed to that topic."""
        out: list[Position] = []
        for topic in member.topics:
            subscribed = [m for m in self._members.get(member.group_id, []) if topic in m.topics]
            out.extend((topic, p) for p in range(len(self._partitions(topic)))
                       if subscribed[p % len(subscribed)] is member)
        return out


class MemoryProducer(Producer):
    """Keeps sent records until `flush` or `poll` appends them to the bus's log."""

    def __init__(self, bus: MemoryBus, *, client_id: str):
        self._bus = bus
        self.client_id = client_id
        self._static_headers: dict[type, dict[str, str]] = {}
        self._queued: list[tuple[str, bytes | None, bytes | None, dict[str, str], DeliveryCallback | None]] = []

    def _produce(self, topic: str, payload: bytes | None, key: bytes | None, headers: dict[str, str],
                 on_delivery: DeliveryCallback | None, poll: bool = True) -> None:
        self._queued.append((topic, key, payload, headers, on_delivery))

    def send_encoded(self, topic: str, message_type: type[PbMessage],
                     records: Iterable[tuple[bytes | None, bytes, dict[str, str] | None]]) -> None:
        static = self._contract_headers(message_type)
        for key, value, trace in records:
            self._produce(topic, value, key, static | trace if trace else dict(static), None)

    def poll(self, timeout: float = 0.0) -> int:
        queued, self._queued = self._queued, []
        for topic, key, payload, headers, on_delivery in queued:
            msg = self._bus._append(topic, key, payload, headers)
            if on_delivery is not None:
                on_delivery(None, msg)  # type: ignore[arg-type]  # a _Message has the Message methods used
        return len(queued)

    def flush(self, timeout: float = 30.0) -> None:
        self.poll()

    def __len__(self) -> int:
        return len(self._queued)


class MemoryConsumer(Consumer):
    """A member of a consumer group on a MemoryBus."""

    def __init__(self, bus: MemoryBus, *, group_id: str, topics: Iterable[str], client_id: str,
                 from_beginning: bool = True, rewind: bool = False):
        self._bus = bus
        self.group_id = group_id
        self.client_id = client_id
        self.topics = list(topics)
        self._from_beginning, self._rewind = from_beginning, rewind
        self._positions: dict[Position, int] = {}
        self._closed = False
        with bus._cond:
            for topic in self.topics:
                bus._partitions(topic)
            bus._members.setdefault(group_id, []).append(self)

    def _rebalance(self) -> None:
        """Keep the positions of partitions still held; start new ones at the commit (or per the reset rule)."""
        bus, positions = self._bus, {}
        for topic, partition in bus._assigned(self):
            pos = self._positions.get((topic, partition))
            if pos is None:
                committed = bus._committed.get((self.group_id, topic, partition))
                if self._rewind or (committed is None and self._from_beginning):
                    pos = 0
                else:
                    pos = committed if committed is not None else len(bus._partitions(topic)[partition])
            positions[(topic, partition)] = pos
        self._positions = positions

    def consume(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        deadline = time.monotonic() + timeout
        with self._bus._cond:
            while not self._closed:
                self._rebalance()
                out = self._bus._take(self._positions, max_records)
                if out or not self._bus._wait(deadline):
                    return out
        return []

    def commit(self, records: Iterable[Record]) -> None:
        with self._bus._cond:
            for (topic, partition), offset in next_offsets(records).items():
                self._bus._committed[(self.group_id, topic, partition)] = offset

    def assignment(self) -> list[Position]:
        with self._bus._cond:
            self._rebalance()
            return sorted(self._positions)

    def lag(self) -> dict[Position, int]:
        with self._bus._cond:
            self._rebalance()
            return {(t, p): len(self._bus._partitions(t)[p]) - pos for (t, p), pos in self._positions.items()}

    @property
    def raw(self) -> NoReturn:
        _no_raw(self)

    def close(self) -> None:
        with self._bus._cond:
            if not self._closed:
                self._closed = True
                self._bus._members[self.group_id].remove(self)


class MemoryReader(Reader):
    """Reads assigned partitions of a MemoryBus without a group."""

    def __init__(self, bus: MemoryBus, topics: Iterable[str], *, client_id: str, start: Start = "beginning"):
        self._bus = bus
        self.client_id = client_id
        with bus._cond:
            if isinstance(start, Mapping):
                self._positions = dict(start)
            else:
                self._positions = {tp: (0 if start == "beginning" else high)
                                   for tp, (_low, high) in self.watermarks(topics).items()}

    def watermarks(self, topics: Iterable[str] | None = None, timeout: float = 10.0) -> dict[Position, tuple[int, int]]:
        with self._bus._cond:
            if topics is None:
                return {(t, p): (0, len(self._bus._partitions(t)[p])) for t, p in sorted(self._positions)}
            return {(t, p): (0, len(log)) for t in topics for p, log in enumerate(self._bus._partitions(t))}

    def read_until(self, ends: Mapping[Position, int], timeout: float = 30.0) -> list[Record]:
        deadline = time.monotonic() + timeout
        out: list[Record] = []
        with self._bus._cond:
            while True:
                out.extend(self._bus._take(self._positions, 1 << 62, ends))
                waiting = sorted(tp for tp, end in ends.items() if self._positions.get(tp, end) < end)
                if not waiting:
                    out.sort(key=lambda r: (r.topic, r.partition, r.offset))
                    return out
                if not self._bus._wait(deadline):
                    raise BusError(f"read {len(out)} records in {timeout}s; still waiting for {waiting}")

    def consume(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        deadline = time.monotonic() + timeout
        with self._bus._cond:
            while True:
                out = self._bus._take(self._positions, max_records)
                if out or not self._bus._wait(deadline):
                    return out

    @property
    def raw(self) -> NoReturn:
        _no_raw(self)

    def close(self) -> None:
        """Nothing to release."""
