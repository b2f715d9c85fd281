"""The online feature views: written by the features service, read by inference.

Every declared feature view is stored per entity and per view version. `ViewLayout` says which: the view's name,
its version (`revision.view_versions`), its columns in declared order (`Definitions.feature_names`) and its TTL;
`ViewLayout.of(definitions, view, version)` makes one from the definitions, `view_layouts(revision)` every view of
a revision.

`OnlineStore` is the interface both sides code against: write a batch of views (any mix of views, one round trip),
read many entities of ONE view layout (one round trip), close. `RedisOnlineStore` is the deployed backend;
`MemoryOnlineStore` keeps the same records in process memory for tests and broker-free runs;
`SyncRedisOnlineStore` is the blocking Redis client for scripts, tests and benchmarks. Both Redis clients use
bounded connect/reply timeouts and few retries (`RedisSettings`), and raise `OnlineStoreUnavailable` when Redis
cannot be reached or answers too late, so a caller can tell an outage from a bug (inference answers UNAVAILABLE).

Redis layout per entity and view version, both keys with the view's TTL and written in one MULTI/EXEC:

    {key_prefix}:online:{view}:v{version}:{entity_id}       hash, for operators (`redis-cli HGETALL`):
        "<column>"             the value as text ("nan": no value yet)
        "as_of_ms"             text
        "view_version"         text
        "tp"                   W3C traceparent of the update that wrote the view ("" when untraced)
    {key_prefix}:online-vec:{view}:v{version}:{entity_id}   string, for readers: one fixed-size record,
        little-endian int64 as_of_ms, uint32 version, k x float32 (column order), traceparent (55 bytes, NUL-padded)

Readers fetch N entities with ONE `MGET` of the records and decode them with one numpy call, so a 64-entity lookup
costs what a raw MGET costs plus microseconds; keep that read path when changing the layout. The version lives in
the keys, so a reader of version 3 never sees a record of version 2; the record's version is checked too; a record
of another size (another shape of the view) reads as missing. A reader that misses entities in the current version
may read them again with an older version's layout (the columns it needs keep their meaning across versions: apply
refuses a redefinition while a registered model reads them).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np
import redis
import redis.asyncio as aredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from mlops.errors import MlopsError
from mlops.settings import RedisSettings

if TYPE_CHECKING:
    from mlops.definitions import Definitions, FeatureView, Revision

__all__ = [
    "TRACEPARENT_FIELD",
    "AsyncOnlineStore",
    "MemoryOnlineStore",
    "MissingFeatures",
    "OnlineFeatures",
    "OnlineStore",
    "OnlineStoreError",
    "OnlineStoreUnavailable",
    "RedisOnlineStore",
    "SyncRedisOnlineStore",
    "TraceparentTooLong",
    "ViewLayout",
    "ViewUpdate",
    "pack",
    "redis_client_options",
    "view_layouts",
]

TRACEPARENT_FIELD = "tp"
TRACEPARENT_SIZE = 55  # "00-" 32 hex "-" 16 hex "-" 2 hex
_HEADER = struct.Struct("<qI")


@dataclass(frozen=True)
class ViewLayout:
    """What one version of a feature view looks like in the store: a reader and a writer of the same layout see
    the same keys and the same record."""

    name: str
    version: int
    columns: tuple[str, ...]
    ttl_s: int = 24 * 3600

    @classmethod
    def of(cls, definitions: Definitions, view: str | FeatureView, version: int) -> ViewLayout:
        fv = definitions.feature_view(view) if isinstance(view, str) else view
        return cls(fv.name, version, definitions.feature_names(fv), fv.ttl_s)

    @cached_property
    def dtype(self) -> np.dtype:
        """The record as a numpy structured type (one per layout: building it costs more than decoding a row)."""
        return np.dtype([("as_of", "<i8"), ("version", "<u4"), ("x", "<f4", (len(self.columns),)),
                         ("tp", f"S{TRACEPARENT_SIZE}")])

    @cached_property
    def _values(self) -> struct.Struct:
        return struct.Struct(f"<{len(self.columns)}f")


def view_layouts(revision: Revision) -> dict[str, ViewLayout]:
    """The layout of every view of `revision`, by view name, at the version the revision gives it."""
    d = revision.definitions
    return {v.name: ViewLayout.of(d, v, revision.view_versions[v.name]) for v in d.feature_views}


class ViewUpdate(NamedTuple):
    """One entity's view to write: its values by column, as of the event time, and the update's traceparent."""

    layout: ViewLayout
    entity_id: str
    values: Mapping[str, float]
    as_of_ms: int
    traceparent: str = ""


class OnlineStoreError(MlopsError):
    """The online store was given a view it cannot write."""


class OnlineStoreUnavailable(MlopsError):
    """Redis could not be reached or did not answer in time (the request itself may be fine: retry later)."""

    def __init__(self, operation: str, cause: BaseException):
        super().__init__(f"online store unavailable ({operation}): {type(cause).__name__}: {cause}")
        self.operation = operation


# what an outage looks like from redis-py (a refused or dropped connection, a reply later than socket_timeout_s)
_OUTAGE = (redis.ConnectionError, redis.TimeoutError, OSError)


def redis_client_options(settings: RedisSettings, *, blocking: bool = False) -> dict[str, object]:
    """The keyword arguments of a Redis client with the bounded timeouts and retries of `settings` (redis-py's
    defaults wait 5 s per attempt and retry 10 times: a minute before a caller hears of an outage)."""
    retry = (Retry if blocking else AsyncRetry)(ExponentialBackoff(cap=0.1, base=0.01), settings.retries)
    return {"socket_connect_timeout": settings.connect_timeout_s, "socket_timeout": settings.socket_timeout_s,
            "retry": retry}


class MissingFeatures(OnlineStoreError):
    def __init__(self, layout: ViewLayout, missing: Sequence[str]):
        super().__init__(f"feature view {layout.name} v{layout.version}: missing {list(missing)}")
        self.layout, self.missing = layout, list(missing)


class TraceparentTooLong(OnlineStoreError):
    def __init__(self, traceparent: str):
        super().__init__(f"traceparent longer than {TRACEPARENT_SIZE} bytes: {traceparent!r}")
        self.traceparent = traceparent


class OnlineFeatures(NamedTuple):
    """One entity's online view (a NamedTuple: read_many builds up to thousands per call, and a frozen
    dataclass's __init__ costs several times more)."""

    entity_id: str
    values: dict[str, float]  # by column; NaN where the view has no value yet
    as_of_ms: int
    view_version: int
    traceparent: str = ""  # W3C traceparent of the feature update that wrote this view ("" if untraced)


