"""Integration: the trainer against the real broker (offline store on features.log + labels)."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
from mlops.artifacts import ArtifactReader
from mlops.bus import Consumer, KafkaBus, Producer, StopFlag
from mlops.contracts import events_pb2, models_pb2
from mlops.definitions import Definitions, Revision, latest, plan
from mlops.definitions.store import publish, read_revisions
from mlops.offline_store import KafkaTrainingData, OffsetRange, TrainingSet, TrainingSpec
from mlops.settings import KafkaSettings
from mlops.topics import FEATURES_LOG, LABELS, MODEL_CANDIDATES, RETRAIN_REQUESTED, TRAINING_FAILURES, topic_name
from testkit import committed, end_offsets, read_topic, wait_until
from trainer_helpers import SEA_FEATURES, T0, fast, revision, sea_values

from services.trainer.core import RetrainAsk, RetrainJob
from services.trainer.edge import TrainerService, run
from services.trainer.settings import TrainerSettings

FAST = TrainerSettings(coalesce_window_s=1.0, coalesce_max_s=4.0, poll_timeout_s=0.2, code_version="test")
SEA = revision("sea", models={"sea": fast(min_rows=100, max_iter=15)})


def declare(kafka: KafkaSettings, definitions: Definitions = SEA.definitions) -> Revision:
    """Apply `definitions` (default: the test-sized SEA ones) on top of whatever is in force, as `mlops apply`
    does, and return the revision now in force."""
    bus = KafkaBus(kafka)
    current = latest(read_revisions(bus, client_id="test-apply", timeout=10))
    applied = plan(current, definitions, "test").revision
    if applied is not None:
        publish(bus, applied, client_id="test-apply")
    return applied or current


def feed(kafka: KafkaSettings, n: int, start: int = 0, seed: int = 0) -> None:
    """n labelled SEA rows: one FeatureVector per event and a Label 1 ms later, under the test's prefix."""
    rng = np.random.default_rng(seed + start)
    producer = Producer(kafka, client_id="test-feed")
    for i in range(start, start + n):
        values, label = sea_values(rng)
        entity, t = f"e{i % 20}", T0 + i * 10
        producer.send(topic_name(FEATURES_LOG, kafka), events_pb2.FeatureVector(
            entity_id=entity, feature_set="entity_activity", feature_set_version=1, as_of_ms=t, values=values,
            event_id=f"ev{i}"), key=entity)
        producer.send(topic_name(LABELS, kafka), events_pb2.Label(
            entity_id=entity, event_time_ms=t + 1, label=label, event_id=f"ev{i}"), key=entity)
    producer.flush()


def read_all(kafka: KafkaSettings, spec, message_type, want: int, timeout: float) -> list:
    consumer = Consumer(kafka, group_id=f"test-{uuid.uuid4().hex[:6]}", topics=[topic_name(spec, kafka)],
                        client_id="test")
    out: list = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(out) < want:
            out += [r.decode(message_type) for r in consumer.consume(100, 0.5)]
    finally:
        consumer.close()
    return out


def trainer(kafka: KafkaSettings, timeout: float = 10.0) -> TrainerService:
    """The trainer as the service builds it: the offline store on the bus, labels within the feature log."""
    bus = KafkaBus(kafka)
    return TrainerService(FAST, bus, KafkaTrainingData(bus, timeout=timeout, labels_within_features=True),
                          lambda: SEA)


class Pinned:
    """A training-data source that always reads the ranges a candidate recorded (its data version)."""

    def __init__(self, source: KafkaTrainingData, features: list[OffsetRange], labels: list[OffsetRange]):
        self.source, self.features, self.labels = source, features, labels

    def snapshot(self, spec: TrainingSpec) -> tuple[list[OffsetRange], list[OffsetRange]]:
        return self.features, self.labels

    def training_set(self, spec: TrainingSpec, feature_log_ranges=None, label_ranges=None) -> TrainingSet:  # noqa: ANN001
        return self.source.training_set(spec, self.features, self.labels)


def job(model: str = "sea", rid: str | None = None) -> RetrainJob:
    rid = rid or uuid.uuid4().hex
    return RetrainJob(model, None, RetrainAsk(model, rid, "test drift"), (rid,))


