"""Bring your own model on the in-process bus: a team's ONNX file checked against its declared model (refused
with the reason when it does not fit), scored on the holdout a retrain would build, proposed as an `onnx:byo`
candidate. No broker."""

from __future__ import annotations

import pytest
from mlops.artifacts import publish_artifact, sha256_hex
from mlops.bus import MemoryBus
from mlops.contracts import models_pb2
from mlops.topics import MODEL_ARTIFACTS, MODEL_CANDIDATES, MODEL_REGISTRATIONS, TRAINING_FAILURES
from test_trainer_edge_memory import FAST, SEA, sea_rows
from trainer_helpers import SEA_FEATURES, sea_onnx

from services.trainer.edge import TrainerService

ROWS = 500


def register(bus: MemoryBus, onnx_bytes: bytes, rid: str = "byo-1", model: str = "sea",
             publish: bool = True) -> TrainerService:
    """What `mlops models register` sends (the bytes, then the request), answered by the trainer."""
    producer = bus.producer(client_id="cli")
    if publish:
        publish_artifact(producer, bus, onnx_bytes)
    producer.send(bus.topic(MODEL_REGISTRATIONS), models_pb2.ModelRegistration(
        model_name=model, request_id=rid, artifact_sha256=sha256_hex(onnx_bytes), requested_at_ms=1,
        requested_by="cli:alice", description="our own model"), key=model)
    producer.flush()
    service = TrainerService(FAST.model_copy(update={"artifact_timeout_s": 0.5}), bus, sea_rows(ROWS), lambda: SEA)
    service.answer(bus.records(bus.topic(MODEL_REGISTRATIONS)))
    return service


def test_a_fitting_model_becomes_an_onnx_byo_candidate_scored_on_the_latest_rows() -> None:
    bus = MemoryBus()
    onnx_bytes = sea_onnx()
    register(bus, onnx_bytes)
    [c] = [r.decode(models_pb2.ModelCandidate) for r in bus.records(bus.topic(MODEL_CANDIDATES))]
    assert c.framework == "onnx:byo" and c.artifact_sha256 == sha256_hex(onnx_bytes)
    assert c.metrics["auc"] > 0.95 and c.holdout.rows == ROWS * 0.2 == c.lineage.row_count
    assert tuple(c.feature_names) == SEA_FEATURES and c.lineage.feature_set == "entity_activity"
    assert c.lineage.retrain_request_id == "byo-1" and "registered by cli:alice" in c.lineage.retrain_reason
    assert c.params["registered_by"] == "cli:alice" and c.params["definitions_revision"] == "1"
    assert (c.lineage.requested_by, c.lineage.definitions_revision) == ("cli:alice", 1)
    assert dict(c.lineage.view_versions) == {"entity_activity": 1}
    assert len(bus.records(bus.topic(MODEL_ARTIFACTS))) == 1  # its bytes are not published twice
    assert not bus.records(bus.topic(TRAINING_FAILURES))
    # the holdout is the one a retrain of the same data would carry: the latest 20 % by label time
    retrain = TrainerService(FAST, MemoryBus(), sea_rows(ROWS), lambda: SEA).run_once("sea", reason="t").candidate
    assert c.holdout.features_f32 == retrain.holdout.features_f32 and c.holdout.labels == retrain.holdout.labels


@pytest.mark.parametrize(("onnx_bytes", "reason"), [
    (sea_onnx(width=4), "input 'features' has 4 columns, the model declares 6 features"),
    (sea_onnx(regression=True), "no output 'probabilities' (a binary model's output); its outputs: ['variable']"),
    (b"definitely not onnx", "not a readable ONNX model"),
], ids=["width", "task", "garbage"])
def test_a_model_that_does_not_fit_is_refused_with_the_reason(onnx_bytes: bytes, reason: str) -> None:
    bus = MemoryBus()
    register(bus, onnx_bytes)
    [failure] = [r.decode(models_pb2.TrainingFailed) for r in bus.records(bus.topic(TRAINING_FAILURES))]
    assert failure.retrain_request_id == "byo-1" and failure.model_name == "sea"
    assert "the ONNX model does not fit model 'sea'" in failure.reason and reason in failure.reason
    assert not bus.records(bus.topic(MODEL_CANDIDATES))


def test_a_missing_artifact_or_model_is_a_training_failure() -> None:
    bus = MemoryBus()
    register(bus, sea_onnx(), publish=False)
    register(bus, sea_onnx(), rid="byo-2", model="nope")
    reasons = {f.retrain_request_id: f.reason for f in (
        r.decode(models_pb2.TrainingFailed) for r in bus.records(bus.topic(TRAINING_FAILURES)))}
    assert "model.artifacts: artifact sha256=" in reasons["byo-1"]
    assert "model 'nope' is not declared" in reasons["byo-2"]
