"""The trainer's edge on the in-process bus: retrain requests in → one candidate (artifact first) or a training
failure out, the requests committed; any declared model; definitions swapped at run time. No broker."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
from mlops.bus import MemoryBus, StopFlag
from mlops.contracts import events_pb2, models_pb2
from mlops.definitions import Revision
from mlops.offline_store import KafkaTrainingData, MemoryTrainingData
from mlops.topics import (
    FEATURES_LOG,
    LABELS,
    MODEL_ARTIFACTS,
    MODEL_CANDIDATES,
    PREDICTIONS,
    RETRAIN_REQUESTED,
    TRAINING_FAILURES,
)
from prometheus_client import REGISTRY
from testkit import wait_until
from trainer_helpers import SEA_FEATURES, T0, delivery_values, document, fast, revision, sea_values

from services.trainer.edge import TrainerService, run
from services.trainer.settings import TrainerSettings

FAST = TrainerSettings(coalesce_window_s=0.2, coalesce_max_s=2.0, poll_timeout_s=0.05, code_version="test")
SEA = revision("sea", models={"sea": fast(min_rows=100)})


def sea_rows(n: int) -> MemoryTrainingData:
    """n labelled SEA rows (x0 + x1 > 8) in the offline store's in-memory double: a vector, its label 1 ms later."""
    rng = np.random.default_rng(0)
    data = MemoryTrainingData()
    for i in range(n):
        values, label = sea_values(rng)
        entity, t = f"e{i % 20}", T0 + i * 10
        data.add_vector("entity_activity", entity, t, values)
        data.add_label(entity, t + 1, label)
    return data


def request(bus: MemoryBus, rid: str, at_ms: int, model: str = "sea") -> None:
    producer = bus.producer(client_id="test")
    producer.send(bus.topic(RETRAIN_REQUESTED), models_pb2.RetrainRequest(
        model_name=model, request_id=rid, reason=f"drift {rid}", requested_at_ms=at_ms), key=model)
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


def failures(bus: MemoryBus) -> list[models_pb2.TrainingFailed]:
    return [r.decode(models_pb2.TrainingFailed) for r in bus.records(bus.topic(TRAINING_FAILURES))]


def test_a_burst_of_requests_becomes_one_candidate_with_its_artifact() -> None:
    bus = MemoryBus()
    for i in range(3):
        request(bus, f"r{i}", 100 + i)
    service = TrainerService(FAST, bus, sea_rows(600), lambda: SEA)
    assert serve_until(bus, service, bus.topic(MODEL_CANDIDATES)) == [1]
    [candidate] = [r.decode(models_pb2.ModelCandidate) for r in bus.records(bus.topic(MODEL_CANDIDATES))]
    lin = candidate.lineage
    assert list(lin.coalesced_request_ids) == ["r0", "r1", "r2"]
    assert lin.retrain_request_id == "r2" and lin.code_version == "test" and lin.seed == 42
    assert lin.row_count == 600 and candidate.metrics["auc"] > 0.9
    assert (lin.feature_set, lin.feature_set_version) == ("entity_activity", SEA.view_versions["entity_activity"])
    assert tuple(candidate.feature_names) == SEA_FEATURES == tuple(candidate.holdout.feature_names)
    assert candidate.params["definitions_revision"] == "1" and candidate.params["max_iter"] == "10"
    assert sum(r.end_offset - r.start_offset for r in lin.feature_log_offsets) == 600
    [artifact] = bus.records(bus.topic(MODEL_ARTIFACTS))
    assert artifact.key == candidate.artifact_sha256.encode() and len(artifact.value) == candidate.artifact_size
    assert not failures(bus)


def test_a_request_without_enough_data_becomes_a_training_failure() -> None:
    bus = MemoryBus()
    request(bus, "r-small", 1)
    service = TrainerService(FAST, bus, sea_rows(30), lambda: SEA)
    assert serve_until(bus, service, bus.topic(TRAINING_FAILURES)) == [1]
    [failure] = failures(bus)
    assert failure.retrain_request_id == "r-small" and failure.model_name == "sea"
    assert "not enough labelled rows to train: 30 < 100" in failure.reason
    assert not bus.records(bus.topic(MODEL_CANDIDATES))


def test_an_undeclared_model_or_no_revision_fails_naming_it() -> None:
    bus = MemoryBus()
    service = TrainerService(FAST, bus, sea_rows(300), lambda: SEA)
    assert "model 'nope' is not declared in definitions revision 1; declared models: ['sea']" in \
        service.run_once("nope", reason="t").failure.reason
    service.definitions = lambda: None
    assert "no definitions revision in force yet" in service.run_once("sea", reason="t").failure.reason
    assert len(failures(bus)) == 2


