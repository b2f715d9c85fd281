"""Integration, the features service as a real process: after kill -9 and a restart it processes again (faust's
group session is the short one of KafkaSettings, not faust's 60 s), and when Redis loses the service's views (here:
every key of this test's prefix deleted, marker included) the service rebuilds them from features.log by itself.
The seconds measured are printed (run with -s); the deadlines are generous, the targets live in the report."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
from mlops.bus import Producer
from mlops.contracts import events_pb2
from mlops.online_store import SyncRedisOnlineStore
from mlops.settings import KafkaSettings, RedisSettings
from mlops.topics import EVENTS, topic_name
from test_features_faust import in_force, layout, spawn_features
from testkit import stop_session

RESUME_DEADLINE_S = 45.0
REBUILD_DEADLINE_S = 45.0


def _send(producer: Producer, kafka: KafkaSettings, entity: str, t: int, x: float) -> None:
    producer.send(topic_name(EVENTS, kafka), events_pb2.Event(
        event_id=f"{entity}-{t}", entity_id=entity, event_time_ms=t, ingest_time_ms=t, schema_version=1,
        values={"x0": x, "x1": 1.0, "x2": 2.0}), key=entity)
    producer.flush()


def _wait_as_of(store: SyncRedisOnlineStore, lay, entity: str, as_of_ms: int, deadline_s: float,  # type: ignore[no-untyped-def]
                log: Path) -> float:
    """Seconds until `entity`'s view is as of `as_of_ms` (fails after `deadline_s` with the service's log)."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        [got] = store.read_many(lay, [entity])
        if got is not None and got.as_of_ms == as_of_ms:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{entity} not as of {as_of_ms} after {deadline_s}s; features log:\n"
                         + log.read_text()[-3000:])


def test_killed_features_resumes_and_a_lost_store_is_rebuilt(
    kafka_settings: KafkaSettings, redis_settings: RedisSettings, tmp_path: Path
) -> None:
    revision = in_force(kafka_settings)
    lay = layout(revision, "entity_activity")
    store = SyncRedisOnlineStore(redis_settings)
    producer = Producer(kafka_settings, client_id="test-features-restart")
    log = tmp_path / "features.log"
    proc = spawn_features(kafka_settings, redis_settings, tmp_path)
    try:
        t1 = int(time.time() * 1000)
        _send(producer, kafka_settings, "a", t1, 1.0)
        _wait_as_of(store, lay, "a", t1, 120, log)  # the first start (topic creation, first join) is slower

        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        killed = time.monotonic()
        proc = spawn_features(kafka_settings, redis_settings, tmp_path)
        t2 = t1 + 1000
        _send(producer, kafka_settings, "a", t2, 2.0)
        _wait_as_of(store, lay, "a", t2, RESUME_DEADLINE_S, log)
        resumed_s = time.monotonic() - killed
        print(f"\nfeatures processing again {resumed_s:.1f}s after kill -9 and restart")

        # Redis lost the views (and the marker): the service notices and rebuilds them without a new event
        [before] = store.read_many(lay, ["a"])
        keys = store.client.keys(f"{redis_settings.key_prefix}:*")
        assert before is not None and keys, "the service wrote nothing under its prefix"
        store.client.delete(*keys)
        assert store.read_many(lay, ["a"]) == [None]
        rebuilt_s = _wait_as_of(store, lay, "a", t2, REBUILD_DEADLINE_S, log)
        print(f"online store rebuilt by the service {rebuilt_s:.1f}s after its keys were deleted")
        [after] = store.read_many(lay, ["a"])
        # the same trace (the rebuilt link names the update's publish span, the record's header)
        assert after is not None and after.traceparent.split("-")[1] == before.traceparent.split("-")[1]
        np.testing.assert_array_equal(list(after.values.values()), list(before.values.values()))  # NaN == NaN
    finally:
        stop_session(proc)
        store.close()
