"""A retrain after a concept drift learns the new concept only: rows labelled after the request's change point, once
there are enough of them (the trainer waits, re-reading the data, then fails so the monitor asks again)."""

from __future__ import annotations

import numpy as np
from mlops.bus import MemoryBus
from mlops.contracts import models_pb2
from mlops.offline_store import TrainingSet
from mlops.topics import MODEL_CANDIDATES, RETRAIN_REQUESTED, TRAINING_FAILURES
from test_trainer_edge_memory import FAST, SEA, failures, sea_rows, serve_until
from trainer_helpers import T0

from services.trainer.convert import ask_from_proto
from services.trainer.core import since_change
from services.trainer.edge import TrainerService


def _request(bus: MemoryBus, rid: str, change_point_ms: int) -> None:
    producer = bus.producer(client_id="test")
    producer.send(bus.topic(RETRAIN_REQUESTED), models_pb2.RetrainRequest(
        model_name="sea", request_id=rid, reason="concept drift", requested_at_ms=1,
        change_point_ms=change_point_ms, attempt=2), key="sea")
    producer.flush()


def test_since_change_keeps_the_rows_labelled_at_or_after_the_change_point_only():
    times = np.array([10, 20, 30, 40])
    data = TrainingSet(np.arange(8, dtype=np.float32).reshape(4, 2), np.array([0.0, 1.0, 0.0, 1.0]), ("a", "b"),
                       ["e0", "e1", "e2", "e3"], times, [], [])
    post = since_change(data, 30)
    assert post.entity_ids == ["e2", "e3"] and post.label_times_ms.tolist() == [30, 40]
    assert post.X.tolist() == [[4.0, 5.0], [6.0, 7.0]] and post.y.tolist() == [0.0, 1.0]
    assert since_change(data, 0) is data  # unknown change point: every row


def test_the_change_point_travels_from_the_request_to_the_ask():
    msg = models_pb2.RetrainRequest(model_name="sea", request_id="r", change_point_ms=1234, attempt=3)
    assert ask_from_proto(msg).change_point_ms == 1234


def test_a_retrain_with_a_change_point_trains_on_the_rows_after_it():
    bus = MemoryBus()
    _request(bus, "r-cp", T0 + 400 * 10)  # rows are 10 ms apart: 200 of the 600 come after the change point
    service = TrainerService(FAST, bus, sea_rows(600), lambda: SEA)
    serve_until(bus, service, bus.topic(MODEL_CANDIDATES))
    [candidate] = [r.decode(models_pb2.ModelCandidate) for r in bus.records(bus.topic(MODEL_CANDIDATES))]
    assert candidate.lineage.row_count == 200 and candidate.lineage.data_start_ms >= T0 + 4000


def test_too_few_rows_after_the_change_point_wait_then_fail_naming_it():
    bus = MemoryBus()
    _request(bus, "r-early", T0 + 550 * 10)  # only 50 rows after it; the model needs 100
    service = TrainerService(FAST.model_copy(update={"change_point_wait_s": 0.3, "change_point_poll_s": 0.1}),
                             bus, sea_rows(600), lambda: SEA)
    serve_until(bus, service, bus.topic(TRAINING_FAILURES))
    [failure] = failures(bus)
    assert "50 < 100" in failure.reason and "after the change point" in failure.reason
