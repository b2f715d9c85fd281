"""Integration: the faust app as a real process against Kafka and Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer as KConsumer
from confluent_kafka import TopicPartition
from mlops import contracts
from mlops.bus import Producer
from mlops.contracts import events_pb2
from mlops.online_store import SyncRedisOnlineStore
from mlops.schema import FEATURE_SET
from mlops.settings import KafkaSettings, RedisSettings
from mlops.topics import EVENTS, FEATURES_LOG, topic_name

from services.features.core import ReferenceAggregator

ROOT = Path(__file__).resolve().parents[2]


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


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def read_all(kafka: KafkaSettings, spec, expected: int, timeout: float) -> list:
    name = topic_name(spec, kafka)
    c = KConsumer(kafka.client_config() | {"group.id": f"r-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False})
    c.assign([TopicPartition(name, p, 0) for p in range(kafka.default_partitions)])
    out: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            out.extend(m for m in c.consume(500, 0.5) if m.error() is None)
    finally:
        c.close()
    return out


def test_faust_app_writes_redis_and_features_log(
    kafka_settings: KafkaSettings, redis_settings: RedisSettings, tmp_path: Path
) -> None:
    proc = spawn_features(kafka_settings, redis_settings, tmp_path)
    try:
        now = int(time.time() * 1000)
        ref = ReferenceAggregator(FEATURE_SET)
        expected = {}
        producer = Producer(kafka_settings, client_id="test-features")
        trace_id = uuid.uuid4().hex
        parent = f"00-{trace_id}-{'cd' * 8}-01"
        n = 60
        for i in range(n):
            entity = f"ent{i % 4}"
            t = now - 50_000 + i * 700
            values = {"x0": float(i % 10), "x1": 0.5 * (i % 7), "x2": 1.0}
            expected[entity] = (ref.update(entity, t, values), t)
            headers = {"traceparent": parent} if i == 0 else None
            producer.send(
                topic_name(EVENTS, kafka_settings),
                events_pb2.Event(
                    event_id=f"ev{i}",
                    entity_id=entity,
                    event_time_ms=t,
                    ingest_time_ms=now,
                    schema_version=1,
                    values=values,
                ),
                key=entity,
                headers=headers,
            )
        producer.flush()
        log = read_all(kafka_settings, FEATURES_LOG, n, timeout=90)
        assert len(log) == n, (tmp_path / "features.log").read_text()[-3000:]
        vectors = [contracts.decode(events_pb2.FeatureVector, m.value()) for m in log]
        assert {v.event_id for v in vectors} == {f"ev{i}" for i in range(n)}
        first = next(m for m, v in zip(log, vectors, strict=True) if v.event_id == "ev0")
        assert dict(first.headers())["traceparent"].decode().split("-")[1] == trace_id
        store = SyncRedisOnlineStore(redis_settings)
        got = store.read_many(sorted(expected))
        for feats, entity in zip(got, sorted(expected), strict=True):
            want, t = expected[entity]
            assert feats is not None and feats.as_of_ms == t and feats.feature_set_version == FEATURE_SET.version
            for name, value in want.items():
                assert abs(feats.values[name] - value) < 1e-4, (entity, name, feats.values, want)
        by_event = {v.event_id: v for v in vectors}
        assert by_event[f"ev{n - 1}"].as_of_ms == now - 50_000 + (n - 1) * 700
        assert 0 < store._redis.ttl(store.key("ent0")) <= FEATURE_SET.ttl_seconds
    finally:
        stop(proc)
    assert proc.returncode is not None
