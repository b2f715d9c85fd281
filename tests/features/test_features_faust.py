"""Integration: the faust app as a real process against Kafka and Redis, serving the definitions in force — the
demo's SEA view from events in today's format, then the delivery example's view applied while the app runs."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from features_oracle import RawEvent, delivery_online, newest_time, sea_online
from mlops import definitions as d
from mlops.bus import KafkaBus, Producer, Reader
from mlops.contracts import events_pb2
from mlops.definitions.store import read_revisions
from mlops.online_store import SyncRedisOnlineStore, ViewLayout
from mlops.settings import KafkaSettings, RedisSettings
from mlops.topics import EVENTS, FEATURES_LOG, topic_name
from mlops_tools.examples import apply_definitions, definitions_path
from testkit import committed, end_offsets, stop_session, wait_until

from services.features.core import Event

ROOT = Path(__file__).resolve().parents[2]


def in_force(kafka: KafkaSettings) -> d.Revision:
    """The revision in force on this test's topics (the fixture applied the SEA example)."""
    revision = d.latest(read_revisions(KafkaBus(kafka), client_id="test-features-defs", timeout=10))
    assert revision is not None and revision.definitions.feature_views[0].name == "entity_activity"
    return revision


def spawn_features(kafka: KafkaSettings, redis: RedisSettings, tmp: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "MLOPS_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "MLOPS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MLOPS_REDIS_URL": redis.url,
        "MLOPS_REDIS_KEY_PREFIX": redis.key_prefix,
        "MLOPS_FEATURES_APP_ID": f"{kafka.topic_prefix}features",
        "MLOPS_FEATURES_DATA_DIR": str(tmp / "faust"),
        "MLOPS_TELEMETRY_METRICS_PORT": "0",
        "MLOPS_TELEMETRY_LOG_FORMAT": "text",
        "PYTHONPATH": f"{ROOT}:{ROOT / 'libs'}",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "services.features"],
        cwd=ROOT,
        env=env,
        stdout=(tmp / "features.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )



def read_log(reader: Reader, expected: int, timeout: float, prefix: str = "") -> list[events_pb2.FeatureVector]:
    """features.log records until `expected` of events whose id starts with `prefix` were read (or `timeout`)."""
    out: list[events_pb2.FeatureVector] = []
    deadline = time.monotonic() + timeout
    while sum(v.event_id.startswith(prefix) for v in out) < expected and time.monotonic() < deadline:
        out.extend(m.decode(events_pb2.FeatureVector) for m in reader.consume(500, 0.5))
    return out


def layout(revision: d.Revision, view: str) -> ViewLayout:
    return ViewLayout.of(revision.definitions, view, revision.view_versions[view])


def check_online(store: SyncRedisOnlineStore, revision: d.Revision, view: str, raw: dict[str, list[RawEvent]],
                 expected: Callable[[list[RawEvent]], dict[str, float]]) -> None:
    """The online view of each entity in `raw` is what the independent oracle computes from its raw events. A batch's
    features.log records and its Redis write go out side by side (the write may wait out a slow Redis), so the
    views are awaited until each one is as of its entity's newest event."""
    entities = sorted(raw)

    def current() -> list:  # type: ignore[type-arg]
        return store.read_many(layout(revision, view), entities)

    wait_until(lambda: all(f is not None and f.as_of_ms == newest_time(raw[e])
                           for f, e in zip(current(), entities, strict=True)), timeout=60)
    got = current()
    for feats, entity in zip(got, entities, strict=True):
        want = expected(raw[entity])
        assert feats is not None and feats.as_of_ms == newest_time(raw[entity]), (entity, feats)
        assert feats.view_version == revision.view_versions[view]
        assert set(want) == set(feats.values), (set(want), set(feats.values))
        for name, value in want.items():
            assert math.isclose(feats.values[name], value, rel_tol=1e-5, abs_tol=1e-4), (entity, name, feats.values,
                                                                                          want)


def test_faust_app_writes_redis_and_features_log(
    kafka_settings: KafkaSettings, redis_settings: RedisSettings, tmp_path: Path
) -> None:
    revision = in_force(kafka_settings)
    proc = spawn_features(kafka_settings, redis_settings, tmp_path)
    reader = KafkaBus(kafka_settings).reader([topic_name(FEATURES_LOG, kafka_settings)], client_id="test-read")
    try:
        now = int(time.time() * 1000)
        raw: dict[str, list[RawEvent]] = defaultdict(list)
        producer = Producer(kafka_settings, client_id="test-features")
        trace_id = uuid.uuid4().hex
        parent = f"00-{trace_id}-{'cd' * 8}-01"
        n = 60
        for i in range(n):
            entity = f"ent{i % 4}"
            t = now - 50_000 + i * 700 - (3_000 if i % 9 == 8 else 0)  # some late events
            values = {"x0": float(i % 10), "x1": 0.5 * (i % 7), "x2": 1.0}
            raw[entity].append(RawEvent(t, values))
            producer.send(  # no source_name: today's records, of the only declared source
                topic_name(EVENTS, kafka_settings),
                events_pb2.Event(event_id=f"ev{i}", entity_id=entity, event_time_ms=t, ingest_time_ms=now,
                                 schema_version=1, values=values),
                key=entity, headers={"traceparent": parent} if i == 0 else None,
            )
        producer.flush()
        vectors = read_log(reader, n, timeout=90)
        assert len(vectors) == n, (tmp_path / "features.log").read_text()[-3000:]
        assert {v.event_id for v in vectors} == {f"ev{i}" for i in range(n)}
        assert {(v.feature_set, v.feature_set_version) for v in vectors} == {
            ("entity_activity", revision.view_versions["entity_activity"])}
        store = SyncRedisOnlineStore(redis_settings)
        assert len(raw) == 4
        check_online(store, revision, "entity_activity", raw, sea_online)
        sea_layout = layout(revision, "entity_activity")
        assert 0 < store._redis.ttl(store.key(sea_layout, "ent0")) <= sea_layout.ttl_s
    finally:
        reader.close()
        stop_session(proc)
    assert proc.returncode == 0, (tmp_path / "features.log").read_text()[-3000:]  # a clean stop on SIGTERM
    # every event it handled is committed on the broker by then, as the broker reports the group (and none beyond
    # the end: HandledOffsetsConsumer commits only what was handled)
    group, events = f"{kafka_settings.topic_prefix}features", topic_name(EVENTS, kafka_settings)
    assert committed(kafka_settings, group, events) == end_offsets(kafka_settings, events)


def test_a_second_domain_applied_while_running(
    kafka_settings: KafkaSettings, redis_settings: RedisSettings, tmp_path: Path
) -> None:
    """The delivery example applied beside SEA while the app runs: its order events (categorical fields, sliding,
    tumbling and hopping windows, one_hot) fold into `customer_orders` without a restart."""
    in_force(kafka_settings)
    proc = spawn_features(kafka_settings, redis_settings, tmp_path)
    reader = KafkaBus(kafka_settings).reader([topic_name(FEATURES_LOG, kafka_settings)], client_id="test-read")
    producer = Producer(kafka_settings, client_id="test-features")
    events_topic = topic_name(EVENTS, kafka_settings)

    def send(ev: Event) -> None:
        producer.send(events_topic, events_pb2.Event(
            event_id=ev.event_id, entity_id=ev.entity_id, event_time_ms=ev.event_time_ms, ingest_time_ms=0,
            schema_version=1, values=ev.values, categories=ev.categories, source_name=ev.source_name),
            key=ev.entity_id)
        producer.flush()

    def until_folded(probe: Event, view: str) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            send(probe)
            if any(v.feature_set == view for v in read_log(reader, 1, timeout=2)):
                return
        raise AssertionError((tmp_path / "features.log").read_text()[-3000:])

    try:
        now = int(time.time() * 1000)
        until_folded(Event("sea", "sea_events", "e", now, 0, {"x0": 1.0, "x1": 1.0, "x2": 1.0}), "entity_activity")
        # the app is running SEA's revision: now apply the second, as `mlops apply` would
        revision = apply_definitions(kafka_settings, definitions_path("delivery"), applied_by="test")
        assert {s.name for s in revision.definitions.sources} == {"sea_events", "orders"}
        probe = Event("probe", "orders", "probe", now, 0, {"amount": 1.0, "items": 1, "express": 0}, {})
        until_folded(probe, "customer_orders")  # probes before the app follows the new revision are skipped
        raw: dict[str, list[RawEvent]] = defaultdict(list)
        channels = ["web", "app", "store", "__other__"]
        n = 40
        for i in range(n):
            customer = f"c{i % 3}"
            t = now + i * 90_000 - (200_000 if i % 7 == 6 else 0)  # an hour of orders, some late
            values = {"amount": 5.0 + 3 * i, "items": float(1 + i % 4), "express": float(i % 2)}
            categories = {"channel": channels[i % 4]} | ({"payment": ["card", "cash"][i % 2]} if i % 3 else {})
            ev = Event(f"o{i}", "orders", customer, t, 0, values, categories)
            raw[customer].append(RawEvent(t, values, categories))
            send(ev)
        vectors = read_log(reader, n, timeout=90, prefix="o")  # probes may still be arriving: count the orders
        orders = [v for v in vectors if v.feature_set == "customer_orders" and v.event_id.startswith("o")]
        assert len({v.event_id for v in orders}) == n, (tmp_path / "features.log").read_text()[-3000:]
        check_online(SyncRedisOnlineStore(redis_settings), revision, "customer_orders", raw, delivery_online)
    finally:
        reader.close()
        stop_session(proc)
