"""The trainer's edge on the in-process bus: retrain requests in → one candidate (artifact first) or a training
failure out, the requests committed. No broker."""

from __future__ import annotations

import threading
import time

import numpy as np
from mlops.bus import MemoryBus, StopFlag
from mlops.contracts import models_pb2
from mlops.offline_store import MemoryTrainingData
from mlops.schema import FEATURE_SET
from mlops.topics import MODEL_ARTIFACTS, MODEL_CANDIDATES, RETRAIN_REQUESTED, TRAINING_FAILURES

from services.trainer.edge import TrainerService, run
from services.trainer.settings import TrainerSettings

FAST = TrainerSettings(max_iter=10, min_rows=100, coalesce_window_s=0.2, coalesce_max_s=2.0, poll_timeout_s=0.05,
                       code_version="test")


def sea_rows(n: int) -> MemoryTrainingData:
    """n labelled SEA rows (x0 + x1 > 8) in the offline store's in-memory double: a vector, its label 1 ms later."""
    rng = np.random.default_rng(0)
    data = MemoryTrainingData()
    for i in range(n):
        x = rng.uniform(0, 10, 3)
        entity, t = f"e{i % 20}", 1_700_000_000_000 + i * 10
        data.add_vector(entity, t, dict(zip(FEATURE_SET.names, [x[0], x[1], x[2], x[0], x[1], 1.0], strict=True)))
        data.add_label(entity, t + 1, float(x[0] + x[1] > 8.0))
    return data


def request(bus: MemoryBus, rid: str, at_ms: int) -> None:
    producer = bus.producer(client_id="test")
    producer.send(bus.topic(RETRAIN_REQUESTED), models_pb2.RetrainRequest(
        model_name="sea", request_id=rid, reason=f"drift {rid}", requested_at_ms=at_ms), key="sea")
    producer.flush()


def serve_until(bus: MemoryBus, service: TrainerService, topic: str, timeout: float = 60.0) -> list[int]:
    """Run the trainer's loop until a record shows up on `topic` and the requests are committed."""
    stop = StopFlag(install_signals=False)
    trainings: list[int] = []
    thread = threading.Thread(target=lambda: trainings.append(run(service, stop)), daemon=True)
    thread.start()
    requests = bus.topic(RETRAIN_REQUESTED)
    total = len(bus.records(requests))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            committed = sum(bus.committed(FAST.group_id, requests, p) or 0 for p in range(bus.default_partitions))
            if bus.records(topic) and committed >= total:
                break
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(20)
    assert not thread.is_alive()
    return trainings


def test_a_burst_of_requests_becomes_one_candidate_with_its_artifact() -> None:
    bus = MemoryBus()
    for i in range(3):
        request(bus, f"r{i}", 100 + i)
    service = TrainerService(FAST, bus, sea_rows(600))
    assert serve_until(bus, service, bus.topic(MODEL_CANDIDATES)) == [1]
    [candidate] = [r.decode(models_pb2.ModelCandidate) for r in bus.records(bus.topic(MODEL_CANDIDATES))]
    assert list(candidate.lineage.coalesced_request_ids) == ["r0", "r1", "r2"]
    assert candidate.lineage.retrain_request_id == "r2" and candidate.lineage.code_version == "test"
    assert candidate.lineage.row_count == 600 and candidate.metrics["auc"] > 0.9
    assert sum(r.end_offset - r.start_offset for r in candidate.lineage.feature_log_offsets) == 600
    [artifact] = bus.records(bus.topic(MODEL_ARTIFACTS))
    assert artifact.key == candidate.artifact_sha256.encode() and len(artifact.value) == candidate.artifact_size
    assert not bus.records(bus.topic(TRAINING_FAILURES))


def test_a_request_without_enough_data_becomes_a_training_failure() -> None:
    bus = MemoryBus()
    request(bus, "r-small", 1)
    service = TrainerService(FAST, bus, sea_rows(30))
    assert serve_until(bus, service, bus.topic(TRAINING_FAILURES)) == [1]
    [failure] = [r.decode(models_pb2.TrainingFailed) for r in bus.records(bus.topic(TRAINING_FAILURES))]
    assert failure.retrain_request_id == "r-small" and failure.model_name == "sea"
    assert "not enough labelled rows to train: 30 < 100" in failure.reason
    assert not bus.records(bus.topic(MODEL_CANDIDATES))
