"""The online store rebuilt from features.log after a Redis loss (`mlops features rebuild`, and the features service
by itself when the marker key is gone).

features.log holds every view update the features service ever wrote to Redis (one FeatureVector per event and
view: `feature_set` is the view, `feature_set_version` its version). The rebuild reads it from the beginning (or
from records produced since a bound), keeps per (view, version, entity) the update with the newest `as_of_ms`
(later in the log wins a tie: the log is in processing order per entity), and writes those in pipelined batches of
calls of a small Lua script (many views per call). Every version any definitions revision declared is rebuilt
(readers fall back to older versions); a record of a version no revision declared is counted and skipped.

What a rebuild must not do is overwrite a newer view the running features service wrote meanwhile: the script
writes an entity's view only where its record key is absent (`overwrite` writes it regardless). A record past its
view's TTL (counted from when it was produced) is not written, others get what is left of it.

`{key_prefix}:online-meta:built` marks a store that has been (re)built: a Redis restarted without its data has no
marker, so `ensure_rebuilt` (the features service's timer) rebuilds it; `{key_prefix}:online-meta:rebuilding` is a
lock with a TTL, so several features processes rebuild once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import redis

from mlops import contracts
from mlops.bus import Bus, Record
from mlops.contracts import events_pb2
from mlops.definitions import Revision
from mlops.definitions.store import read_revisions
from mlops.online_store import (
    OnlineStoreError,
    OnlineStoreUnavailable,
    SyncRedisOnlineStore,
    ViewLayout,
    ViewUpdate,
    pack,
)
from mlops.settings import RedisSettings
from mlops.topics import FEATURES_LOG

__all__ = ["RebuildReport", "ensure_rebuilt", "layouts_of", "marker_key", "rebuild_online_store", "rebuild_store"]

log = logging.getLogger("mlops.online_rebuild")

# One call writes many views. KEYS: record key, hash key of each view. ARGV: "1" to overwrite, then per view: record,
# ttl seconds, n, and the hash's n field/value items. Returns how many views it wrote (absent ones, or all).
_WRITE_VIEWS = """
local overwrite, a, written = ARGV[1] == '1', 2, 0
for k = 1, #KEYS, 2 do
  local record, ttl, n = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  local ok
  if overwrite then
    ok = redis.call('SET', KEYS[k], record, 'EX', ttl)
  else
    ok = redis.call('SET', KEYS[k], record, 'NX', 'EX', ttl)
  end
  if ok then
    redis.call('DEL', KEYS[k + 1])
    redis.call('HSET', KEYS[k + 1], unpack(ARGV, a + 3, a + 2 + n))
    redis.call('EXPIRE', KEYS[k + 1], ttl)
    written = written + 1
  end
  a = a + 3 + n
end
return written
"""
VIEWS_PER_CALL = 100  # views per script call: one reply per call instead of per view (the client's cost)
REPLY_TIMEOUT_S = 30.0  # a pipelined batch of scripts answers in one reply: not a request's 1 s budget
READ_CHUNK = 50_000  # offsets per partition read at once: the log is streamed, not held whole
LOCK_TTL_S = 600


@dataclass
class RebuildReport:
    records: int = 0  # features.log records read
    entities: int = 0  # (view, version, entity) with a latest update
    written: int = 0  # views written
    kept: int = 0  # views already present (newer, written by the running service), left as they were
    expired: int = 0  # latest updates past their view's TTL
    unknown_version: int = 0  # records of a (view, version) no revision declares
    undecodable: int = 0
    unwritable: int = 0  # updates that lack a column of their layout
    read_s: float = 0.0  # reading features.log (the rest of `seconds` is writing)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def rebuild_store(settings: RedisSettings) -> SyncRedisOnlineStore:
    """A blocking store for a rebuild: the settings' Redis with a reply timeout long enough for a whole batch."""
    return SyncRedisOnlineStore(settings.model_copy(update={
        "socket_timeout_s": max(settings.socket_timeout_s, REPLY_TIMEOUT_S)}))


def marker_key(key_prefix: str) -> str:
    return f"{key_prefix}:online-meta:built"


def layouts_of(revisions: Iterable[Revision]) -> dict[tuple[str, int], ViewLayout]:
    """The layout of every (view, version) any of `revisions` declared."""
    out: dict[tuple[str, int], ViewLayout] = {}
    for revision in revisions:
        d = revision.definitions
        for view in d.feature_views:
            version = revision.view_versions[view.name]
            out[(view.name, version)] = ViewLayout.of(d, view, version)
    return out


def _latest(bus: Bus, since_ms: int, report: RebuildReport) -> dict[tuple[str, int, str], tuple[
        events_pb2.FeatureVector, Record]]:
    """(view, version, entity) → (newest update, its record), streaming features.log to its end as of now."""
    topic = bus.topic(FEATURES_LOG)
    reader = bus.reader([topic], client_id="mlops-online-rebuild", start="beginning")
    latest: dict[tuple[str, int, str], tuple[events_pb2.FeatureVector, Record]] = {}
    try:
        marks = reader.watermarks([topic])
        position = {tp: low for tp, (low, _high) in marks.items()}
        while any(position[tp] < high for tp, (_low, high) in marks.items()):
            ends = {tp: min(position[tp] + READ_CHUNK, high) for tp, (_low, high) in marks.items()}
            for rec in reader.read_until(ends, timeout=60):
                report.records += 1
                if since_ms and rec.timestamp_ms < since_ms:
                    continue
                try:
                    fv = rec.decode(events_pb2.FeatureVector)  # names the record only on failure
                except contracts.ContractError:
                    report.undecodable += 1
                    continue
                key = (fv.feature_set, fv.feature_set_version, fv.entity_id)
                seen = latest.get(key)
                if seen is None or fv.as_of_ms >= seen[0].as_of_ms:
                    latest[key] = (fv, rec)
            position = ends
    finally:
        reader.close()
    return latest


