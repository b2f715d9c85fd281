"""The online store rebuilt from features.log after a Redis loss (`mlops features rebuild`, and the features service
by itself when the marker key is gone).

features.log holds every view update the features service ever wrote to Redis (one FeatureVector per event and
view: `feature_set` is the view, `feature_set_version` its version). The rebuild reads it from the beginning (or
from records produced since a bound), keeps per (view, version, entity) the update with the newest `as_of_ms`
(later in the log wins a tie: the log is in processing order per entity), and writes those in pipelined batches of
one small Lua script per entity. Every version any definitions revision declared is rebuilt (readers fall back to
older versions); a record of a version no revision declared is counted and skipped.

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
from mlops.bus import Bus
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

__all__ = ["RebuildReport", "ensure_rebuilt", "layouts_of", "marker_key", "rebuild_online_store"]

log = logging.getLogger("mlops.online_rebuild")

# KEYS: record key, hash key. ARGV: record, ttl seconds, "1" to overwrite, then the hash's field/value pairs.
_WRITE_VIEW = """
if ARGV[3] == '1' then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
elseif not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  return 0
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""
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
    seconds: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


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
        events_pb2.FeatureVector, int, str]]:
    """(view, version, entity) → (newest update, produce time ms, traceparent), streaming features.log to its end
    as of now."""
    topic = bus.topic(FEATURES_LOG)
    reader = bus.reader([topic], client_id="mlops-online-rebuild", start="beginning")
    latest: dict[tuple[str, int, str], tuple[events_pb2.FeatureVector, int, str]] = {}
    try:
        marks = reader.watermarks([topic])
        position = {tp: low for tp, (low, _high) in marks.items()}
        while any(position[tp] < high for tp, (_low, high) in marks.items()):
            ends = {tp: min(position[tp] + READ_CHUNK, high) for tp, (_low, high) in marks.items()}
            for rec in reader.read_until(ends, timeout=60):
                report.records += 1
                produced = rec.timestamp_ms
                if produced and produced < since_ms:
                    continue
                try:
                    fv = contracts.decode(events_pb2.FeatureVector, rec.value, rec.where)
                except contracts.ContractError:
                    report.undecodable += 1
                    continue
                key = (fv.feature_set, fv.feature_set_version, fv.entity_id)
                seen = latest.get(key)
                if seen is None or fv.as_of_ms >= seen[0].as_of_ms:
                    latest[key] = (fv, produced, rec.header("traceparent") or "")
            position = ends
    finally:
        reader.close()
    return latest


def rebuild_online_store(bus: Bus, store: SyncRedisOnlineStore, revisions: Iterable[Revision], *,
                         since_ms: int = 0, overwrite: bool = False, batch: int = 2000,
                         now_ms: int | None = None) -> RebuildReport:
    """Write the newest view of every entity in features.log (produced at or after `since_ms`) to `store`; views
    present in the store are kept unless `overwrite`. Raises OnlineStoreUnavailable when Redis cannot be reached."""
    started = time.perf_counter()
    report = RebuildReport()
    layouts = layouts_of(revisions)
    latest = _latest(bus, since_ms, report)
    report.entities = len(latest)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    client = store.client
    script = client.register_script(_WRITE_VIEW)
    pipe = client.pipeline(transaction=False)
    queued = 0
    try:
        for (view, version, entity_id), (fv, produced, traceparent) in latest.items():
            layout = layouts.get((view, version))
            if layout is None:
                report.unknown_version += 1
                continue
            ttl_s = layout.ttl_s - (now_ms - produced) // 1000 if produced else layout.ttl_s
            if ttl_s <= 0:
                report.expired += 1
                continue
            values = dict(fv.values)  # a protobuf map answers 0.0 for a missing key: a plain dict raises
            update = ViewUpdate(layout, entity_id, values, fv.as_of_ms, traceparent)
            try:
                record, fields = pack(layout, values, fv.as_of_ms, traceparent), store.hash_fields(update)
            except (OnlineStoreError, KeyError):  # a column missing from the record: not this layout's update
                report.unwritable += 1
                continue
            script(keys=[store.vec_key(layout, entity_id), store.key(layout, entity_id)],
                   args=[record, ttl_s, "1" if overwrite else "0", *(x for kv in fields.items() for x in kv)],
                   client=pipe)
            queued += 1
            if queued >= batch:
                _flush(pipe, report)
                queued = 0
        _flush(pipe, report)
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise OnlineStoreUnavailable("rebuild", exc) from exc
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _flush(pipe: redis.client.Pipeline, report: RebuildReport) -> None:
    for done in pipe.execute():
        if done:
            report.written += 1
        else:
            report.kept += 1


def ensure_rebuilt(bus: Bus, settings: RedisSettings, *, revisions: Iterable[Revision] | None = None,
                   client_id: str = "mlops-online-rebuild") -> RebuildReport | None:
    """Rebuild the online store if its marker is gone (a new or emptied Redis), under a lock so one process does it;
    None when there was nothing to do (or another process is at it)."""
    store = SyncRedisOnlineStore(settings)
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
