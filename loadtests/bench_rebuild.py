"""The online store rebuilt from features.log: seconds for N entities (target: <= 30 s for 100k).

    .venv/bin/python loadtests/bench_rebuild.py [--entities 100000] [--updates 2]

Writes `--updates` FeatureVectors per entity of the SEA example's view to a fresh features.log (older first, so
the rebuild has to pick), then times `rebuild_online_store` into the local stack's Redis under a fresh key prefix:
the shipped defaults (batch 2000, absent views only) on an empty store first, then variants on the same log. Topics
and keys are deleted afterwards.
"""

from __future__ import annotations

import argparse
import atexit
import time
import uuid

from mlops import definitions as d
from mlops.bus import KafkaBus, Producer
from mlops.contracts import events_pb2
from mlops.online_rebuild import rebuild_online_store, rebuild_store
from mlops.online_store import SyncRedisOnlineStore, ViewLayout
from mlops.settings import RedisSettings
from mlops.topics import FEATURES_LOG, delete_topics, ensure_topics
from mlops_tools.examples import definitions_path
from mlops_tools.stack import Stack

VIEW = "entity_activity"


def _produce(bus: KafkaBus, layout: ViewLayout, entities: int, updates: int) -> float:
    producer = Producer(bus.settings, client_id="bench-rebuild")
    topic = bus.topic(FEATURES_LOG)
    now = int(time.time() * 1000)
    started = time.perf_counter()
    for u in range(updates):
        for i in range(entities):
            entity = f"ent-{i}"
            producer.send(topic, events_pb2.FeatureVector(
                entity_id=entity, feature_set=VIEW, feature_set_version=layout.version,
                as_of_ms=now - (updates - u) * 1000, values=dict.fromkeys(layout.columns, float(i + u)),
                event_id=f"{entity}-{u}"), key=entity)
    producer.flush(120)
    return time.perf_counter() - started


def _clear(store: SyncRedisOnlineStore, prefix: str) -> None:
    client = store.client
    batch: list[bytes] = []
    for key in client.scan_iter(f"{prefix}:*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            client.unlink(*batch)
            batch = []
    if batch:
        client.unlink(*batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--updates", type=int, default=2, help="FeatureVectors per entity in features.log")
    args = parser.parse_args()
    stack = Stack()
    stack.up()
    kafka = stack.kafka_settings().model_copy(update={"topic_prefix": f"bench{uuid.uuid4().hex[:6]}."})
    ensure_topics(kafka)
    atexit.register(delete_topics, kafka)  # leftover partitions slow the broker down
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    redis_settings: RedisSettings = stack.redis_settings().model_copy(update={"key_prefix": prefix})
    store = rebuild_store(redis_settings)  # what the command and the service use
    atexit.register(_clear, store, prefix)
    revision = d.plan(None, d.load(definitions_path("sea")), "bench").revision
    assert revision is not None
    layout = ViewLayout.of(revision.definitions, VIEW, revision.view_versions[VIEW])
    bus = KafkaBus(kafka)

    produce_s = _produce(bus, layout, args.entities, args.updates)
    print(f"features.log: {args.entities * args.updates} records ({args.entities} entities x {args.updates}, "
          f"{len(layout.columns)} columns) produced in {produce_s:.1f}s")
    print(f"{'variant':<34} {'seconds':>8} {'read s':>7} {'cpu s':>6} {'written':>8} {'kept':>7} {'views/s':>9}")
    rows = [("defaults (batch 2000), empty store", {}, True),
            ("batch 500, empty store", {"batch": 500}, True),
            ("batch 10000, empty store", {"batch": 10_000}, True),
            ("defaults, store already full", {}, False),
            ("--overwrite, store already full", {"overwrite": True}, False)]
    for name, options, empty in rows:
        if empty:
            _clear(store, prefix)
        cpu = time.process_time()  # this process's share: the figure to compare on a busy machine
        report = rebuild_online_store(bus, store, [revision], **options)  # type: ignore[arg-type]
        cpu = time.process_time() - cpu
        assert report.entities == args.entities, report
        rate = args.entities / report.seconds if report.seconds else float("inf")
        print(f"{name:<34} {report.seconds:>8.2f} {report.read_s:>7.2f} {cpu:>6.2f} {report.written:>8} "
              f"{report.kept:>7} "
              f"{rate:>9.0f}")
    [last] = store.read_many(layout, [f"ent-{args.entities - 1}"])
    assert last is not None and set(last.values.values()) == {float(args.entities - 1 + args.updates - 1)}
    store.close()


if __name__ == "__main__":
    main()
