"""The trainer's edge: retrain.requested → (coalesce) → train → model.artifacts + model.candidates, or
training.failures. Converts protobuf ↔ plain values and delegates to core.train_model."""

from __future__ import annotations

import functools
import logging
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlops.artifacts import publish_artifact
from mlops.bus import Consumer, Producer, Record, StopFlag
from mlops.contracts import ContractError, common_pb2, models_pb2
from mlops.schema import FEATURE_SET
from mlops.settings import KafkaSettings
from mlops.telemetry import (
    current_trace_ids,
    extract_context,
    link_to_ids,
    messaging_attributes,
    span_link,
    tracer,
)
from mlops.topics import MODEL_CANDIDATES, RETRAIN_REQUESTED, TRAINING_FAILURES, topic_name
from opentelemetry import trace
from prometheus_client import Counter, Histogram

from services.trainer.core import Progress, TrainConfig, TrainedModel, TrainingSetLike, train_model
from services.trainer.data import LoadData
from services.trainer.errors import TrainerError
from services.trainer.jobs import RetrainAsk, RetrainJob, coalesce
from services.trainer.settings import TrainerSettings

log = logging.getLogger("mlops.trainer")
_tracer = tracer("mlops.trainer")

TRAININGS = Counter("mlops_trainer_trainings_total", "Trainings run, by outcome", ["outcome"])
REQUESTS = Counter("mlops_trainer_requests_total", "Retrain requests consumed")
COALESCED = Counter("mlops_trainer_requests_coalesced_total", "Retrain requests answered by another's training")
DURATION = Histogram("mlops_trainer_training_seconds", "Wall time of one training (data → candidate)",
                     buckets=(0.5, 1, 2, 5, 10, 20, 40, 80, 160))


