"""Raw records (JSON or `RawEvent` bytes) → `ValidEvent` → `Event` / `DeadLetter` protobufs; and `EventEncoder`,
the batch path's `Event` bytes written directly from validated documents.

With the edge, the only module of ingest that touches generated `mlops.contracts` messages.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable, Mapping
from typing import Any

from mlops import contracts
from mlops.bus import Record
from mlops.contracts import common_pb2, events_pb2
from mlops.dead_letters import DEFAULT_ORIGINAL_BYTES, dead_letter

from services.ingest.core import (
    DEFAULT_MAX_FUTURE_SKEW_MS,
    JSON,
    SourceValidator,
    ValidEvent,
    check_size,
    detect_format,
)
from services.ingest.errors import Rejected

__all__ = ["EventEncoder", "raw_event_fields", "to_dead_letter", "to_event", "validate"]

SERVICE = "ingest"


def validate(
    value: bytes | None,
    validator: SourceValidator,
    *,
    content_type: str | None,
    fallback_event_id: str,
    now_ms: int,
    max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS,
) -> ValidEvent:
    """One raw record of `validator`'s source, JSON or protobuf (the content type decides, else the first byte),
    as a `ValidEvent`; raise `Rejected` naming the field (never anything else for bad input)."""
    value = check_size(value)
    if detect_format(value, content_type) == JSON:
        return validator.validate_json(
            value, fallback_event_id=fallback_event_id, now_ms=now_ms, max_future_skew_ms=max_future_skew_ms
        )
    return validator.validate_fields(
        raw_event_fields(value, validator),
        fallback_event_id=fallback_event_id,
        now_ms=now_ms,
        max_future_skew_ms=max_future_skew_ms,
    )


def raw_event_fields(value: bytes, validator: SourceValidator) -> dict[str, Any]:
    """A `RawEvent`'s fields under the source's JSON names (so both forms share one validator): the entity id
    under its id field, the event time under the source's time field, `values` and `categories` together."""
    try:
        raw = contracts.decode(events_pb2.RawEvent, value)
    except contracts.ContractError as exc:
        raise Rejected("malformed_protobuf", "", exc.detail) from exc
    values: dict[str, Any] = dict(raw.values)
    if raw.categories:
        both = sorted(set(values) & set(raw.categories))
        if both:
            raise Rejected("invalid_value", f"values.{both[0]}", "given both as a value and as a category")
        values.update(raw.categories)
    return {
        validator.id_field: raw.entity_id,
        validator.time_field: raw.event_time_ms,
        "schema_version": raw.schema_version,
        "values": values,
        "event_id": raw.event_id or None,
    }


def to_event(ev: ValidEvent, topic: str, partition: int, offset: int, ingest_time_ms: int) -> events_pb2.Event:
    """The typed event, with the raw record's position as its source."""
    return events_pb2.Event(
        event_id=ev.event_id,
        entity_id=ev.entity_id,
        event_time_ms=ev.event_time_ms,
        ingest_time_ms=ingest_time_ms,
        schema_version=ev.schema_version,
        values=ev.values,
        categories=ev.categories or None,
        source=common_pb2.SourcePosition(topic=topic, partition=partition, offset=offset),
        source_name=ev.source_name,
    )


def to_dead_letter(record: Record, error_type: str, field: str, reason: str, now_ms: int,
                   max_original_bytes: int = DEFAULT_ORIGINAL_BYTES) -> events_pb2.DeadLetter:
    """A rejected record with (at most `max_original_bytes` of) its original bytes, their size and sha256, its
    headers, and the reason naming the field."""
    return dead_letter(record, SERVICE, error_type, field, reason, now_ms, max_original_bytes)


# --- Event bytes without building an Event ------------------------------------------------------------------------
_pack_double = struct.Struct("<d").pack
_SMALL = [bytes((n,)) for n in range(0x80)]  # one-byte varints
_CONTINUED = [bytes((n | 0x80,)) for n in range(0x80)]  # a varint's low 7 bits when more follow


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _map_order(key: str) -> bytes:
    """protobuf's deterministic order of map keys: by their bytes, a key before its own prefixes ("neg" before
    "n"; 0xff never occurs in UTF-8)."""
    return key.encode() + b"\xff"


def _length(data: bytes) -> bytes:
    return _SMALL[len(data)] if len(data) < 0x80 else _varint(len(data))


def _no_values(values: Mapping[str, float]) -> bytes:
    return b""


def _len_field(tag: int, data: bytes) -> bytes:
    return bytes((tag,)) + _varint(len(data)) + data


