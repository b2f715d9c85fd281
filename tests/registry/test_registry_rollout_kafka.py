"""Integration, real broker: a model declared `rollout: shadow` — a candidate that passes the gate is announced on
model.promoted as the shadow challenger ("sea/challenger", role signed); the monitor's promote verdict on
challenger.verdicts crowns it and keeps the previous champion as the guard; a rollback verdict brings the previous
champion back and withdraws the guard; duplicate and stale verdicts change nothing; the audit trail carries the
verdicts as evidence over gRPC, and a restart rebuilds the same state without re-announcing anything."""

from __future__ import annotations

import time
from typing import Any

import pytest
from mlops import definitions as d
from mlops.bus import KafkaBus
from mlops.contracts import models_pb2
from mlops.definitions.store import publish as publish_revision
from mlops.definitions.store import read_revisions
from mlops.security import SecuritySettings, promotion_verified
from mlops.topics import CHALLENGER_VERDICTS, MODEL_PROMOTED, topic_name
from mlops_tools.registry_client import RegistryClient
from pydantic import SecretStr
from registry_helpers import RunningRegistry, document
from test_registry_grpc import publish

from services.registry.settings import RegistrySettings

SETTINGS = RegistrySettings(grpc_host="127.0.0.1", grpc_port=0, artifact_timeout_s=3.0, grpc_workers=2)
KEY = SecretStr("rollout-test-key")


def apply_rollout(bus: KafkaBus, rollout: dict[str, Any]) -> None:
    """`mlops apply` of the test definitions with the `sea` model's rollout declared as `rollout`."""
    doc = document()
    for model in doc["models"]:
        if model["name"] == "sea":
            model["rollout"] = rollout
    current = d.latest(read_revisions(bus, client_id="test-apply", timeout=10))
    revision = d.plan(current, d.parse(doc), "test").revision
    assert revision is not None
    publish_revision(bus, revision, client_id="test-apply")



def registry(kafka) -> RunningRegistry:
    """The registry signing with KEY, on the definitions the test applied (`apply_rollout`)."""
    return RunningRegistry(kafka, SETTINGS, SecuritySettings(promotion_key=KEY), definitions=False)


@pytest.fixture
def started():
    running: list[RunningRegistry] = []
    yield running
    for r in running:
        r.stop()


class Announcements:
    """model.promoted from the beginning, as (key, message), read as they come."""

    def __init__(self, kafka):
        self.reader = KafkaBus(kafka).reader([topic_name(MODEL_PROMOTED, kafka)], client_id="test-promoted")
        self.seen: list[tuple[str, models_pb2.ModelPromoted]] = []

    def wait(self, want: int, timeout: float = 30) -> list[tuple[str, str, str, str, float]]:
        deadline = time.monotonic() + timeout
        while len(self.seen) < want and time.monotonic() < deadline:
            self.seen += [(r.key.decode(), r.decode(models_pb2.ModelPromoted)) for r in self.reader.consume(50, 0.5)]
        return [(k, m.version, m.action, m.role, m.traffic_fraction) for k, m in self.seen]

    def close(self) -> None:
        self.reader.close()


def verdict(champion: str, challenger: str, phase: str, outcome: str, **fields: Any) -> models_pb2.ChallengerVerdict:
    figures = {"metric": "auc", "champion_metric": 0.91, "challenger_metric": 0.99, "difference": 0.08,
               "ci_low": 0.04, "ci_high": 0.12, "labelled_rows": 380, "test": "paired mSPRT", "confidence": 0.95,
               "reason": f"{outcome}: auc +0.08 [+0.04, +0.12] on 380 labelled rows",
               "verdict_id": f"sea/{challenger}/{phase}"} | fields
    return models_pb2.ChallengerVerdict(model_name="sea", champion_version=champion, challenger_version=challenger,
                                        phase=phase, verdict=outcome, **figures)


def send(kafka, producer, *verdicts: models_pb2.ChallengerVerdict) -> None:
    for v in verdicts:
        producer.send(topic_name(CHALLENGER_VERDICTS, kafka), v, key=v.model_name)
    producer.flush()


