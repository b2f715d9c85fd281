"""The online feature view: written by the features service, read by inference.

`OnlineStore` is the interface both sides code against: write a batch of entity views, read many by entity id,
close. `RedisOnlineStore` is the deployed backend; `MemoryOnlineStore` keeps the same records in process memory for
tests and broker-free runs. `SyncRedisOnlineStore` is the blocking Redis client for scripts, tests and benchmarks.

Redis layout per entity and feature-set version, both keys with the same TTL and written in one MULTI/EXEC:

    {key_prefix}:online:{feature_set}:v{version}:{entity_id}       hash, for operators (`redis-cli HGETALL`):
        "<feature name>"       the value as text
        "as_of_ms"             text
        "feature_set_version"  text
        "tp"                   W3C traceparent of the update that wrote the view ("" when untraced)
    {key_prefix}:online-vec:{feature_set}:v{version}:{entity_id}   string, for readers: one fixed-size record,
        little-endian int64 as_of_ms, uint32 version, k x float32 (feature order), traceparent (55 bytes, NUL-padded)

Readers fetch N entities with ONE `MGET` of the records and decode them with one numpy call, so a 64-entity lookup
costs what a raw MGET costs plus microseconds; keep that read path when changing the layout. The version lives in
the keys, so a new feature-set version never reads vectors of the old one; the record's version is checked too;
a record of another size (another shape of the feature set) reads as missing.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import NamedTuple, Protocol

import numpy as np
import redis
import redis.asyncio as aredis

from mlops.errors import MlopsError
from mlops.schema import FEATURE_SET, FeatureSet
from mlops.settings import RedisSettings

__all__ = [
    "TRACEPARENT_FIELD",
    "AsyncOnlineStore",
    "MemoryOnlineStore",
    "MissingFeatures",
    "OnlineFeatures",
    "OnlineStore",
    "OnlineStoreError",
    "RedisOnlineStore",
    "SyncRedisOnlineStore",
    "TraceparentTooLong",
    "View",
    "pack",
]

TRACEPARENT_FIELD = "tp"
TRACEPARENT_SIZE = 55  # "00-" 32 hex "-" 16 hex "-" 2 hex
_HEADER = struct.Struct("<qI")

View = tuple[str, Mapping[str, float], int, str]
"""One view to write: (entity_id, values by feature name, as_of_ms, traceparent of the update or "")."""


class OnlineStoreError(MlopsError):
    """The online store was given a view it cannot write."""


class MissingFeatures(OnlineStoreError):
    def __init__(self, feature_set: FeatureSet, missing: Sequence[str]):
        super().__init__(f"feature set {feature_set.name} v{feature_set.version}: missing {list(missing)}")
        self.feature_set, self.missing = feature_set, list(missing)


class TraceparentTooLong(OnlineStoreError):
    def __init__(self, traceparent: str):
        super().__init__(f"traceparent longer than {TRACEPARENT_SIZE} bytes: {traceparent!r}")
        self.traceparent = traceparent


class OnlineFeatures(NamedTuple):
    """One entity's online view (a NamedTuple: read_many builds up to thousands per call, and a frozen
    dataclass's __init__ costs several times more)."""

    entity_id: str
    values: dict[str, float]
    as_of_ms: int
    feature_set_version: int
    traceparent: str = ""  # W3C traceparent of the feature update that wrote this view ("" if untraced/old)


class OnlineStore(Protocol):
    """What the features service writes and inference reads: the latest view of each entity for one feature-set
    version, gone `feature_set.ttl_seconds` after its last write."""

    async def write_many(self, views: Sequence[View]) -> None:
        """Replace each entity's view and re-arm its TTL; a view that cannot be written raises before any is."""
        ...

    async def read_many(self, entity_ids: Sequence[str]) -> list[OnlineFeatures | None]:
        """The views of `entity_ids` in order; None where unknown, expired or of another feature-set version."""
        ...

    async def close(self) -> None: ...


