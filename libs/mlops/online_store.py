"""The online feature view in Redis: written by the features service, read by inference.

Layout (one Redis hash per entity and feature-set version, with a TTL):

    key   {key_prefix}:online:{feature_set}:v{version}:{entity_id}
    field "vec"                  packed little-endian: int64 as_of_ms, uint32 version, k x float32 (feature order)
    field "<feature name>"       the value as text (for operators: `redis-cli HGETALL key` reads as a table)
    field "as_of_ms"             text
    field "feature_set_version"  text
    field "tp"                   W3C traceparent of the update that wrote the view ("" when untraced), so a
                                 reader (inference) can LINK its span to the feature update it used

Writes set every field and the TTL in one MULTI/EXEC, so the packed and readable fields never disagree. Reads
fetch only the packed field, with the traceparent appended server-side (the record has a fixed size, so the
reader splits them), of all requested entities with ONE server-side call (a cached Lua script looping HMGET over
KEYS), so a 64-entity lookup costs one round trip and one flat reply of 64 bulk strings, as cheap to parse as
MGET (a pipelined HGETALL of 64 hashes parses 64 maps and is several times slower; see the report of issue 4 and
loadtests/bench_features.py). The version lives in the key, so a new feature-set version never
reads vectors of the old one; the packed version is checked too.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import redis
import redis.asyncio as aredis

from mlops.schema import FEATURE_SET, FeatureSet
from mlops.settings import RedisSettings

__all__ = ["AsyncOnlineStore", "OnlineFeatures", "OnlineStore", "OnlineStoreError", "pack", "unpack"]

VECTOR_FIELD = "vec"
TRACEPARENT_FIELD = "tp"
_READ_ARGS = [VECTOR_FIELD, TRACEPARENT_FIELD]
_HEADER = struct.Struct("<qI")

# One call for N keys: the packed field of each key with its traceparent appended (the record has a fixed size,
# so the reader splits them), still one bulk string per entity; false -> nil in the reply for a missing key.
_READ_SCRIPT = """
local out = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('HMGET', key, ARGV[1], ARGV[2])
  if v[1] and v[2] then out[i] = v[1] .. v[2] else out[i] = v[1] end
end
return out
"""


class OnlineStoreError(RuntimeError):
    """The online store holds a value this code cannot read, or was given values it cannot write."""


class OnlineFeatures(NamedTuple):
    """One entity's online view (a NamedTuple: read_many builds up to thousands per call, and a frozen
    dataclass's __init__ costs several times more)."""

    entity_id: str
    values: dict[str, float]
    as_of_ms: int
    feature_set_version: int
    traceparent: str = ""  # W3C traceparent of the feature update that wrote this view ("" if untraced/old)


def pack(feature_set: FeatureSet, values: Mapping[str, float], as_of_ms: int) -> bytes:
    """The packed vector of `values` in feature order; a missing feature is an error (no silent zeros)."""
    missing = [n for n in feature_set.names if n not in values]
    if missing:
        raise OnlineStoreError(f"feature set {feature_set.name} v{feature_set.version}: missing {missing}")
    k = len(feature_set.names)
    return _HEADER.pack(int(as_of_ms), feature_set.version) + struct.pack(
        f"<{k}f", *(float(values[n]) for n in feature_set.names)
    )


@functools.cache
def _names(feature_set: FeatureSet) -> tuple[str, ...]:
    return feature_set.names


def _record(feature_set: FeatureSet) -> struct.Struct:
    return struct.Struct(f"<qI{len(feature_set.names)}f")


def unpack(feature_set: FeatureSet, entity_id: str, data: bytes) -> OnlineFeatures | None:
    """Decode a packed vector (optionally followed by the traceparent, as read_many's script returns it); None
    when it belongs to another feature-set version or shape."""
    return _Layout.unpack_with(_record(feature_set), feature_set, entity_id, data)