@functools.cache
def code_version() -> str:
    """`git describe --always --dirty` of the checkout, else the installed package version."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=root, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        if out:
            return f"git:{out}"
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"mlops-platform=={version('mlops-platform')}"
    except PackageNotFoundError:
        return "unknown"


def train_config(settings: TrainerSettings, seed: int | None = None) -> TrainConfig:
    return TrainConfig(
        seed=settings.seed if seed is None else seed, holdout_fraction=settings.holdout_fraction,
        holdout_max_rows=settings.holdout_max_rows, min_rows=settings.min_rows, max_iter=settings.max_iter,
        learning_rate=settings.learning_rate, max_leaf_nodes=settings.max_leaf_nodes, max_depth=settings.max_depth,
        l2_regularization=settings.l2_regularization, parity_tolerance=settings.parity_tolerance,
        onnx_opset=settings.onnx_opset, max_rows=settings.max_rows,
    )


# --- converters ------------------------------------------------------------------------------------------


def ask_from_proto(msg: models_pb2.RetrainRequest) -> RetrainAsk:
    return RetrainAsk(
        model_name=msg.model_name, request_id=msg.request_id, reason=msg.reason, detector=msg.detector,
        requested_at_ms=msg.requested_at_ms, requested_by=msg.requested_by,
        seed=msg.seed if msg.HasField("seed") else None,
    )


def _ranges(ranges: object) -> list[common_pb2.OffsetRange]:
    return [common_pb2.OffsetRange(topic=r.topic, partition=r.partition, start_offset=r.start_offset,
                                   end_offset=r.end_offset) for r in ranges]  # type: ignore[attr-defined]


def candidate_to_proto(
    job: RetrainJob, model: TrainedModel, data: TrainingSetLike, version_of_code: str
) -> models_pb2.ModelCandidate:
    trace_id, span_id = current_trace_ids()
    lineage = models_pb2.Lineage(
        feature_log_offsets=_ranges(data.feature_log_ranges), label_offsets=_ranges(data.label_ranges),
        feature_set=FEATURE_SET.name, feature_set_version=FEATURE_SET.version, code_version=version_of_code,
        seed=job.seed, row_count=model.train_rows + model.holdout_rows, data_start_ms=model.data_start_ms,
        data_end_ms=model.data_end_ms, retrain_request_id=job.primary.request_id,
        retrain_reason=job.primary.reason, coalesced_request_ids=list(job.request_ids),
    )
    holdout = models_pb2.Holdout(
        feature_names=list(model.feature_names), rows=len(model.holdout_y),
        features_f32=model.holdout_X.astype("<f4").tobytes(), labels=[float(v) for v in model.holdout_y],
    )
    return models_pb2.ModelCandidate(
        model_name=job.model_name, candidate_id=uuid.uuid4().hex, artifact_sha256=model.sha256,
        artifact_size=len(model.onnx_bytes), framework=model.framework, metrics=model.metrics,
        params=model.params, lineage=lineage, feature_names=list(model.feature_names), holdout=holdout,
        created_at_ms=int(time.time() * 1000), trace_id=trace_id, span_id=span_id,
    )


@dataclass(frozen=True)
class Outcome:
    job: RetrainJob
    candidate: models_pb2.ModelCandidate | None = None
    failure: models_pb2.TrainingFailed | None = None
    seconds: float = 0.0


class TrainerService:
    """Runs retrain jobs: load the data version, train, publish. Used by the Kafka loop and by `mlops train
    --local`; `load_data` is injectable (the offline store in production)."""

    def __init__(self, settings: TrainerSettings, kafka_settings: KafkaSettings, producer: Producer,
                 load_data: LoadData, version_of_code: str | None = None):
        self.settings = settings
        self.kafka_settings = kafka_settings
        self.producer = producer
        self.load_data = load_data
        self.code_version = version_of_code or settings.code_version or code_version()
        self.candidates_topic = topic_name(MODEL_CANDIDATES, kafka_settings)
        self.failures_topic = topic_name(TRAINING_FAILURES, kafka_settings)
        self.last_outcome: Outcome | None = None

    def run_job(self, job: RetrainJob, progress: Progress = lambda s, f: None) -> Outcome:
        """Train once for `job` and publish the candidate (artifact first) or a TrainingFailed; flushes."""
        started = time.perf_counter()
        with _tracer.start_as_current_span("trainer.train") as span:
            span.set_attributes({"mlops.model": job.model_name, "mlops.seed": job.seed,
                                 "mlops.retrain_request_id": job.primary.request_id,
                                 "mlops.coalesced_requests": len(job.request_ids)})
            try:
                progress("load", 0.0)
                data = self.load_data(None, None)
                model = train_model(data, train_config(self.settings, job.seed), FEATURE_SET.names, progress)
                progress("publish", 0.95)
                candidate = candidate_to_proto(job, model, data, self.code_version)
                digest = publish_artifact(self.producer, self.kafka_settings, model.onnx_bytes)
                assert digest == model.sha256
                self.producer.send(self.candidates_topic, candidate, key=job.model_name)
                self.producer.flush()
                outcome = Outcome(job, candidate=candidate, seconds=time.perf_counter() - started)
                span.set_attributes({"mlops.sha256": model.sha256, "mlops.rows": candidate.lineage.row_count})
                TRAININGS.labels("candidate").inc()
                log.info("candidate published", extra={"fields": {
                    "model": job.model_name, "sha256": model.sha256, "rows": candidate.lineage.row_count,
                    "metrics": dict(model.metrics), "seconds": round(outcome.seconds, 3),
                    "requests": list(job.request_ids)}})
            except Exception as exc:  # every failure becomes a TrainingFailed with a clear reason
                reason = str(exc) if isinstance(exc, TrainerError) else f"{type(exc).__name__}: {exc}"
                span.record_exception(exc)
                span.set_status(trace.Status(trace.StatusCode.ERROR, reason))
                failure = models_pb2.TrainingFailed(
                    model_name=job.model_name, retrain_request_id=job.primary.request_id, reason=reason,
                    failed_at_ms=int(time.time() * 1000),
                )
                self.producer.send(self.failures_topic, failure, key=job.model_name)
                self.producer.flush()
                outcome = Outcome(job, failure=failure, seconds=time.perf_counter() - started)
                TRAININGS.labels("failed").inc()
                log.error("training failed", extra={"fields": {"model": job.model_name, "reason": reason,
                                                               "requests": list(job.request_ids)}})
        DURATION.observe(outcome.seconds)
        self.last_outcome = outcome
        return outcome


def _decode_asks(records: list[Record]) -> tuple[list[RetrainAsk], list[trace.Link]]:
    """The asks, and span links to the drift evidence each request names in its body (trace_id / span_id) and
    to the context in its headers (one link per distinct span)."""
    asks, links, seen = [], [], set()
    for rec in records:
        candidates = [span_link(rec.headers)]
        try:
            msg = rec.decode(models_pb2.RetrainRequest)
            asks.append(ask_from_proto(msg))
            candidates.append(link_to_ids(msg.trace_id, msg.span_id))
        except ContractError as exc:  # failure policy: skip and log (an undecodable request names no model)
            log.error("skipping undecodable retrain request", extra={"fields": {"error": str(exc)}})
        for link in candidates:
            if link is not None and (key := (link.context.trace_id, link.context.span_id)) not in seen:
                seen.add(key)
                links.append(link)
    return asks, links


def run(service: TrainerService, stop: StopFlag, on_ready: Callable[[], None] | None = None) -> int:
    """Consume retrain.requested until `stop`: collect a burst (until the topic is `coalesce_window_s` quiet, at
    most `coalesce_max_s`), train once per (model, seed), then commit. Returns the number of trainings."""
    s = service.settings
    topic = topic_name(RETRAIN_REQUESTED, service.kafka_settings)
    consumer = Consumer(service.kafka_settings, group_id=s.group_id, topics=[topic], client_id="trainer")
    trainings = 0
    try:
        if on_ready is not None:
            on_ready()
        while not stop.is_set():
            records = consumer.consume(100, s.poll_timeout_s)
            if not records:
                continue
            burst_end = time.monotonic() + s.coalesce_max_s
            while not stop.is_set() and time.monotonic() < burst_end:
                more = consumer.consume(100, min(s.coalesce_window_s, max(0.0, burst_end - time.monotonic())))
                if not more:
                    break
                records.extend(more)
            asks, links = _decode_asks(records)
            REQUESTS.inc(len(records))
            jobs = coalesce(asks, s.default_model, s.seed)
            COALESCED.inc(max(0, len(asks) - len(jobs)))
            for job in jobs:
                with _tracer.start_as_current_span(
                    "trainer.retrain", links=links, context=extract_context(records[-1].headers),
                    attributes=messaging_attributes("process", topic, group=s.group_id),
                ):
                    service.run_job(job)
                trainings += 1
            consumer.commit(records)  # outcomes (candidate or failure) are flushed: the requests are answered
    finally:
        consumer.close()
    return trainings
