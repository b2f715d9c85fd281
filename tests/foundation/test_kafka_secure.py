"""Integration: every kind of Kafka client of the platform over SASL_SSL (SCRAM-SHA-512 + mutual TLS) against a
real broker started by `mlops stack up --secure`'s own code (the session's `secure_stack`, tests/conftest.py; the
shared stack is not touched; its Redis holds the online views).

Round trips: the admin client (topics), a producer, a group consumer, a reader, the broker's Java tools, and two
services as real processes — ingest (confluent) and features (faust/aiokafka) — raw.events → events →
features.log. Refusals: a wrong password, no client certificate, an unknown CA — each a BusError saying so. The
passwords appear in no log: not the services', not the broker's, not the CLI's output.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlops import definitions as d
from mlops.bus import BusError, Consumer, KafkaBus, Producer, Reader, wait_for_broker
from mlops.contracts import events_pb2
from mlops.definitions.store import declared_topics, publish
from mlops.settings import KafkaSettings, RedisSettings
from mlops.topics import EVENTS, FEATURES_LOG, RAW_EVENTS, delete_topics, ensure_topics, topic_name
from mlops_tools.examples import definitions_path
from mlops_tools.stack import Stack
from mlops_tools.stack.secure import BROKER_USER, CLIENT_USER, CONTROLLER_USER
from pydantic import SecretStr
from testkit import stop_session, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def secure_kafka(secure_stack: Stack) -> Iterator[KafkaSettings]:
    """The secure stack's client settings with a fresh topic prefix, its topics made and SEA's definitions applied
    (as the shared fixtures do for the plaintext stack)."""
    settings = secure_stack.kafka_settings().model_copy(update={"topic_prefix": f"s{uuid.uuid4().hex[:8]}."})
    revision = d.plan(None, d.load(definitions_path("sea")), "tests").revision
    assert revision is not None
    ensure_topics(settings)
    ensure_topics(settings, declared_topics(revision.definitions))
    publish(KafkaBus(settings), revision, client_id="tests-definitions")
    yield settings
    delete_topics(settings)


def passwords(stack: Stack) -> list[str]:
    secure = stack.secure_material
    assert secure is not None
    return [secure.password(user) for user in (CLIENT_USER, BROKER_USER, CONTROLLER_USER)]


def test_clients_round_trip_over_sasl_ssl(secure_stack: Stack, secure_kafka: KafkaSettings) -> None:
    assert secure_kafka.security_protocol == "SASL_SSL" and secure_kafka.sasl_mechanism == "SCRAM-SHA-512"
    assert secure_kafka.ssl_cert_file is not None and secure_kafka.sasl_password_file is not None
    topic = topic_name(EVENTS, secure_kafka)
    producer = Producer(secure_kafka, client_id="secure-test")
    for i in range(20):
        producer.send(topic, f"v{i}".encode(), key=f"k{i}")
    producer.flush(30)

    consumer = Consumer(secure_kafka, group_id=f"{secure_kafka.topic_prefix}g", topics=[topic], client_id="c")
    reader = Reader(secure_kafka, [topic], client_id="r")
    try:
        got: list[bytes] = []
        wait_until(lambda: got.extend(r.value for r in consumer.consume(100, 0.5)) or len(got) >= 20, timeout=60)
        assert sorted(got) == sorted(f"v{i}".encode() for i in range(20))
        assert sorted(r.value for r in reader.read_to_end(30)) == sorted(got)
    finally:
        consumer.close()
        reader.close()
    # the broker's own tools, with the client.properties the stack wrote
    listed = secure_stack.kafka_tool("org.apache.kafka.tools.TopicCommand", "--list")
    assert topic in listed.split()


@pytest.mark.parametrize("change, says", [
    ({"sasl_password_file": None, "sasl_password": SecretStr("not-the-password")}, "invalid credentials"),
    ({"ssl_cert_file": None, "ssl_key_file": None}, "certificate"),  # mutual TLS: no client certificate
    ({"ssl_ca_file": None}, "certificate verify failed"),  # a broker certificate of no CA we trust
])
def test_refused_clients_get_a_clear_error(secure_stack: Stack, change: dict[str, object], says: str,
                                           caplog: pytest.LogCaptureFixture) -> None:
    bad = secure_stack.kafka_settings().model_copy(update=change)
    with pytest.raises(BusError, match=f"refused SASL user 'mlops'.*{says}"):
        wait_for_broker(bad, timeout=60)
    producer = Producer(bad, client_id="refused", extra={"message.timeout.ms": 5000})
    producer.send("anything", b"x")
    with pytest.raises(BusError, match="refused SASL user 'mlops'"):
        producer.flush(60)
    # the queued record expires 5 s after it was sent; until its delivery report is served the client holds on
    # (and retries the broker for the rest of the session)
    assert wait_until(lambda: producer.poll(0.2) >= 0 and len(producer) == 0, timeout=60)
    consumer = Consumer(bad, group_id="refused", topics=["anything"], client_id="refused")
    try:
        with pytest.raises(BusError, match="refused SASL user 'mlops'"):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                consumer.consume(10, 0.5)
    finally:
        consumer.close()
    assert "not-the-password" not in caplog.text


def _service(name: str, kafka: KafkaSettings, redis: RedisSettings, tmp: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")} | kafka.environ() | {
        "MLOPS_REDIS_URL": redis.url, "MLOPS_REDIS_KEY_PREFIX": redis.key_prefix,
        "MLOPS_TELEMETRY_METRICS_PORT": "0", "MLOPS_TELEMETRY_LOG_FORMAT": "text",
        "MLOPS_TELEMETRY_LOG_LEVEL": "DEBUG",  # the most a log ever says: still no secret
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "libs")]),
        "MLOPS_INGEST_GROUP_ID": f"{kafka.topic_prefix}ingest",
        "MLOPS_FEATURES_APP_ID": f"{kafka.topic_prefix}features", "MLOPS_FEATURES_DATA_DIR": str(tmp / "faust"),
    }
    return subprocess.Popen([sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=env,
                            stdout=(tmp / f"{name}.log").open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)



def test_ingest_and_faust_features_over_sasl_ssl_and_no_secret_in_any_log(
    secure_stack: Stack, secure_kafka: KafkaSettings, redis_settings: RedisSettings, tmp_path: Path,
) -> None:
    procs = {name: _service(name, secure_kafka, redis_settings, tmp_path) for name in ("ingest", "features")}
    reader = Reader(secure_kafka, [topic_name(FEATURES_LOG, secure_kafka)], client_id="secure-read")
    logs = {name: tmp_path / f"{name}.log" for name in procs}
    try:
        producer = Producer(secure_kafka, client_id="secure-raw")
        now = int(time.time() * 1000)
        sent = {f"e{i}" for i in range(10)}
        for i, entity in enumerate(sorted(sent)):
            record = {"entity_id": entity, "event_time": now + i, "schema_version": 1,
                      "values": {"x0": float(i), "x1": 1.0, "x2": 2.0}}
            producer.send(topic_name(RAW_EVENTS, secure_kafka), json.dumps(record).encode(), key=entity,
                          headers={"content-type": "application/json"})
        producer.flush(30)
        seen: set[str] = set()

        def folded() -> bool:
            seen.update(r.decode(events_pb2.FeatureVector).entity_id for r in reader.consume(100, 0.5))
            return seen >= sent

        # faust (aiokafka) consumed `events` over SASL_SSL and the features.log producer wrote back
        wait_until(folded, timeout=150, message=lambda: "\n".join(
            f"--- {n}\n{p.read_text(errors='replace')[-2000:]}" for n, p in logs.items()))
    finally:
        reader.close()
        for proc in procs.values():
            stop_session(proc)
    texts = {name: path.read_text(errors="replace") for name, path in logs.items()}
    texts |= {p.name: p.read_text(errors="replace") for p in secure_stack.run_dir.rglob("*.log")}
    secrets = passwords(secure_stack)
    leaked = [name for name, text in texts.items() if any(secret in text for secret in secrets)]
    assert not leaked, f"a password appears in {leaked}"


def test_cli_output_and_settings_never_show_a_password(secure_stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_STACK_")} | {
        "MLOPS_STACK_RUN_DIR": str(secure_stack.run_dir),
        "MLOPS_STACK_KAFKA_PORT": str(secure_stack.s.kafka_port),
        "MLOPS_STACK_CONTROLLER_PORT": str(secure_stack.s.controller_port),
        "MLOPS_STACK_REDIS_PORT": str(secure_stack.s.redis_port),
    }
    outputs = [subprocess.run([sys.executable, "-m", "mlops_tools.cli", "stack", *args], env=env,
                              capture_output=True, text=True, timeout=120) for args in (["env"], ["status"])]
    env_lines, status = outputs
    assert env_lines.returncode == 0, env_lines.stderr
    assert "MLOPS_KAFKA_SASL_PASSWORD_FILE=" in env_lines.stdout and "SASL_SSL" in status.stdout
    settings = secure_stack.kafka_settings()
    logging.getLogger("mlops.test").warning("settings %s %r", settings, settings)
    shown = env_lines.stdout + env_lines.stderr + status.stdout + status.stderr + caplog.text + str(settings)
    for secret in passwords(secure_stack):
        assert secret not in shown
    # the files holding secrets are the owner's only
    secure = secure_stack.secure_material
    assert secure is not None
    for path in [*secure.folder.iterdir(), *(node.folder / "server.properties" for node in secure_stack.nodes)]:
        assert path.stat().st_mode & 0o077 == 0, path
