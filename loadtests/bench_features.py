"""Features benchmarks: online lookup latency (ours vs raw redis GET/MGET, same run) and event → Redis freshness.

    .venv/bin/python loadtests/bench_features.py [--events 2000 --rate 200]

Targets: lookup p99 <= 1 ms for 1 and 64 entities; freshness p99 <= 250 ms. Starts one features process (faust)
on a fresh topic prefix and stops it at the end. Freshness is the time from producing an event to Redis announcing
(keyspace notification) the write of a view that includes it, at a steady --rate; one process on this 2-core
machine (shared with the broker and this producer) keeps up to roughly 300-500 events/s, so a higher --rate
measures queueing, not freshness: scale out with partitions and processes.
"""

from __future__ import annotations

import argparse
import atexit
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "libs"), str(ROOT / "tools")]

import numpy as np  # noqa: E402
import redis  # noqa: E402
from mlops import definitions as d  # noqa: E402
from mlops.bus import Producer  # noqa: E402
from mlops.contracts import events_pb2  # noqa: E402
from mlops.online_store import SyncRedisOnlineStore, ViewLayout, pack  # noqa: E402
from mlops.settings import KafkaSettings, RedisSettings  # noqa: E402
from mlops.topics import EVENTS, delete_topics, ensure_topics, topic_name  # noqa: E402
from mlops_tools.cli.services_cmd import start_service  # noqa: E402
from mlops_tools.examples import apply_definitions, definitions_path  # noqa: E402

SEA = d.load(definitions_path("sea"))
LAYOUT = ViewLayout.of(SEA, "entity_activity", 1)  # the version of the first revision


def pct(samples: list[float]) -> tuple[float, float]:
    a = np.array(samples) * 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def timed(fn, n: int) -> tuple[float, float]:
    for _ in range(300):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return pct(out)


def lookups(redis_settings: RedisSettings, n: int) -> list[tuple[str, float, float]]:
    store = SyncRedisOnlineStore(redis_settings)
    raw = redis.Redis.from_url(redis_settings.url)
    ids = [f"look{i}" for i in range(64)]
    packed_keys = [f"{redis_settings.key_prefix}:raw:{e}" for e in ids]
    for e, k in zip(ids, packed_keys, strict=True):
        store.write(LAYOUT, e, dict.fromkeys(LAYOUT.columns, 1.0), 1)
        raw.set(k, pack(LAYOUT, dict.fromkeys(LAYOUT.columns, 1.0), 1, "0" * 55), ex=600)  # same size
    rows = [
        ("raw redis GET, 1 key (baseline)", *timed(lambda: raw.get(packed_keys[0]), n)),
        ("SyncRedisOnlineStore.read_many, 1 entity", *timed(lambda: store.read_many(LAYOUT, ids[:1]), n)),
        ("raw redis MGET, 64 keys (baseline)", *timed(lambda: raw.mget(packed_keys), n)),
        ("SyncRedisOnlineStore.read_many, 64 entities", *timed(lambda: store.read_many(LAYOUT, ids), n)),
    ]

    def hgetall64() -> None:
        pipe = raw.pipeline(transaction=False)
        for e in ids:
            pipe.hgetall(store.key(LAYOUT, e))
        pipe.execute()

    rows.append(("(rejected layout) pipelined HGETALL x64", *timed(hgetall64, n)))
    for k in raw.scan_iter(f"{redis_settings.key_prefix}:*"):
        raw.delete(k)
    return rows