def test_candidate_lineage_artifact_and_reproducible_bytes_from_recorded_offsets(kafka_settings) -> None:
    feed(kafka_settings, 600)
    bus = KafkaBus(kafka_settings)
    # every label of this hand-made feed is 1 ms after its own feature row: keep all of them (the default leaves out
    # labels beyond the feature log's watermark, which is the lagging-pipeline guard, not what this test is about)
    data = KafkaTrainingData(bus, timeout=30, labels_within_features=False)
    service = TrainerService(FAST, bus, data, lambda: SEA)
    first = service.run_job(job())
    assert first.failure is None, first.failure
    cand = first.candidate
    lin = cand.lineage
    assert lin.row_count == 600 and lin.seed == 42 and lin.code_version == "test"
    assert sum(r.end_offset - r.start_offset for r in lin.feature_log_offsets) == 600
    assert lin.data_start_ms == T0 + 1 and lin.data_end_ms == T0 + 599 * 10 + 1
    assert cand.holdout.rows == 120 and len(cand.holdout.features_f32) == 120 * 6 * 4
    assert tuple(cand.feature_names) == SEA_FEATURES and cand.metrics["auc"] > 0.9
    onnx_bytes = ArtifactReader(kafka_settings).get(cand.artifact_sha256, timeout=10)
    assert len(onnx_bytes) == cand.artifact_size
    published = read_all(kafka_settings, MODEL_CANDIDATES, models_pb2.ModelCandidate, 1, 10)
    assert [c.candidate_id for c in published] == [cand.candidate_id]

    # more data arrives; retraining on the RECORDED offsets with the same seed gives the same bytes
    feed(kafka_settings, 200, start=600)
    pinned = TrainerService(FAST, bus, Pinned(data, [OffsetRange.from_proto(r) for r in lin.feature_log_offsets],
                                              [OffsetRange.from_proto(r) for r in lin.label_offsets]),
                            lambda: SEA)
    again = pinned.run_job(job())
    assert again.candidate.artifact_sha256 == cand.artifact_sha256
    newer = service.run_job(job())  # a fresh snapshot sees the new rows: a different model
    assert newer.candidate.lineage.row_count == 800
    assert newer.candidate.artifact_sha256 != cand.artifact_sha256


def test_a_burst_of_requests_trains_once(kafka_settings) -> None:
    feed(kafka_settings, 300)
    producer = Producer(kafka_settings, client_id="test-burst")
    ids = [f"burst-{i}" for i in range(5)]
    for i, rid in enumerate(ids):
        producer.send(topic_name(RETRAIN_REQUESTED, kafka_settings), models_pb2.RetrainRequest(
            model_name="sea", request_id=rid, reason=f"drift {i}", requested_at_ms=T0 + i), key="sea")
    producer.flush()
    service = trainer(kafka_settings, timeout=30)
    stop = StopFlag(install_signals=False)
    trainings: list[int] = []
    thread = threading.Thread(target=lambda: trainings.append(run(service, stop)), daemon=True)
    thread.start()
    requests = topic_name(RETRAIN_REQUESTED, kafka_settings)
    try:
        # every request consumed and committed: the loop commits only after the burst's outcomes are flushed, so
        # every candidate these requests will ever cause is on the broker now
        wait_until(lambda: sum(committed(kafka_settings, FAST.group_id, requests).values()) == len(ids),
                   timeout=120, interval=0.2)
        got = [r.decode(models_pb2.ModelCandidate)
               for r in read_topic(kafka_settings, topic_name(MODEL_CANDIDATES, kafka_settings))]
    finally:
        stop.set()
        thread.join(20)
    assert len(got) == 1 and trainings == [1]
    assert list(got[0].lineage.coalesced_request_ids) == ids
    assert got[0].lineage.retrain_request_id == "burst-4"


def test_training_without_data_publishes_training_failed(kafka_settings) -> None:
    service = trainer(kafka_settings)
    outcome = service.run_job(job(rid="r-empty"))
    assert outcome.candidate is None
    failures = read_all(kafka_settings, TRAINING_FAILURES, models_pb2.TrainingFailed, 1, 10)
    assert len(failures) == 1 and failures[0].retrain_request_id == "r-empty"
    assert "not enough labelled rows to train: 0 < 100" in failures[0].reason


def test_undecodable_request_is_skipped_not_fatal(kafka_settings) -> None:
    bad = b"\xff\x00not protobuf"
    producer = Producer(kafka_settings, client_id="test-bad")
    producer.send(topic_name(RETRAIN_REQUESTED, kafka_settings), bad, key="sea")
    producer.flush()
    service = trainer(kafka_settings)
    stop = StopFlag(install_signals=False)
    thread = threading.Thread(target=run, args=(service, stop), daemon=True)
    thread.start()
    requests = topic_name(RETRAIN_REQUESTED, kafka_settings)
    try:
        # the record was skipped (failure policy: skip and log) and committed past, so it is not read again
        wait_until(lambda: committed(kafka_settings, FAST.group_id, requests) == end_offsets(kafka_settings, requests),
                   timeout=120, interval=0.2, message="the undecodable request was never committed past")
        assert thread.is_alive(), "the loop died on an undecodable request"
    finally:
        stop.set()
        thread.join(20)
    assert not thread.is_alive() and service.last_outcome is None
    assert sum(end_offsets(kafka_settings, requests).values()) == 1