def test_a_request_id_join_model_trains_on_the_prediction_log_and_publishes_a_candidate() -> None:
    bus = MemoryBus()
    rev = revision(doc=document("sea", models={"sea": fast() | {"label": {"topic": "labels", "join": "request_id"}}}))
    producer = bus.producer(client_id="test")
    rng = np.random.default_rng(3)
    for i in range(300):
        values, label = sea_values(rng)
        entity, t, rid = f"e{i % 20}", T0 + i * 10, f"req-{i}"
        inputs = {f"entity_activity.{c}": v for c, v in values.items()}
        producer.send(bus.topic(PREDICTIONS), models_pb2.PredictionRecord(
            request_id=rid, entity_id=entity, model_name="sea", model_version="1", inputs=inputs, timestamp_ms=t),
            key=entity)
        producer.send(bus.topic(PREDICTIONS), models_pb2.PredictionRecord(  # another model's, never joined
            request_id=rid, entity_id=entity, model_name="other", inputs={n: 0.0 for n in inputs}, timestamp_ms=t),
            key=entity)
        producer.send(bus.topic(LABELS), events_pb2.Label(entity_id=entity, event_time_ms=t + 5_000, label=label,
                                                          request_id=rid), key=entity)
    producer.send(bus.topic(LABELS), events_pb2.Label(entity_id="e1", event_time_ms=T0, label=1.0,
                                                      request_id="never-served"), key="e1")
    producer.flush()
    service = TrainerService(FAST, bus, KafkaTrainingData(bus, timeout=5), lambda: rev)
    outcome = service.run_once("sea", reason="test")
    assert outcome.failure is None, outcome.failure
    [candidate] = [r.decode(models_pb2.ModelCandidate) for r in bus.records(bus.topic(MODEL_CANDIDATES))]
    assert candidate == outcome.candidate and candidate.metrics["auc"] > 0.9
    lin = candidate.lineage
    assert lin.row_count == 300 and tuple(candidate.feature_names) == SEA_FEATURES
    assert {r.topic for r in lin.feature_log_offsets} == {bus.topic(PREDICTIONS)}
    assert sum(r.end_offset - r.start_offset for r in lin.feature_log_offsets) == 600
    assert sum(r.end_offset - r.start_offset for r in lin.label_offsets) == 301
    [artifact] = bus.records(bus.topic(MODEL_ARTIFACTS))
    assert artifact.key == candidate.artifact_sha256.encode()
    assert not failures(bus)


def test_nothing_is_consumed_until_a_revision_is_in_force_and_a_newer_one_applies_to_the_next_job() -> None:
    bus = MemoryBus()
    request(bus, "r1", 1)
    in_force: list[Revision | None] = [None]
    asked = [0]

    def definitions() -> Revision | None:
        asked[0] += 1
        return in_force[0]

    service = TrainerService(FAST, bus, sea_rows(400), definitions)
    stop = StopFlag(install_signals=False)
    thread = threading.Thread(target=run, args=(service, stop), daemon=True)
    thread.start()
    assert wait_until(lambda: asked[0] >= 3)  # the loop looked for a revision three times and found none
    assert service.last_outcome is None and bus.committed(FAST.group_id, bus.topic(RETRAIN_REQUESTED), 0) is None
    in_force[0] = SEA
    deadline = time.monotonic() + 30
    while service.last_outcome is None and time.monotonic() < deadline:
        time.sleep(0.05)
    in_force[0] = revision("sea", models={"sea": fast(min_rows=100, max_iter=7)})
    request(bus, "r2", 2)
    while len(bus.records(bus.topic(MODEL_CANDIDATES))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(20)
    first, second = [r.decode(models_pb2.ModelCandidate) for r in bus.records(bus.topic(MODEL_CANDIDATES))]
    assert (first.params["max_iter"], second.params["max_iter"]) == ("10", "7")


def test_a_regression_model_trains_from_json_labels_and_bad_labels_are_skipped_and_counted() -> None:
    bus = MemoryBus()
    rev = revision("delivery", models={"delivery_time": fast(min_rows=100, max_iter=40)})
    producer = bus.producer(client_id="test")
    flog, labels = bus.topic(FEATURES_LOG), "orders.delivered"
    rng = np.random.default_rng(1)
    for i in range(400):
        values, minutes = delivery_values(rng)
        customer, t = f"c{i % 25}", T0 + i * 1000
        producer.send(flog, events_pb2.FeatureVector(entity_id=customer, feature_set="customer_orders",
                                                     feature_set_version=1, as_of_ms=t, values=values), key=customer)
        producer.send(labels, json.dumps({"customer_id": customer, "event_time": t + 1, "minutes": minutes}).encode(),
                      key=customer)
    for bad in ({"customer_id": "c1", "event_time": T0, "minutes": "late"}, {"customer_id": "c1", "minutes": 3.0},
                b"\xffnot json"):
        producer.send(labels, bad if isinstance(bad, bytes) else json.dumps(bad).encode(), key="c1")
    producer.flush()
    before = REGISTRY.get_sample_value("mlops_trainer_labels_invalid_total", {"model": "delivery_time"}) or 0.0
    service = TrainerService(FAST, bus, KafkaTrainingData(bus, timeout=5), lambda: rev)
    outcome = service.run_once("delivery_time", reason="test")
    assert outcome.failure is None, outcome.failure
    c = outcome.candidate
    assert c.framework == "sklearn.HistGradientBoostingRegressor" and c.lineage.row_count == 400
    assert c.metrics["mae"] < 4.0 and "rmse" in c.metrics
    assert c.lineage.feature_set == "customer_orders" and list(c.feature_names) == list(rev.definitions.model(
        "delivery_time").features)
    assert (REGISTRY.get_sample_value("mlops_trainer_labels_invalid_total", {"model": "delivery_time"})
            == before + 3)
