"""Integration, real broker: a champion change persisted on registry.log whose announcement on model.promoted failed
is re-sent when the registry restarts (the outbox); a retried command id returns the first result after the
restart; a gate-rejected version is refused over gRPC with FAILED_PRECONDITION unless overridden."""

from __future__ import annotations

import hashlib
import time

import grpc
import pytest
from mlops_tools.registry_client import RegistryCallError
from registry_helpers import RunningRegistry
from test_registry_grpc import promoted_events, publish

from services.registry.settings import RegistrySettings

# the outbox's background round is slow here, so what the restart does is what is tested
SETTINGS = RegistrySettings(grpc_host="127.0.0.1", grpc_port=0, artifact_timeout_s=3.0, grpc_workers=2,
                            announce_retry_s=3600.0)



@pytest.fixture
def started():
    running: list[RunningRegistry] = []
    yield running
    for r in running:
        r.stop()


def _broken(promotion) -> None:
    raise RuntimeError("model.promoted unwritable")


def test_an_unannounced_change_is_resent_on_restart_and_a_retried_command_applies_once(
        kafka_settings, started, onnx_model_factory, candidate_factory):
    t7, t9 = onnx_model_factory(7.0), onnx_model_factory(9.5)
    started.append(reg := RunningRegistry(kafka_settings, SETTINGS))
    publish(kafka_settings, reg.producer, t9, candidate_factory(t9, 9.5))
    publish(kafka_settings, reg.producer, t7, candidate_factory(t7, 9.5))  # worse on the 9.5 holdout: rejected
    assert [p.version for p in promoted_events(kafka_settings, 1, 30)] == ["1"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and reg.client.list_models().models[0].version_count < 2:
        time.sleep(0.2)
    assert reg.client.get_model("sea").versions[1].status == "rejected"

    with pytest.raises(RegistryCallError) as refused:
        reg.client.promote("sea", "2", "alice", "no gate for me")
    assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION and "rejected by the gate" in refused.value.detail

    reg.app.registry.announce = _broken  # the broker takes registry.log but model.promoted fails
    change = reg.client.promote("sea", "2", "alice", "hotfix", override_gate=True, command_id="cmd-override")
    assert (change.promoted.version, change.announced) == ("2", False)  # applied and durable, not yet announced
    audit = reg.client.get_model("sea").audit[-1]
    assert (audit.actor, audit.version) == ("alice", "2") and "override of a gate rejection" in audit.why
    reg.stop()
    started.remove(reg)

    # the restart finds v2 champion but v1 last announced
    started.append(again := RunningRegistry(kafka_settings, SETTINGS))
    promos = promoted_events(kafka_settings, 2, 30)
    assert [(p.version, p.previous_version, p.action) for p in promos] == [("1", "", "promote"),
                                                                            ("2", "1", "promote")]
    assert promos[1].artifact_sha256 == hashlib.sha256(t7).hexdigest()
    # the client retries its command after the restart: applied once, the first result returned
    audit_before = len(again.client.get_model("sea").audit)
    retry = again.client.promote("sea", "2", "alice", "hotfix", override_gate=True, command_id="cmd-override")
    assert (retry.promoted.version, retry.sequence, retry.announced) == ("2", change.sequence, True)
    assert len(again.client.get_model("sea").audit) == audit_before
    rollback = again.client.rollback("sea", "bob", "canary", command_id="cmd-rb")
    assert again.client.rollback("sea", "bob", "canary", command_id="cmd-rb").sequence == rollback.sequence
    assert again.client.get_model("sea").champion_version == "1"
    # a third start: every champion is announced already, so nothing is re-sent
    before = len(promoted_events(kafka_settings, 99, 3))
    again.stop()
    started.remove(again)
    started.append(RunningRegistry(kafka_settings, SETTINGS))
    assert len(promoted_events(kafka_settings, before + 1, 5)) == before
