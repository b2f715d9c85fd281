"""Integration: the secure stack's Kafka ACLs (KRaft's StandardAuthorizer; mlops_tools/stack/acls.py) against a real
broker started by `mlops stack up --secure`'s own code, in its own run dir on its own ports (the session's
`secure_stack`, tests/conftest.py, which test_kafka_secure.py shares).

Only the admin may write the definitions topic, only the registry (and the admin) model.promoted, only the trainer
(and the admin) model.artifacts — the broker refuses everyone else — while every user keeps reading them and writing
the other topics. `mlops apply` with a non-admin credential is refused by the broker with a message naming the
permission and the way out; with the admin's it publishes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from mlops.bus import BusError, Producer, Reader
from mlops.settings import KafkaSettings
from mlops.topics import DEFINITIONS, EVENTS, MODEL_ARTIFACTS, MODEL_PROMOTED, TopicSpec, ensure_topics, topic_name
from mlops_tools.examples import definitions_path
from mlops_tools.stack import Stack
from mlops_tools.stack.secure import ADMIN_USER, CLIENT_USER

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prefix(secure_stack: Stack) -> str:
    prefix = f"acl{uuid.uuid4().hex[:8]}."
    secure_stack.protect_topics(prefix)
    ensure_topics(secure_stack.kafka_settings(ADMIN_USER).model_copy(update={"topic_prefix": prefix}))
    return prefix


def _as(stack: Stack, user: str, prefix: str) -> KafkaSettings:
    return stack.kafka_settings(user).model_copy(update={"topic_prefix": prefix})


def _write(settings: KafkaSettings, spec: TopicSpec) -> str:
    """"OK", or the broker's refusal."""
    producer = Producer(settings, client_id=f"acl-{settings.sasl_username}",
                        extra={"message.timeout.ms": 15000, "log_level": 2})
    producer.send(topic_name(spec, settings), b"value", key="k")
    try:
        producer.flush(30)
        return "OK"
    except BusError as exc:
        return str(exc)


@pytest.mark.parametrize("user, spec, allowed", [
    (ADMIN_USER, DEFINITIONS, True),
    (CLIENT_USER, DEFINITIONS, False),
    ("registry", DEFINITIONS, False),
    ("registry", MODEL_PROMOTED, True),
    ("inference", MODEL_PROMOTED, False),
    (CLIENT_USER, MODEL_PROMOTED, False),
    ("trainer", MODEL_ARTIFACTS, True),
    ("ingest", MODEL_ARTIFACTS, False),
    ("ingest", EVENTS, True),  # an ordinary topic: every user
    (CLIENT_USER, EVENTS, True),
])
def test_only_the_owners_write_the_protected_topics(secure_stack: Stack, prefix: str, user: str, spec: TopicSpec,
                                                    allowed: bool) -> None:
    outcome = _write(_as(secure_stack, user, prefix), spec)
    if allowed:
        assert outcome == "OK"
    else:
        assert "TOPIC_AUTHORIZATION_FAILED" in outcome and topic_name(spec, _as(secure_stack, user, prefix)) in outcome


def test_everyone_still_reads_the_protected_topics(secure_stack: Stack, prefix: str) -> None:
    assert _write(_as(secure_stack, ADMIN_USER, prefix), MODEL_PROMOTED) == "OK"
    inference = _as(secure_stack, "inference", prefix)
    reader = Reader(inference, [topic_name(MODEL_PROMOTED, inference)], client_id="acl-read")
    try:
        assert reader.read_to_end(30), "inference reads model.promoted"
    finally:
        reader.close()


def _mlops(stack: Stack, user: str, prefix: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_KAFKA_")} | \
        _as(stack, user, prefix).environ() | {
            "PYTHONPATH": os.pathsep.join([str(ROOT / "libs"), str(ROOT), str(ROOT / "tools")])}
    return subprocess.run([sys.executable, "-m", "mlops_tools.cli", *argv],
                          env=env, capture_output=True, text=True, timeout=180, cwd=ROOT)


def _apply(stack: Stack, user: str, prefix: str) -> subprocess.CompletedProcess[str]:
    return _mlops(stack, user, prefix, "apply", str(definitions_path("sea")))


def test_mlops_apply_needs_the_admin(secure_stack: Stack, prefix: str) -> None:
    refused = _apply(secure_stack, CLIENT_USER, prefix)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert (f"mlops apply: the broker refused SASL user 'mlops' permission to WRITE topic "
            f"'{prefix}definitions' (TOPIC_AUTHORIZATION_FAILED)") in refused.stderr
    assert "mlops stack env --user admin" in refused.stderr and "Traceback" not in refused.stderr
    applied = _apply(secure_stack, ADMIN_USER, prefix)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "applied revision" in applied.stdout


def test_mlops_models_register_needs_the_admin(secure_stack: Stack, prefix: str, tmp_path: Path) -> None:
    # the model's bytes go onto model.artifacts, which only the trainer and the admin write
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"not checked before the trainer reads it")
    refused = _mlops(secure_stack, CLIENT_USER, prefix, "models", "register", "--model", "sea", "--onnx", str(onnx))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert any(line.startswith("mlops models: the broker refused SASL user 'mlops': ")  # after librdkafka's log
               for line in refused.stderr.splitlines()), refused.stderr
    assert "authorization failed" in refused.stderr.lower() and "Traceback" not in refused.stderr
    assert "mlops stack env --user admin" in refused.stderr
    registered = _mlops(secure_stack, ADMIN_USER, prefix, "models", "register", "--model", "sea", "--onnx", str(onnx))
    assert registered.returncode == 0 and "registered: model=sea" in registered.stdout, registered.stderr