def pack(feature_set: FeatureSet, values: Mapping[str, float], as_of_ms: int, traceparent: str = "") -> bytes:
    """The record of `values` in feature order; a missing feature is an error (no silent zeros)."""
    missing = [n for n in feature_set.names if n not in values]
    if missing:
        raise MissingFeatures(feature_set, missing)
    tp = traceparent.encode("ascii")
    if len(tp) > TRACEPARENT_SIZE:
        raise TraceparentTooLong(traceparent)
    k = len(feature_set.names)
    return (
        _HEADER.pack(int(as_of_ms), feature_set.version)
        + struct.pack(f"<{k}f", *(float(values[n]) for n in feature_set.names))
        + tp.ljust(TRACEPARENT_SIZE, b"\0")
    )


class _Layout:
    """Keys and the record codec of one feature-set version, shared by every backend so they read alike."""

    def __init__(self, key_prefix: str, feature_set: FeatureSet):
        self.feature_set = feature_set
        self.names = feature_set.names
        k = len(self.names)
        self._dtype = np.dtype([("as_of", "<i8"), ("version", "<u4"), ("x", "<f4", (k,)),
                                ("tp", f"S{TRACEPARENT_SIZE}")])
        where = f"{feature_set.name}:v{feature_set.version}:"
        self._hash_prefix = f"{key_prefix}:online:{where}"
        self._vec_prefix = f"{key_prefix}:online-vec:{where}"

    def key(self, entity_id: str) -> str:
        return self._hash_prefix + entity_id

    def vec_key(self, entity_id: str) -> str:
        return self._vec_prefix + entity_id

    def queue_write(self, pipe: redis.client.Pipeline, entity_id: str, values: Mapping[str, float], as_of_ms: int,
                    traceparent: str) -> None:
        """Queue one view's commands (both keys, both TTLs) on a MULTI pipeline."""
        record = pack(self.feature_set, values, as_of_ms, traceparent)  # first: a bad view queues nothing
        ttl = self.feature_set.ttl_seconds
        fields: dict[str, str] = {n: repr(float(values[n])) for n in self.names}
        fields |= {"as_of_ms": str(int(as_of_ms)), "feature_set_version": str(self.feature_set.version),
                   TRACEPARENT_FIELD: traceparent}  # always set: an untraced update clears an older one
        key = self.key(entity_id)
        pipe.hset(key, mapping=fields)
        pipe.expire(key, ttl)
        pipe.set(self.vec_key(entity_id), record, ex=ttl)

    def decode(self, entity_ids: Sequence[str], replies: Sequence[bytes | None]) -> list[OnlineFeatures | None]:
        out: list[OnlineFeatures | None] = [None] * len(entity_ids)
        full = self._dtype.itemsize
        rows = [i for i, raw in enumerate(replies) if raw is not None and len(raw) == full]
        if rows:  # all records decoded by one numpy call
            arr = np.frombuffer(b"".join([replies[i] for i in rows]), dtype=self._dtype)  # type: ignore[misc]
            names, version = self.names, self.feature_set.version
            for i, x, as_of, ver, tp in zip(rows, arr["x"].tolist(), arr["as_of"].tolist(),
                                            arr["version"].tolist(), arr["tp"].tolist(), strict=True):
                if ver == version:
                    out[i] = OnlineFeatures(entity_ids[i], dict(zip(names, x, strict=True)), as_of, ver,
                                            tp.decode("ascii", "replace"))
        return out


class _RedisKeys:
    def __init__(self, settings: RedisSettings, feature_set: FeatureSet):
        self._layout = _Layout(settings.key_prefix, feature_set)
        self.feature_set = feature_set

    def key(self, entity_id: str) -> str:
        """The entity's operator-readable hash key."""
        return self._layout.key(entity_id)


