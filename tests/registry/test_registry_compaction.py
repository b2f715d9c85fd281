"""Integration: registry.log survives a REAL compaction by the broker's log cleaner. A history with superseded
version states (register, retire, roll back, re-promote) is written to the test's registry.log, the topic is made
to compact at once (small segments, no dirty-ratio threshold), and once the cleaner has removed every superseded
record — seen by reading the topic back — the registry rebuilt from what is left is the registry that wrote it:
every version's status, the rollback order and the whole audit trail."""

from __future__ import annotations

from collections import Counter

from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
from mlops.bus import KafkaBus, Producer
from mlops.settings import KafkaSettings
from mlops.topics import REGISTRY_LOG, topic_name
from test_registry_core import World, cand, holdout, snapshot
from testkit import read_topic, wait_until

from services.registry.edge.eventlog import replay

COMPACT_NOW = {  # compact as soon as a segment closes
    "segment.ms": "200",
    "min.cleanable.dirty.ratio": "0.01",
    "min.compaction.lag.ms": "0",
    "delete.retention.ms": "0",
}


def _compact_now(kafka: KafkaSettings, topic: str) -> None:
    admin = AdminClient(kafka.client_config())
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in COMPACT_NOW.items()])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)
    config = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
    [described] = [f.result(30) for f in config.values()]
    assert described["cleanup.policy"].value == "compact" and described["segment.ms"].value == "200"


def test_registry_log_rebuilds_the_same_registry_after_the_broker_compacted_it(kafka_settings, onnx_model_factory):  # type: ignore[no-untyped-def]
    models = {"t7": onnx_model_factory(7.0), "t9_5": onnx_model_factory(9.5), "t9_5b": onnx_model_factory(9.5, seed=1)}
    w = World(models)
    w.registry.register(cand(models["t7"]), holdout(7.0))
    w.registry.register(cand(models["t9_5"]), holdout(9.5))
    w.registry.register(cand(models["t9_5b"]), holdout(9.5, seed=9))
    w.registry.register(cand(models["t7"], name="other"), holdout(7.0))
    rolled_back = w.registry.state.champion("sea").version
    w.registry.rollback("sea", "alice", "regression")
    w.registry.promote("sea", rolled_back, "bob", "re-promote")
    expected = snapshot(w.registry)
    written = Counter(key for key, _ in w.log)
    superseded = sum(n - 1 for n in written.values())
    assert superseded >= 4, written  # the history really overwrites version states

    topic = topic_name(REGISTRY_LOG, kafka_settings)
    _compact_now(kafka_settings, topic)
    producer = Producer(kafka_settings, client_id="test-registry-log")
    for key, message in w.log:
        producer.send(topic, message, key=key)
    producer.flush()

    def cleaned() -> bool:
        # segments close on the next write after segment.ms: keep writing (tombstones, which a rebuild skips and the
        # cleaner removes) until the cleaner has left one record per key the registry wrote
        producer.send(topic, None, key="roll/segment")
        producer.flush()
        keys = Counter(r.key.decode() for r in read_topic(kafka_settings, topic) if r.value is not None)
        return keys == Counter(set(written))

    wait_until(cleaned, timeout=240, interval=1.0, message="the log cleaner never compacted registry.log")
    left = [r for r in read_topic(kafka_settings, topic) if r.value is not None]
    assert len(left) == len(written) == len(w.log) - superseded
    assert left[-1].offset >= len(w.log) - 1  # offsets are kept: the gaps are where superseded records were

    state, applied = replay(KafkaBus(kafka_settings), timeout=60)
    assert applied == len(left)
    rebuilt = w.make(state)
    assert snapshot(rebuilt) == expected  # every status, the rollback order and the whole audit trail
    assert rebuilt.state.champion("sea").version == rolled_back and rebuilt.state.next_version("sea") == "4"
    # and the rebuilt registry goes on: rolling back walks the same history the writer had
    promo, _ = rebuilt.rollback("sea", "carol", "after the rebuild")
    assert promo.previous_version == rolled_back
    assert promo.version == w.registry.rollback("sea", "carol", "same")[0].version