def audit_until(client: RegistryClient, want: int, timeout: float = 30) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        audit = list(client.get_model("sea").audit)
        if len(audit) >= want:
            return audit
        time.sleep(0.2)
    return list(client.get_model("sea").audit)


def test_a_shadow_challenger_is_promoted_then_rolled_back_on_live_verdicts(
        kafka_settings, started, onnx_model_factory, candidate_factory):
    apply_rollout(KafkaBus(kafka_settings), {"mode": "shadow", "rollback_margin": 0.02})
    t4, t9 = onnx_model_factory(4.0), onnx_model_factory(9.5)
    started.append(reg := registry(kafka_settings))
    promoted = Announcements(kafka_settings)
    try:
        publish(kafka_settings, reg.producer, t4, candidate_factory(t4, 4.0))
        assert promoted.wait(1) == [("sea", "1", "promote", "", 0.0)]  # no champion yet: promoted directly
        publish(kafka_settings, reg.producer, t9, candidate_factory(t9, 9.5))
        assert promoted.wait(2)[1] == ("sea/challenger", "2", "promote", "shadow", 1.0)
        shadow = promoted.seen[1][1]
        assert promotion_verified(KEY, "sea", "2", shadow.artifact_sha256, shadow.signature, "shadow",
                                  promoted_at_ms=shadow.promoted_at_ms, action=shadow.action)
        summary = reg.client.list_models().models[0]
        assert (summary.champion_version, summary.challenger_version, summary.challenger_role,
                summary.challenger_fraction) == ("1", "2", "shadow", 1.0)
        assert [(v.version, v.status, v.role) for v in reg.client.get_model("sea").versions] == [
            ("1", "champion", ""), ("2", "challenger", "shadow")]

        # the monitor's verdicts: a stale one (no v3), the promotion, and the promotion delivered twice
        send(kafka_settings, reg.producer, verdict("1", "3", "shadow", "promote"),
             verdict("1", "2", "shadow", "promote"), verdict("1", "2", "shadow", "promote"))
        assert promoted.wait(4)[2:] == [("sea", "2", "promote", "", 0.0), ("sea/challenger", "1", "promote", "guard",
                                                                             1.0)]
        audit = audit_until(reg.client, 6)
        promote, guard = audit[-2:]
        assert (promote.version, promote.action, promote.actor, promote.evidence.verdict_id,
                promote.evidence.labelled_rows) == ("2", "promote", "monitor", "sea/2/shadow", 380)
        assert (guard.version, guard.action, guard.evidence.verdict) == ("1", "guard", "promote")

        # the guard finds the new champion worse: rolled back, the guard withdrawn
        send(kafka_settings, reg.producer, verdict("2", "1", "guard", "rollback", difference=0.05, ci_low=0.03,
                                                   ci_high=0.07, verdict_id="sea/1/guard"))
        assert promoted.wait(6)[4:] == [("sea", "1", "rollback", "", 0.0),
                                         ("sea/challenger", "1", "retire", "guard", 0.0)]
        rollback = audit_until(reg.client, 7)[-1]
        assert (rollback.version, rollback.action, rollback.actor, rollback.evidence.phase,
                rollback.evidence.ci_low) == ("1", "rollback", "monitor", "guard", 0.03)
        model = reg.client.get_model("sea")
        assert [(v.version, v.status) for v in model.versions] == [("1", "champion"), ("2", "rolled_back")]
        assert len(model.audit) == 7  # register, promote, register, challenger, promote, guard, rollback
        assert "## Live evidence" in reg.client.model_card("sea", "2").markdown
        before = [(a.sequence, a.action, a.evidence.verdict_id) for a in model.audit]
        reg.stop()
        started.remove(reg)

        # a restart rebuilds the same state from registry.log and re-announces nothing (all were sent)
        started.append(again := registry(kafka_settings))
        assert [(a.sequence, a.action, a.evidence.verdict_id) for a in again.client.get_model("sea").audit] == before
        assert again.client.list_models().models[0].challenger_version == ""
        assert len(promoted.wait(7, timeout=5)) == 6
    finally:
        promoted.close()
