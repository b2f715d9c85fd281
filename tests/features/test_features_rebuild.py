"""The online store rebuilt from features.log (features.log on a MemoryBus or the real broker, the store in the real
Redis under this test's key prefix): the newest update per (view, version, entity), views written meanwhile kept,
the marker, and `mlops features rebuild`."""

from __future__ import annotations

import json
import time

import pytest
from mlops import definitions as d
from mlops.bus import KafkaBus, MemoryBus, Producer
from mlops.contracts import events_pb2
from mlops.online_rebuild import ensure_rebuilt, marker_key, rebuild_online_store
from mlops.online_store import SyncRedisOnlineStore, ViewLayout
from mlops.settings import KafkaSettings, RedisSettings
from mlops.topics import FEATURES_LOG
from mlops_tools.cli import main as cli_main
from mlops_tools.examples import definitions_path

REVISION = d.plan(None, d.load(definitions_path("sea")), "tests").revision
assert REVISION is not None
VIEW = "entity_activity"
LAYOUT = ViewLayout.of(REVISION.definitions, VIEW, REVISION.view_versions[VIEW])


def _values(x: float) -> dict[str, float]:
    return dict.fromkeys(LAYOUT.columns, x)


def _log(bus: MemoryBus, entity: str, as_of_ms: int, x: float, *, version: int = LAYOUT.version,
         values: dict[str, float] | None = None) -> None:
    producer = bus.producer(client_id="test-features-log")
    producer.send(bus.topic(FEATURES_LOG), events_pb2.FeatureVector(
        entity_id=entity, feature_set=VIEW, feature_set_version=version, as_of_ms=as_of_ms,
        values=_values(x) if values is None else values, event_id=f"{entity}-{as_of_ms}"), key=entity)
    producer.flush()


@pytest.fixture
def store(redis_settings: RedisSettings):  # type: ignore[no-untyped-def]
    s = SyncRedisOnlineStore(redis_settings)
    yield s
    s.close()


def test_rebuild_writes_the_newest_update_of_each_entity(store: SyncRedisOnlineStore) -> None:
    bus = MemoryBus()
    now = int(time.time() * 1000)
    _log(bus, "e1", now - 3000, 1.0)
    _log(bus, "e1", now - 1000, 3.0)
    _log(bus, "e1", now - 2000, 2.0)  # late: an older as-of after the newest does not win
    _log(bus, "e2", now - 500, 5.0)
    _log(bus, "e3", now - 500, 7.0, version=99)  # a version no revision declares
    _log(bus, "e4", now - 500, 1.0, values={"not_a_column": 1.0})  # lacks the layout's columns
    junk = bus.producer(client_id="junk")
    junk.send(bus.topic(FEATURES_LOG), b"\xff\xfe not protobuf", key="e5")
    junk.flush()

    report = rebuild_online_store(bus, store, [REVISION])
    assert (report.records, report.entities, report.written) == (7, 4, 2), report
    assert (report.unknown_version, report.unwritable, report.undecodable, report.kept) == (1, 1, 1, 0), report
    e1, e2, e3 = store.read_many(LAYOUT, ["e1", "e2", "e3"])
    assert e1 is not None and e1.as_of_ms == now - 1000 and set(e1.values.values()) == {3.0}
    assert e2 is not None and e2.as_of_ms == now - 500 and set(e2.values.values()) == {5.0}
    assert e3 is None
    # the operator's hash is rebuilt too, with its TTL
    key = store.key(LAYOUT, "e1")
    assert store.client.hget(key, "as_of_ms") == str(now - 1000).encode()
    assert 0 < store.client.ttl(key) <= LAYOUT.ttl_s