class OnlineStore(Protocol):
    """What the features service writes and inference reads: the latest view of each entity per view version,
    gone `layout.ttl_s` after its last write."""

    async def write_many(self, updates: Sequence[ViewUpdate]) -> None:
        """Replace each entity's view and re-arm its TTL, in one round trip; a view that cannot be written raises
        before any is."""
        ...

    async def read_many(self, layout: ViewLayout, entity_ids: Sequence[str]) -> list[OnlineFeatures | None]:
        """The views of `entity_ids` in order; None where unknown, expired or of another layout."""
        ...

    async def close(self) -> None: ...


def pack(layout: ViewLayout, values: Mapping[str, float], as_of_ms: int, traceparent: str = "") -> bytes:
    """The record of `values` in column order; a missing column is an error (no silent zeros: NaN says "none")."""
    try:
        xs = [float(values[c]) for c in layout.columns]
    except KeyError:
        raise MissingFeatures(layout, [c for c in layout.columns if c not in values]) from None
    tp = traceparent.encode("ascii")
    if len(tp) > TRACEPARENT_SIZE:
        raise TraceparentTooLong(traceparent)
    return _HEADER.pack(int(as_of_ms), layout.version) + layout._values.pack(*xs) + tp.ljust(TRACEPARENT_SIZE, b"\0")