class EventEncoder:
    """Writes the bytes `contracts.encode(to_event(...))` writes — the same bytes, which a test checks field type
    by field type — for one batch of one source: what every event of the batch shares (contract version, ingest
    time, source topic and name) is encoded once, per record only the ids, times, values and position. Building
    and serializing an `Event` message cost more per record than validating it. Proto3 wire format, fields in
    number order, map entries sorted by key (deterministic serialization), defaults (0, "") omitted; keep it in
    step with `events.proto` (the test fails when a field is added there and not here)."""

    message_type = events_pb2.Event
    FIELDS = ("contract_version", "event_id", "entity_id", "event_time_ms", "ingest_time_ms", "schema_version",
              "values", "source", "source_name", "categories")  # what this encoder writes, in field order

    def __init__(self, source_name: str, schema_version: int, topic: str, ingest_time_ms: int):
        self._head = b"\x08" + _varint(contracts.CONTRACT_VERSION)  # 1: contract_version
        self._times = b"\x28" + _varint(ingest_time_ms) if ingest_time_ms else b""  # 5: ingest_time_ms
        self._times += b"\x30" + _varint(schema_version) if schema_version else b""  # 6: schema_version
        self._topic = _len_field(0x0A, topic.encode())  # SourcePosition 1: topic
        self._source_name = _len_field(0x4A, source_name.encode()) if source_name else b""  # 9
        self._keys: dict[str, bytes] = {}  # a value's map-entry prefix, by key (the key's bytes are constant)
        self._sources: dict[int, bytes] = {}  # SourcePosition's topic and partition fields, by partition
        self._high: dict[int, bytes] = {}  # varints of n >> 7 (see _wide)
        self._writers: dict[tuple[str, ...], Callable[[Mapping[str, float]], bytes]] = {}  # by the maps' keys

    def _entry_prefix(self, key: str) -> bytes:
        k = key.encode()
        key_field = _len_field(0x0A, k)
        prefix = b"\x3a" + _varint(len(key_field) + 9) + key_field + b"\x11"  # + 8 bytes of double
        self._keys[key] = prefix
        return prefix

    def _wide(self, n: int) -> bytes:
        """The varint of `n` >= 128: its low 7 bits, then the varint of the rest — cached, as a batch's times and
        offsets share their high bits."""
        high = n >> 7
        tail = self._high.get(high)
        if tail is None:
            tail = self._high[high] = _varint(high)
        return _CONTINUED[n & 0x7F] + tail

    def _values_writer(self, key_set: tuple[str, ...]) -> Callable[[Mapping[str, float]], bytes]:
        """The `values` map's entries for maps with these keys (in this order): one struct call packs every
        entry's constant prefix and its double."""
        ordered = sorted(key_set, key=_map_order)
        prefixes = [self._keys.get(k) or self._entry_prefix(k) for k in ordered]
        pack = struct.Struct("<" + "".join(f"{len(p)}sd" for p in prefixes)).pack
        args: list[Any] = [x for p in prefixes for x in (p, 0.0)]
        if len(ordered) == 1:
            [only] = ordered

            def write(values: Mapping[str, float]) -> bytes:
                args[1] = values[only]
                return pack(*args)
        else:
            get = operator.itemgetter(*ordered)

            def write(values: Mapping[str, float]) -> bytes:
                args[1::2] = get(values)
                return pack(*args)

        self._writers[key_set] = write
        return write

    def encode(self, event_id: str, entity_id: str, event_time_ms: int, values: Mapping[str, float],
               categories: Mapping[str, str], partition: int, offset: int) -> bytes:
        key_set = tuple(values)
        write_values = self._writers.get(key_set) or self._values_writer(key_set) if key_set else _no_values
        source = self._sources.get(partition)  # 8: SourcePosition (2 partition, 3 offset; omitted when 0)
        if source is None:
            source = self._sources[partition] = self._topic + (b"\x10" + _varint(partition) if partition else b"")
        if offset:
            source += b"\x18" + (_SMALL[offset] if offset < 0x80 else self._wide(offset))
        eid, ent = event_id.encode(), entity_id.encode()
        parts = [
            self._head,
            b"\x12" + _length(eid) + eid if eid else b"",  # 2
            b"\x1a" + _length(ent) + ent if ent else b"",  # 3
            b"\x20" + (_SMALL[event_time_ms] if event_time_ms < 0x80 else self._wide(event_time_ms))
            if event_time_ms else b"",  # 4 (always > 0 here: validated)
            self._times,  # 5, 6
            write_values(values),  # 7: map<string, double>, an entry per key: 1 key, 2 value (both always written)
            b"\x42", _length(source), source,
            self._source_name,  # 9
        ]
        for key in sorted(categories, key=_map_order) if categories else ():  # 10: map<string, string>
            entry = _len_field(0x0A, key.encode()) + _len_field(0x12, categories[key].encode())
            parts += (b"\x52", _varint(len(entry)), entry)
        return b"".join(parts)