class _Layout:
    def __init__(self, settings: RedisSettings, feature_set: FeatureSet):
        self.feature_set = feature_set
        self._record = _record(feature_set)
        self._prefix = f"{settings.key_prefix}:online:{feature_set.name}:v{feature_set.version}:"

    def key(self, entity_id: str) -> str:
        return self._prefix + entity_id

    def mapping(self, values: Mapping[str, float], as_of_ms: int, traceparent: str = "") -> dict[str, bytes | str]:
        fields: dict[str, bytes | str] = {VECTOR_FIELD: pack(self.feature_set, values, as_of_ms)}
        fields |= {n: repr(float(values[n])) for n in self.feature_set.names}
        fields |= {"as_of_ms": str(int(as_of_ms)), "feature_set_version": str(self.feature_set.version),
                   TRACEPARENT_FIELD: traceparent}  # always set: an untraced update clears an older one
        return fields

    def decode(self, entity_ids: Sequence[str], replies: Sequence[bytes | None]) -> list[OnlineFeatures | None]:
        rec, fs = self._record, self.feature_set
        return [
            self.unpack_with(rec, fs, eid, raw) if raw is not None else None
            for eid, raw in zip(entity_ids, replies, strict=True)
        ]

    @staticmethod
    def unpack_with(rec: struct.Struct, fs: FeatureSet, entity_id: str, data: bytes) -> OnlineFeatures | None:
        size = rec.size
        if len(data) < size:
            return None
        fields = rec.unpack_from(data)
        if fields[1] != fs.version:
            return None
        tp = data[size:].decode("ascii", "replace") if len(data) > size else ""
        # the struct's format fixes the field count, so a plain zip is exact; names are cached (the hot path)
        return OnlineFeatures(entity_id, dict(zip(_names(fs), fields[2:])), fields[0], fields[1], tp)  # noqa: B905


class OnlineStore:
    """Synchronous online store (redis-py; hiredis parses replies when installed)."""

    def __init__(self, settings: RedisSettings, feature_set: FeatureSet = FEATURE_SET):
        self._layout = _Layout(settings, feature_set)
        self.feature_set = feature_set
        self._redis = redis.Redis.from_url(settings.url)
        self._read = self._redis.register_script(_READ_SCRIPT)

    def key(self, entity_id: str) -> str:
        return self._layout.key(entity_id)

    def write(self, entity_id: str, values: dict[str, float], as_of_ms: int, traceparent: str = "") -> None:
        """Replace the entity's view and (re)arm its TTL atomically; `traceparent` is the update's trace context."""
        key = self._layout.key(entity_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(key, mapping=self._layout.mapping(values, as_of_ms, traceparent))
        pipe.expire(key, self.feature_set.ttl_seconds)
        pipe.execute()

    def read_many(self, entity_ids: Sequence[str]) -> list[OnlineFeatures | None]:
        """The views of `entity_ids` in order (None: unknown, expired or another version) in one round trip."""
        if not entity_ids:
            return []
        replies = self._read(keys=[self._layout.key(e) for e in entity_ids], args=_READ_ARGS)
        return self._layout.decode(entity_ids, replies)

    def close(self) -> None:
        self._redis.close()


class AsyncOnlineStore:
    """The same store for asyncio code (redis.asyncio)."""

    def __init__(self, settings: RedisSettings, feature_set: FeatureSet = FEATURE_SET):
        self._layout = _Layout(settings, feature_set)
        self.feature_set = feature_set
        self._redis = aredis.Redis.from_url(settings.url)
        self._read = self._redis.register_script(_READ_SCRIPT)

    def key(self, entity_id: str) -> str:
        return self._layout.key(entity_id)

    async def write(self, entity_id: str, values: dict[str, float], as_of_ms: int, traceparent: str = "") -> None:
        key = self._layout.key(entity_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=self._layout.mapping(values, as_of_ms, traceparent))
            pipe.expire(key, self.feature_set.ttl_seconds)
            await pipe.execute()

    async def read_many(self, entity_ids: Sequence[str]) -> list[OnlineFeatures | None]:
        if not entity_ids:
            return []
        replies = await self._read(keys=[self._layout.key(e) for e in entity_ids], args=_READ_ARGS)
        return self._layout.decode(entity_ids, replies)

    async def close(self) -> None:
        await self._redis.aclose()