class RedisOnlineStore(_RedisKeys):
    """The online store in Redis for asyncio code (redis.asyncio; hiredis parses replies when installed)."""

    def __init__(self, settings: RedisSettings, feature_set: FeatureSet = FEATURE_SET):
        super().__init__(settings, feature_set)
        self._redis = aredis.Redis.from_url(settings.url)

    async def write(self, entity_id: str, values: Mapping[str, float], as_of_ms: int, traceparent: str = "") -> None:
        await self.write_many([(entity_id, values, as_of_ms, traceparent)])

    async def write_many(self, views: Sequence[View]) -> None:
        """Write the views in ONE round trip (one MULTI/EXEC)."""
        if not views:
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            for entity_id, values, as_of_ms, traceparent in views:
                self._layout.queue_write(pipe, entity_id, values, as_of_ms, traceparent)  # type: ignore[arg-type]
            await pipe.execute()

    async def read_many(self, entity_ids: Sequence[str]) -> list[OnlineFeatures | None]:
        if not entity_ids:
            return []
        replies = await self._redis.mget([self._layout.vec_key(e) for e in entity_ids])
        return self._layout.decode(entity_ids, replies)

    async def close(self) -> None:
        await self._redis.aclose()


AsyncOnlineStore = RedisOnlineStore  # the name features and inference import


class SyncRedisOnlineStore(_RedisKeys):
    """The same Redis store with a blocking client (redis-py), for scripts, tests and benchmarks."""

    def __init__(self, settings: RedisSettings, feature_set: FeatureSet = FEATURE_SET):
        super().__init__(settings, feature_set)
        self._redis = redis.Redis.from_url(settings.url)

    def write(self, entity_id: str, values: Mapping[str, float], as_of_ms: int, traceparent: str = "") -> None:
        """Replace the entity's view and (re)arm its TTL atomically; `traceparent` is the update's trace context."""
        pipe = self._redis.pipeline(transaction=True)
        self._layout.queue_write(pipe, entity_id, values, as_of_ms, traceparent)
        pipe.execute()

    def read_many(self, entity_ids: Sequence[str]) -> list[OnlineFeatures | None]:
        """The views of `entity_ids` in order (None: unknown, expired or another version) in one round trip."""
        if not entity_ids:
            return []
        replies = self._redis.mget([self._layout.vec_key(e) for e in entity_ids])
        return self._layout.decode(entity_ids, replies)

    def close(self) -> None:
        self._redis.close()


class MemoryOnlineStore:
    """The online store in process memory: the same records and version checks as Redis, and the TTL checked on
    read. Stores given the same `records` mapping see each other's views, as two clients of one Redis do."""

    def __init__(self, feature_set: FeatureSet = FEATURE_SET, *, key_prefix: str = "mlops",
                 records: MutableMapping[str, tuple[bytes, float]] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self._layout = _Layout(key_prefix, feature_set)
        self.feature_set = feature_set
        self._records: MutableMapping[str, tuple[bytes, float]] = {} if records is None else records
        self._clock = clock

    async def write_many(self, views: Sequence[View]) -> None:
        packed = [(self._layout.vec_key(e), pack(self.feature_set, values, as_of_ms, tp))
                  for e, values, as_of_ms, tp in views]  # every view packed before any is stored: all or none
        expires_at = self._clock() + self.feature_set.ttl_seconds
        for key, record in packed:
            self._records[key] = (record, expires_at)

    async def read_many(self, entity_ids: Sequence[str]) -> list[OnlineFeatures | None]:
        now = self._clock()
        replies: list[bytes | None] = []
        for entity_id in entity_ids:
            key = self._layout.vec_key(entity_id)
            entry = self._records.get(key)
            if entry is not None and entry[1] <= now:
                del self._records[key]  # expire on read, as Redis does lazily
                entry = None
            replies.append(None if entry is None else entry[0])
        return self._layout.decode(entity_ids, replies)

    async def close(self) -> None:
        return None
