"""Integration: the registry against the real broker — candidates from model.candidates, the gRPC API,
refusals with clear status codes, and a restart that rebuilds the same state from registry.log."""

from __future__ import annotations

import hashlib
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from mlops.artifacts import publish_artifact
from mlops.bus import KafkaBus, Producer
from mlops.contracts import models_pb2
from mlops.topics import MODEL_ARTIFACTS, MODEL_CANDIDATES, MODEL_PROMOTED, topic_name
from mlops_tools.registry_client import RegistryCallError, RegistryClient
from registry_helpers import NAMES, RunningRegistry, apply_definitions, regression_candidate

from services.registry.settings import RegistrySettings

SETTINGS = RegistrySettings(grpc_host="127.0.0.1", grpc_port=0, artifact_timeout_s=3.0, grpc_workers=2)


@pytest.fixture(scope="module")
def models(onnx_model_factory) -> dict[str, bytes]:
    return {"t7": onnx_model_factory(7.0), "t9_5": onnx_model_factory(9.5), "t9_5b": onnx_model_factory(9.5, seed=2)}



@pytest.fixture
def registry_factory(kafka_settings):
    started: list[RunningRegistry] = []

    def make() -> RunningRegistry:
        started.append(RunningRegistry(kafka_settings, SETTINGS))
        return started[-1]

    yield make
    for r in started:
        r.stop()


def publish(kafka, producer: Producer, data: bytes | None, cand: models_pb2.ModelCandidate | None = None) -> None:
    if data is not None:
        publish_artifact(producer, kafka, data)
    if cand is not None:
        producer.send(topic_name(MODEL_CANDIDATES, kafka), cand, key=cand.model_name)
    producer.flush()


def promoted_events(kafka, want: int, timeout: float) -> list[models_pb2.ModelPromoted]:
    """The first `want` announcements on model.promoted (fewer if they do not come within `timeout`)."""
    reader = KafkaBus(kafka).reader([topic_name(MODEL_PROMOTED, kafka)], client_id="test")
    seen: list[models_pb2.ModelPromoted] = []
    deadline = time.monotonic() + timeout
    try:
        while len(seen) < want and time.monotonic() < deadline:
            seen.extend(r.decode(models_pb2.ModelPromoted) for r in reader.consume(50, 0.5))
    finally:
        reader.close()
    return seen


def state_of(client: RegistryClient) -> tuple:
    models = client.list_models().models
    detail = [client.get_model(m.name) for m in models]
    return ([(m.name, m.champion_version, m.latest_version, m.version_count) for m in models],
            [[(v.version, v.status, v.gate_decision, v.artifact_sha256) for v in d.versions] for d in detail],
            [[(a.sequence, a.version, a.action, a.actor, a.why) for a in d.audit] for d in detail])


def test_candidates_are_gated_promoted_and_the_state_survives_a_restart(kafka_settings, registry_factory, models,
                                                                            onnx_model_factory, candidate_factory):
    reg = registry_factory()
    publish(kafka_settings, reg.producer, models["t7"], candidate_factory(models["t7"], 7.0))
    first = promoted_events(kafka_settings, 1, 30)
    assert [(p.version, p.previous_version, p.action) for p in first] == [("1", "", "promote")]
    assert list(first[0].feature_names) == list(NAMES)
    # a better model for the drifted concept (threshold 9.5) beats the champion on the new holdout
    publish(kafka_settings, reg.producer, models["t9_5"], candidate_factory(models["t9_5"], 9.5))
    # a worse one is rejected, but gets a version and an audit entry
    publish(kafka_settings, reg.producer, models["t9_5b"], candidate_factory(models["t9_5b"], 7.0))
    promos = promoted_events(kafka_settings, 2, 30)
    assert promos[1].version == "2" and promos[1].artifact_sha256 == hashlib.sha256(models["t9_5"]).hexdigest()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and reg.client.list_models().models[0].version_count < 3:
        time.sleep(0.2)
    r = reg.client.get_model("sea")
    assert [(v.version, v.status) for v in r.versions] == [("1", "retired"), ("2", "champion"), ("3", "rejected")]
    assert "does not beat champion v2" in r.versions[2].gate_reason
    assert r.versions[1].champion_metrics["auc"] < r.versions[1].gate_metrics["auc"]

    change = reg.client.rollback("sea", "alice", "canary errors")
    assert (change.promoted.version, change.promoted.previous_version, change.promoted.action) == ("1", "2",
                                                                                                  "rollback")
    card = reg.client.model_card("sea").markdown
    assert "# Model card: sea v1" in card and "canary errors" in card and "x1_mean_60s" in card
    assert "sha256" in reg.client.diff("sea", "1", "2").text
    before = state_of(reg.client)
    reg.stop()

    again = registry_factory()  # a new instance: state rebuilt by replaying registry.log
    assert again.app.replayed > 0
    assert state_of(again.client) == before
    assert again.client.get_model("sea").champion_version == "1"
    # and it goes on numbering where the old one stopped
    fresh = onnx_model_factory(9.5, seed=5)
    publish(kafka_settings, again.producer, fresh, candidate_factory(fresh, 9.5))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and again.client.list_models().models[0].version_count < 4:
        time.sleep(0.2)
    assert again.client.get_model("sea").versions[-1].version == "4"