def _decode(layout: ViewLayout, entity_ids: Sequence[str],
           replies: Sequence[bytes | None]) -> list[OnlineFeatures | None]:
    """The views in MGET `replies` (one numpy call for all records); None for a missing or foreign record."""
    out: list[OnlineFeatures | None] = [None] * len(entity_ids)
    dtype = layout.dtype
    full = dtype.itemsize
    rows = [i for i, raw in enumerate(replies) if raw is not None and len(raw) == full]
    if rows:
        arr = np.frombuffer(b"".join([replies[i] for i in rows]), dtype=dtype)  # type: ignore[misc]
        names, version = layout.columns, layout.version
        for i, x, as_of, ver, tp in zip(rows, arr["x"].tolist(), arr["as_of"].tolist(), arr["version"].tolist(),
                                        arr["tp"].tolist(), strict=True):
            if ver == version:
                out[i] = OnlineFeatures(entity_ids[i], dict(zip(names, x, strict=True)), as_of, ver,
                                        tp.decode("ascii", "replace"))
    return out


class _Keys:
    """Key names of one key prefix; the prefixes of each layout are built once."""

    def __init__(self, key_prefix: str):
        self.key_prefix = key_prefix
        self._prefixes: dict[ViewLayout, tuple[str, str]] = {}

    def _of(self, layout: ViewLayout) -> tuple[str, str]:
        prefixes = self._prefixes.get(layout)
        if prefixes is None:
            where = f"{layout.name}:v{layout.version}:"
            prefixes = self._prefixes[layout] = (f"{self.key_prefix}:online:{where}",
                                                 f"{self.key_prefix}:online-vec:{where}")
        return prefixes

    def key(self, layout: ViewLayout, entity_id: str) -> str:
        """The entity's operator-readable hash key."""
        return self._of(layout)[0] + entity_id

    def vec_key(self, layout: ViewLayout, entity_id: str) -> str:
        return self._of(layout)[1] + entity_id

    def vec_keys(self, layout: ViewLayout, entity_ids: Sequence[str]) -> list[str]:
        prefix = self._of(layout)[1]
        return [prefix + e for e in entity_ids]

    def queue_writes(self, pipe: redis.client.Pipeline, updates: Sequence[ViewUpdate]) -> None:
        """Queue the views' commands (both keys, both TTLs) on a MULTI pipeline; every record is packed before
        anything is queued, so a view that cannot be written raises with nothing of its batch queued."""
        records = [pack(u.layout, u.values, u.as_of_ms, u.traceparent) for u in updates]
        for update, record in zip(updates, records, strict=True):
            self._queue(pipe, update, record)

    @staticmethod
    def hash_fields(update: ViewUpdate) -> dict[str, str]:
        """The operator-readable hash of a view update."""
        layout, _entity_id, values, as_of_ms, traceparent = update
        fields: dict[str, str] = {c: repr(float(values[c])) for c in layout.columns}
        fields |= {"as_of_ms": str(int(as_of_ms)), "view_version": str(layout.version),
                   TRACEPARENT_FIELD: traceparent}  # always set: an untraced update clears an older one
        return fields

    def _queue(self, pipe: redis.client.Pipeline, update: ViewUpdate, record: bytes) -> None:
        layout, entity_id = update.layout, update.entity_id
        key = self.key(layout, entity_id)
        pipe.hset(key, mapping=self.hash_fields(update))
        pipe.expire(key, layout.ttl_s)
        pipe.set(self.vec_key(layout, entity_id), record, ex=layout.ttl_s)