class _Writer:
    """Queues views for the script, VIEWS_PER_CALL per call, `batch` per pipelined round trip."""

    def __init__(self, store: SyncRedisOnlineStore, overwrite: bool, batch: int, report: RebuildReport):
        self._store, self._batch, self._report = store, batch, report
        self._script = store.client.register_script(_WRITE_VIEWS)
        self._pipe = store.client.pipeline(transaction=False)
        self._overwrite = "1" if overwrite else "0"
        self._keys: list[str] = []
        self._args: list[object] = [self._overwrite]
        self._sent = self._queued = 0

    def add(self, update: ViewUpdate, record: bytes, fields: dict[str, str], ttl_s: int) -> None:
        layout, entity_id = update.layout, update.entity_id
        self._keys += (self._store.vec_key(layout, entity_id), self._store.key(layout, entity_id))
        self._args += (record, ttl_s, 2 * len(fields))
        for item in fields.items():
            self._args += item
        if len(self._keys) >= 2 * VIEWS_PER_CALL:
            self._call()
        if self._queued >= self._batch:
            self.flush()

    def _call(self) -> None:
        if self._keys:
            self._script(keys=self._keys, args=self._args, client=self._pipe)
            self._sent += len(self._keys) // 2
            self._queued += len(self._keys) // 2
            self._keys, self._args = [], [self._overwrite]

    def flush(self) -> None:
        self._call()
        if self._queued:
            written = sum(self._pipe.execute())
            self._report.written += written
            self._report.kept += self._queued - written
            self._queued = 0


def rebuild_online_store(bus: Bus, store: SyncRedisOnlineStore, revisions: Iterable[Revision], *,
                         since_ms: int = 0, overwrite: bool = False, batch: int = 2000,
                         now_ms: int | None = None) -> RebuildReport:
    """Write the newest view of every entity in features.log (produced at or after `since_ms`) to `store`; views
    present in the store are kept unless `overwrite`. Raises OnlineStoreUnavailable when Redis cannot be reached."""
    started = time.perf_counter()
    report = RebuildReport()
    layouts = layouts_of(revisions)
    latest = _latest(bus, since_ms, report)
    report.read_s = round(time.perf_counter() - started, 3)
    report.entities = len(latest)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    try:
        writer = _Writer(store, overwrite, batch, report)
        for (view, version, entity_id), (fv, rec) in latest.items():
            layout = layouts.get((view, version))
            if layout is None:
                report.unknown_version += 1
                continue
            produced = rec.timestamp_ms
            ttl_s = layout.ttl_s - (now_ms - produced) // 1000 if produced else layout.ttl_s
            if ttl_s <= 0:
                report.expired += 1
                continue
            values = dict(fv.values)  # a protobuf map answers 0.0 for a missing key: a plain dict raises
            traceparent = rec.header("traceparent") or ""
            update = ViewUpdate(layout, entity_id, values, fv.as_of_ms, traceparent)
            try:
                record, fields = pack(layout, values, fv.as_of_ms, traceparent), store.hash_fields(update)
            except (OnlineStoreError, KeyError):  # a column missing from the record: not this layout's update
                report.unwritable += 1
                continue
            writer.add(update, record, fields, ttl_s)
        writer.flush()
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise OnlineStoreUnavailable("rebuild", exc) from exc
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def ensure_rebuilt(bus: Bus, settings: RedisSettings, *, revisions: Iterable[Revision] | None = None,
                   client_id: str = "mlops-online-rebuild") -> RebuildReport | None:
    """Rebuild the online store if its marker is gone (a new or emptied Redis), under a lock so one process does it;
    None when there was nothing to do (or another process is at it)."""
    store = rebuild_store(settings)
    try:
        client = store.client
        marker, lock = marker_key(settings.key_prefix), f"{settings.key_prefix}:online-meta:rebuilding"
        try:
            if client.exists(marker) or not client.set(lock, client_id, nx=True, ex=LOCK_TTL_S):
                return None
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise OnlineStoreUnavailable("rebuild check", exc) from exc
        try:
            if revisions is None:
                revisions = read_revisions(bus, client_id=client_id)
            report = rebuild_online_store(bus, store, revisions)
            run_id = _run_id(client)
            client.set(marker, json.dumps({"run_id": run_id, "at_ms": int(time.time() * 1000)} | report.as_dict()))
        finally:
            with contextlib.suppress(redis.RedisError, OSError):  # a lost Redis lost the lock too
                client.delete(lock)
        log.info("online store rebuilt from features.log", extra={"fields": report.as_dict()})
        return report
    finally:
        store.close()


def _run_id(client: redis.Redis) -> str:
    info: Mapping[str, object] = client.info("server")  # type: ignore[assignment]
    return str(info.get("run_id", ""))