def test_rebuild_keeps_views_written_meanwhile_unless_overwrite(store: SyncRedisOnlineStore) -> None:
    bus = MemoryBus()
    now = int(time.time() * 1000)
    _log(bus, "e1", now - 1000, 1.0)
    _log(bus, "e2", now - 1000, 2.0)
    store.write(LAYOUT, "e2", _values(9.0), as_of_ms=now)  # the running service was faster than the rebuild
    report = rebuild_online_store(bus, store, [REVISION])
    assert (report.written, report.kept) == (1, 1), report
    e1, e2 = store.read_many(LAYOUT, ["e1", "e2"])
    assert e1 is not None and set(e1.values.values()) == {1.0}
    assert e2 is not None and set(e2.values.values()) == {9.0} and e2.as_of_ms == now
    forced = rebuild_online_store(bus, store, [REVISION], overwrite=True)
    assert (forced.written, forced.kept) == (2, 0), forced
    [e2] = store.read_many(LAYOUT, ["e2"])
    assert e2 is not None and set(e2.values.values()) == {2.0}


def test_updates_past_their_ttl_or_before_since_are_not_written(store: SyncRedisOnlineStore) -> None:
    bus = MemoryBus()
    now = int(time.time() * 1000)
    _log(bus, "e1", now, 1.0)
    later = now + (LAYOUT.ttl_s + 60) * 1000  # as if the rebuild ran a TTL after the record was produced
    report = rebuild_online_store(bus, store, [REVISION], now_ms=later)
    assert (report.expired, report.written) == (1, 0), report
    report = rebuild_online_store(bus, store, [REVISION], since_ms=now + 60_000)
    assert (report.records, report.entities, report.written) == (1, 0, 0), report
    assert store.read_many(LAYOUT, ["e1"]) == [None]


def test_ensure_rebuilt_runs_when_the_marker_is_gone(redis_settings: RedisSettings,
                                                     store: SyncRedisOnlineStore) -> None:
    bus = MemoryBus()
    _log(bus, "e1", int(time.time() * 1000), 4.0)
    first = ensure_rebuilt(bus, redis_settings, revisions=[REVISION])
    assert first is not None and first.written == 1
    assert store.client.exists(marker_key(redis_settings.key_prefix))
    assert ensure_rebuilt(bus, redis_settings, revisions=[REVISION]) is None  # marked: nothing to do

    store.client.delete(*store.client.keys(f"{redis_settings.key_prefix}:*"))  # Redis lost everything
    assert store.read_many(LAYOUT, ["e1"]) == [None]
    again = ensure_rebuilt(bus, redis_settings, revisions=[REVISION])
    assert again is not None and again.written == 1
    [e1] = store.read_many(LAYOUT, ["e1"])
    assert e1 is not None and set(e1.values.values()) == {4.0}


def test_mlops_features_rebuild_on_the_real_broker(kafka_settings: KafkaSettings, redis_settings: RedisSettings,
                                                   store: SyncRedisOnlineStore, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    bus = KafkaBus(kafka_settings)
    now = int(time.time() * 1000)
    producer = Producer(kafka_settings, client_id="test-features-log")
    for i in range(50):
        for u in range(2):
            producer.send(bus.topic(FEATURES_LOG), events_pb2.FeatureVector(
                entity_id=f"e{i}", feature_set=VIEW, feature_set_version=LAYOUT.version, as_of_ms=now + u,
                values=_values(float(i + u)), event_id=f"e{i}-{u}"), key=f"e{i}")
    producer.flush()
    for name, value in {"MLOPS_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
                        "MLOPS_KAFKA_TOPIC_PREFIX": kafka_settings.topic_prefix,
                        "MLOPS_REDIS_URL": redis_settings.url,
                        "MLOPS_REDIS_KEY_PREFIX": redis_settings.key_prefix}.items():
        monkeypatch.setenv(name, value)
    assert cli_main(["features", "rebuild"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (report["records"], report["entities"], report["written"]) == (100, 50, 50), report
    got = store.read_many(LAYOUT, [f"e{i}" for i in range(50)])
    assert all(g is not None and set(g.values.values()) == {float(i + 1)} for i, g in enumerate(got)), got
    assert store.client.exists(marker_key(redis_settings.key_prefix))