def test_bad_requests_get_clear_status_codes_and_change_nothing(kafka_settings, registry_factory, models,
                                                                  candidate_factory):
    reg = registry_factory()
    good = candidate_factory(models["t7"], 7.0)
    publish(kafka_settings, reg.producer, models["t7"])
    assert reg.client.register(good).decision == "promoted"
    before = state_of(reg.client)

    def code(fn) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(RegistryCallError) as info:
            fn()
        return info.value.code, info.value.detail

    assert code(lambda: reg.client.get_model("nope"))[0] == grpc.StatusCode.NOT_FOUND
    assert code(lambda: reg.client.get_model("sea", "42")) == (grpc.StatusCode.NOT_FOUND,
                                                              "model 'sea' has no version '42'")
    assert code(lambda: reg.client.promote("sea", "7", "a", "b"))[0] == grpc.StatusCode.NOT_FOUND
    assert code(lambda: reg.client.model_card("ghost"))[0] == grpc.StatusCode.NOT_FOUND
    assert code(lambda: reg.client.get_model(""))[0] == grpc.StatusCode.INVALID_ARGUMENT
    bad_sha = candidate_factory(models["t7"], 7.0)
    bad_sha.artifact_sha256 = "xyz"
    assert code(lambda: reg.client.register(bad_sha))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert code(lambda: reg.client.register(good)) == (
        grpc.StatusCode.ALREADY_EXISTS,
        f"duplicate candidate for 'sea': candidate id {good.candidate_id} already registered as version 1")
    # corrupt: bytes on model.artifacts under a key that is not their hash
    fake_sha = hashlib.sha256(b"the real bytes").hexdigest()
    reg.producer.send(topic_name(MODEL_ARTIFACTS, kafka_settings), b"tampered bytes", key=fake_sha)
    reg.producer.flush()
    corrupt = candidate_factory(models["t7"], 7.0)
    corrupt.artifact_sha256 = fake_sha
    status, detail = code(lambda: reg.client.register(corrupt))
    assert status == grpc.StatusCode.FAILED_PRECONDITION and "do not match their address" in detail
    missing = candidate_factory(models["t7"], 7.0)
    missing.artifact_sha256 = hashlib.sha256(b"never published").hexdigest()
    status, detail = code(lambda: reg.client.register(missing))
    assert status == grpc.StatusCode.FAILED_PRECONDITION and "not found" in detail
    assert code(lambda: reg.client.rollback("sea", "a", "b"))[0] == grpc.StatusCode.FAILED_PRECONDITION
    assert code(lambda: reg.client.promote("sea", "1", "a", "b"))[0] == grpc.StatusCode.FAILED_PRECONDITION
    assert state_of(reg.client) == before


def test_a_regression_model_and_a_bring_your_own_one_are_gated_on_mae_by_the_revision_in_force(
        kafka_settings, registry_factory, onnx_model_factory):
    reg = registry_factory()
    first, better, best = (onnx_model_factory(w, task="regression") for w in (0.0, 1.0, 2.0))
    for data in (first, better, best):
        publish(kafka_settings, reg.producer, data)
    assert reg.client.register(regression_candidate(first, 2.0)).decision == "promoted"
    # a newer revision asks for a 3-minute gain: applied to the next candidate, no restart
    revision = apply_definitions(KafkaBus(kafka_settings), {"delivery_time": {"margin": 3.0}})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and reg.app.definitions.current.number < revision.number:
        time.sleep(0.1)
    r = reg.client.register(regression_candidate(better, 2.0))  # MAE 10 → 5: a gain of 5 minutes
    assert r.decision == "promoted" and "margin 3" in r.reason and "mae (lower is better)" in r.reason
    byo = regression_candidate(best, 2.0, framework="onnx:byo", params={"requested_by": "cli:alice"})
    publish(kafka_settings, reg.producer, None, byo)  # through model.candidates, as the trainer sends it
    promos = promoted_events(kafka_settings, 3, 30)
    assert [(p.model_name, p.version) for p in promos] == [("delivery_time", "1"), ("delivery_time", "2"),
                                                            ("delivery_time", "3")]
    model = reg.client.get_model("delivery_time")
    assert [(a.action, a.actor) for a in model.audit if a.version == "3"] == [("register", "cli:alice"),
                                                                              ("promote", "registry")]
    card = reg.client.model_card("delivery_time").markdown
    assert "**Task:** regression" in card and "registered by cli:alice" in card and "margin 3" in card
    assert "| `customer_orders.channel` (sensitive) |" in card  # the example's declared slices, over gRPC
    drawn = reg.client.model_card("delivery_time", figures=True).figures
    assert [f.name for f in drawn] == ["slices.png"] and drawn[0].png.startswith(b"\x89PNG\r\n\x1a\n")
    assert not reg.client.model_card("delivery_time").figures  # drawn only when asked for


def test_health_and_reflection(registry_factory):
    reg = registry_factory()
    with grpc.insecure_channel(f"127.0.0.1:{reg.app.grpc_port}") as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="mlops.v1.ModelRegistry"), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        responses = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        names = {s.name for r in responses for s in r.list_services_response.service}
        assert "mlops.v1.ModelRegistry" in names and "grpc.health.v1.Health" in names
