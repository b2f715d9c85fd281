"""One consumed record (`Record`), the bus's error (`BusError`) and the headers every producer stamps."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from google.protobuf.message import Message as PbMessage

from mlops import contracts
from mlops.errors import MlopsError

__all__ = [
    "HEADER_CONTENT_TYPE",
    "HEADER_CONTRACT",
    "HEADER_MESSAGE_TYPE",
    "BusError",
    "MessageLike",
    "Record",
    "next_offsets",
]

PB = TypeVar("PB", bound=PbMessage)

HEADER_CONTENT_TYPE = "content-type"
HEADER_CONTRACT = "contract-version"
HEADER_MESSAGE_TYPE = "message-type"


class BusError(MlopsError):
    """A record could not be delivered, committed or read."""


class MessageLike(Protocol):
    """The part of confluent-kafka's Message that Record reads (MemoryBus's messages have the same methods)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def timestamp(self) -> tuple[int, int]: ...
    def headers(self) -> list[tuple[str, bytes | None]] | None: ...


class Record:
    """One consumed record: a read-only view of a message (fields read on demand — the consume hot path touches
    only what a handler uses)."""

    __slots__ = ("_msg", "_headers")

    def __init__(self, msg: MessageLike):
        self._msg = msg
        self._headers: dict[str, bytes] | None = None

    topic = property(lambda self: self._msg.topic())
    partition = property(lambda self: self._msg.partition())
    offset = property(lambda self: self._msg.offset())
    key = property(lambda self: self._msg.key())
    value = property(lambda self: self._msg.value())

    @property
    def timestamp_ms(self) -> int:
        ts_type, ts = self._msg.timestamp()
        return ts if ts_type else 0

    @property
    def headers(self) -> dict[str, bytes]:
        if self._headers is None:
            self._headers = {k: (v if v is not None else b"") for k, v in (self._msg.headers() or [])}
        return self._headers

    @property
    def where(self) -> str:
        return f"topic={self.topic} partition={self.partition} offset={self.offset}"

    def header(self, name: str) -> str | None:
        raw = self.headers.get(name)
        return raw.decode("utf-8", "replace") if raw is not None else None

    def decode(self, message_type: type[PB]) -> PB:
        """The value as `message_type`; raises contracts.ContractError naming topic/partition/offset."""
        return contracts.decode(message_type, self.value, lambda: self.where)

    def __repr__(self) -> str:
        return f"Record({self.where}, key={self.key!r}, {len(self.value or b'')} bytes)"


def next_offsets(records: Iterable[Record]) -> dict[tuple[str, int], int]:
    """(topic, partition) → the offset after the highest record of that partition in `records`: what to commit."""
    highest: dict[tuple[str, int], int] = {}
    for r in records:
        msg = r._msg  # one dict write per record: consume order is offset order within a partition
        key = (msg.topic(), msg.partition())
        offset = msg.offset()
        if offset > highest.get(key, -1):
            highest[key] = offset
    return {key: offset + 1 for key, offset in highest.items()}