class RedisOnlineStore(_Keys):
    """The online store in Redis for asyncio code (redis.asyncio; hiredis parses replies when installed)."""

    def __init__(self, settings: RedisSettings):
        super().__init__(settings.key_prefix)
        self._redis = aredis.Redis.from_url(settings.url, **redis_client_options(settings))  # type: ignore[arg-type]

    async def write_many(self, updates: Sequence[ViewUpdate]) -> None:
        """Write the views in ONE round trip (one MULTI/EXEC)."""
        if not updates:
            return
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                self.queue_writes(pipe, updates)  # type: ignore[arg-type]
                await pipe.execute()
        except _OUTAGE as exc:
            raise OnlineStoreUnavailable("write", exc) from exc

    async def read_many(self, layout: ViewLayout, entity_ids: Sequence[str]) -> list[OnlineFeatures | None]:
        if not entity_ids:
            return []
        try:
            replies = await self._redis.mget(self.vec_keys(layout, entity_ids))
        except _OUTAGE as exc:
            raise OnlineStoreUnavailable("read", exc) from exc
        return _decode(layout, entity_ids, replies)

    async def close(self) -> None:
        await self._redis.aclose()


AsyncOnlineStore = RedisOnlineStore  # the name features and inference import


class SyncRedisOnlineStore(_Keys):
    """The same Redis store with a blocking client (redis-py), for scripts, tests and benchmarks."""

    def __init__(self, settings: RedisSettings):
        super().__init__(settings.key_prefix)
        self._redis = redis.Redis.from_url(settings.url, **redis_client_options(settings, blocking=True))  # type: ignore[arg-type]

    @property
    def client(self) -> redis.Redis:
        """The blocking client (for bulk work such as the rebuild from features.log)."""
        return self._redis

    def write_many(self, updates: Sequence[ViewUpdate]) -> None:
        """Replace the views and (re)arm their TTLs atomically, in one round trip."""
        if not updates:
            return
        pipe = self._redis.pipeline(transaction=True)
        self.queue_writes(pipe, updates)
        try:
            pipe.execute()
        except _OUTAGE as exc:
            raise OnlineStoreUnavailable("write", exc) from exc

    def write(self, layout: ViewLayout, entity_id: str, values: Mapping[str, float], as_of_ms: int,
              traceparent: str = "") -> None:
        self.write_many([ViewUpdate(layout, entity_id, values, as_of_ms, traceparent)])

    def read_many(self, layout: ViewLayout, entity_ids: Sequence[str]) -> list[OnlineFeatures | None]:
        """The views of `entity_ids` in order (None: unknown, expired or another layout) in one round trip."""
        if not entity_ids:
            return []
        try:
            replies = self._redis.mget(self.vec_keys(layout, entity_ids))
        except _OUTAGE as exc:
            raise OnlineStoreUnavailable("read", exc) from exc
        return _decode(layout, entity_ids, replies)  # type: ignore[arg-type]

    def close(self) -> None:
        self._redis.close()


class MemoryOnlineStore(_Keys):
    """The online store in process memory: the same records and version checks as Redis, and the TTL checked on
    read. Stores given the same `records` mapping see each other's views, as two clients of one Redis do."""

    def __init__(self, *, key_prefix: str = "mlops", records: MutableMapping[str, tuple[bytes, float]] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(key_prefix)
        self._records: MutableMapping[str, tuple[bytes, float]] = {} if records is None else records
        self._clock = clock

    async def write_many(self, updates: Sequence[ViewUpdate]) -> None:
        now = self._clock()
        packed = [(self.vec_key(u.layout, u.entity_id), pack(u.layout, u.values, u.as_of_ms, u.traceparent),
                   now + u.layout.ttl_s) for u in updates]  # every view packed before any is stored: all or none
        for key, record, expires_at in packed:
            self._records[key] = (record, expires_at)

    async def read_many(self, layout: ViewLayout, entity_ids: Sequence[str]) -> list[OnlineFeatures | None]:
        now = self._clock()
        replies: list[bytes | None] = []
        for key in self.vec_keys(layout, entity_ids):
            entry = self._records.get(key)
            if entry is not None and entry[1] <= now:
                del self._records[key]  # expire on read, as Redis does lazily
                entry = None
            replies.append(None if entry is None else entry[0])
        return _decode(layout, entity_ids, replies)

    async def close(self) -> None:
        return None