def freshness(kafka: KafkaSettings, redis_settings: RedisSettings, events: int, rate: float) -> tuple:
    tmp = Path(tempfile.mkdtemp(prefix="bench-features-"))
    # the demo's definitions as revision 1 (features computes only what is declared)
    revision = apply_definitions(kafka, definitions_path("sea"), applied_by="bench")
    assert revision is not None and revision.view_versions["entity_activity"] == LAYOUT.version
    proc, _ = start_service("features", {
        "MLOPS_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "MLOPS_REDIS_KEY_PREFIX": redis_settings.key_prefix,
        "MLOPS_FEATURES_APP_ID": f"{kafka.topic_prefix}features",
        "MLOPS_FEATURES_DATA_DIR": str(tmp),
        "MLOPS_TELEMETRY_METRICS_PORT": "0",
        "MLOPS_TELEMETRY_LOG_FORMAT": "text",
        "PYTHONPATH": f"{ROOT}:{ROOT / 'libs'}",
    }, run_dir=tmp)  # its log: tmp/logs/svc-features.log
    store = SyncRedisOnlineStore(redis_settings)
    producer = Producer(kafka, client_id="bench-features")
    topic = topic_name(EVENTS, kafka)
    entities = [f"f{i}" for i in range(32)]
    sent: dict[tuple[str, int], float] = {}
    seen: dict[tuple[str, int], float] = {}
    done = threading.Event()

    # Redis keyspace notifications tell when each view is written; a subscriber sleeps in recv until then, so the
    # measurement takes no CPU from the service (a 1 kHz polling reader once did, and inflated p99 tenfold)
    raw = redis.Redis.from_url(redis_settings.url)
    old_notify = raw.config_get("notify-keyspace-events")["notify-keyspace-events"]
    raw.config_set("notify-keyspace-events", "Kh")
    pubsub = raw.pubsub(ignore_subscribe_messages=True)
    db = raw.connection_pool.connection_kwargs.get("db", 0)
    pubsub.psubscribe(f"__keyspace@{db}__:{store.key(LAYOUT, '')}*")
    by_entity: dict[str, list[int]] = {e: [] for e in entities}

    def watch() -> None:  # every sent (entity, t) with t <= the view's as_of_ms is visible from now on
        while not done.is_set():
            msg = pubsub.get_message(timeout=0.05)
            if msg is None:
                continue
            now = time.perf_counter()
            entity = msg["channel"].decode().rsplit(":", 1)[-1]
            view = store.read_many(LAYOUT, [entity])[0]
            if view is None or entity not in by_entity:
                continue
            pending = by_entity[entity]
            while pending and pending[0] <= view.as_of_ms:
                seen.setdefault((entity, pending.pop(0)), now)

    try:
        # warm-up until the app is assigned and writes (not measured)
        t0 = int(time.time() * 1000)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            producer.send(
                topic,
                events_pb2.Event(
                    event_id="warm",
                    entity_id="warm",
                    event_time_ms=t0,
                    ingest_time_ms=t0,
                    schema_version=1,
                    values={"x0": 1, "x1": 1, "x2": 1},
                ),
                key="warm",
            )
            producer.flush()
            if store.read_many(LAYOUT, ["warm"])[0] is not None:
                break
            time.sleep(0.5)
        poller = threading.Thread(target=watch, daemon=True)
        poller.start()
        interval = 1.0 / rate
        start = time.perf_counter()
        base = int(time.time() * 1000)
        for i in range(events):
            target = start + i * interval
            while time.perf_counter() < target:
                time.sleep(min(0.0005, max(0.0, target - time.perf_counter())))
            e = entities[i % len(entities)]
            t = base + i
            by_entity[e].append(t)
            sent[(e, t)] = time.perf_counter()
            producer.send(
                topic,
                events_pb2.Event(
                    event_id=f"b{i}",
                    entity_id=e,
                    event_time_ms=t,
                    ingest_time_ms=int(time.time() * 1000),
                    schema_version=1,
                    values={"x0": 1.0, "x1": 2.0, "x2": 3.0},
                ),
                key=e,
            )
            producer.poll(0)
        producer.flush()
        wait_until = time.monotonic() + 10
        while len(seen.keys() & sent.keys()) < len(sent) and time.monotonic() < wait_until:
            time.sleep(0.05)
        done.set()
        poller.join(5)
    finally:
        pubsub.close()
        raw.config_set("notify-keyspace-events", old_notify)
        proc.stop(timeout=30)
    lat = [seen[k] - sent[k] for k in sent if k in seen]
    return len(sent), len(lat), *pct(lat)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--lookups", type=int, default=5000)
    args = ap.parse_args()
    rs = RedisSettings(key_prefix=f"bench{uuid.uuid4().hex[:6]}")
    rows = lookups(rs, args.lookups)
    print(f"{'online lookup':44} {'p50 ms':>8} {'p99 ms':>8}")
    for name, p50, p99 in rows:
        print(f"{name:44} {p50:8.3f} {p99:8.3f}")
    print(
        f"ratio p99 ours/raw: 1 entity {rows[1][2] / rows[0][2]:.2f}x, 64 entities {rows[3][2] / rows[2][2]:.2f}x "
        f"(target: ours p99 <= 1 ms)"
    )
    kafka = KafkaSettings(topic_prefix=f"benchf{uuid.uuid4().hex[:6]}.")
    ensure_topics(kafka)
    atexit.register(delete_topics, kafka)  # leftover partitions slow the broker down
    sent, measured, p50, p99 = freshness(kafka, rs, args.events, args.rate)
    print(f"\nevent -> Redis freshness ({args.rate:.0f} ev/s, {sent} events, {measured} seen via keyspace events)")
    print(
        f"{'produce to events -> visible in Redis':44} {p50:8.1f} {p99:8.1f}   ms p50/p99 (target p99 <= 250 ms)"
    )


if __name__ == "__main__":
    main()
