"""The trainer's edge: retrain.requested → (coalesce) → train the declared model → model.artifacts +
model.candidates, or training.failures; a bring-your-own registration → check and score its ONNX bytes →
model.candidates. Decodes requests, delegates to core, encodes and publishes the outcome. The definitions in force
come from a DefinitionsFollower: nothing is consumed until a revision exists."""

from __future__ import annotations

import functools
import logging
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.artifacts import ArtifactError, ArtifactReader, publish_artifact
from mlops.bus import Bus, Consumer, FailurePolicy, Record, StopFlag, run_loop
from mlops.contracts import ContractError, models_pb2
from mlops.definitions import Revision
from mlops.definitions.store import DefinitionsFollower
from mlops.offline_store import OfflineStoreError, TrainingDataSource, TrainingSet, TrainingSpec
from mlops.telemetry import (
    current_trace_ids,
    extract_context,
    link_to_ids,
    messaging_attributes,
    span_link,
    tracer,
)
from mlops.topics import MODEL_CANDIDATES, MODEL_REGISTRATIONS, RETRAIN_REQUESTED, TRAINING_FAILURES
from opentelemetry import trace

from services.trainer import metrics
from services.trainer.convert import ask_from_proto, ask_from_registration, candidate_to_proto, failure_to_proto
from services.trainer.core import (
    Progress,
    RetrainAsk,
    RetrainJob,
    coalesce,
    evaluate_byo,
    failure_reason,
    since_change,
    train_config,
    train_model,
)
from services.trainer.errors import DataUnavailable, InsufficientData, NoDefinitions, UnknownModel
from services.trainer.settings import TrainerSettings

log = logging.getLogger("mlops.trainer")
_tracer = tracer("mlops.trainer")


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


@dataclass(frozen=True)
class Outcome:
    """What one training published: the candidate, or the failure."""

    job: RetrainJob
    candidate: models_pb2.ModelCandidate | None = None
    failure: models_pb2.TrainingFailed | None = None
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """The outcome as plain JSON values: what `python -m services.trainer --once` prints."""
        out: dict[str, Any] = {"model": self.job.model_name, "request_id": self.job.primary.request_id}
        if self.candidate is not None:
            c = self.candidate
            out |= {"version": c.candidate_id, "candidate_id": c.candidate_id, "sha256": c.artifact_sha256,
                    "rows": c.lineage.row_count, "metrics": dict(sorted(c.metrics.items()))}
        else:
            out["error"] = self.failure.reason if self.failure is not None else "no outcome"
        out["seconds"] = round(self.seconds, 3)
        return out


class TrainerService:
    """Runs retrain jobs of declared models: snapshot the model's training data (its offsets are the data version),
    train (or, for a bring-your-own model, check and score), publish. Used by the consume loop and by `--once`;
    `data` is the offline store on the bus in production; `definitions()` is the revision in force (a
    DefinitionsFollower's `current`), read once per job so a newer revision applies from the next job on."""

    def __init__(self, settings: TrainerSettings, bus: Bus, data: TrainingDataSource,
                 definitions: Callable[[], Revision | None], version_of_code: str | None = None):
        self.settings = settings
        self.bus = bus
        self.producer = bus.producer(client_id="trainer")
        self.data = data
        self.definitions = definitions
        self.code_version = version_of_code or settings.code_version or code_version()
        self.requests_topic = bus.topic(RETRAIN_REQUESTED)
        self.registrations_topic = bus.topic(MODEL_REGISTRATIONS)
        self.candidates_topic = bus.topic(MODEL_CANDIDATES)
        self.failures_topic = bus.topic(TRAINING_FAILURES)
        self.last_outcome: Outcome | None = None
        self._artifacts: ArtifactReader | None = None

    def run_once(self, model: str, *, reason: str, seed: int | None = None, request_id: str | None = None,
                 progress: Progress = lambda s, f: None) -> Outcome:
        """One retrain of `model` asked for in-process (no retrain.requested record), published like any other;
        `seed` None: the model's declared one."""
        request_id = request_id or f"once-{uuid.uuid4().hex[:12]}"
        ask = RetrainAsk(model, request_id, reason, "manual", int(time.time() * 1000), "trainer --once", seed)
        return self.run_job(RetrainJob(model, seed, ask, (request_id,)), progress)

    def run_job(self, job: RetrainJob, progress: Progress = lambda s, f: None) -> Outcome:
        """Train once for `job` (or check and score its bring-your-own model) and publish the candidate (artifact
        first) or a TrainingFailed; flushes."""
        started = time.perf_counter()
        kind = "byo" if job.byo else "retrain"
        with _tracer.start_as_current_span("trainer.train") as span:
            span.set_attributes({"mlops.model": job.model_name, "mlops.kind": kind,
                                 "mlops.retrain_request_id": job.primary.request_id,
                                 "mlops.coalesced_requests": len(job.request_ids)})
            try:
                progress("load", 0.0)
                revision, spec = self._declared(job.model_name)
                config = train_config(spec.model, self.settings, job.seed)
                span.set_attributes({"mlops.seed": config.seed, "mlops.definitions_revision": revision.number})
                data = self._training_set(spec)
                if not job.byo and job.primary.change_point_ms:
                    data = self._after_change(spec, data, job.primary.change_point_ms, config.min_rows)
                    span.set_attribute("mlops.change_point_ms", job.primary.change_point_ms)
                if job.byo:
                    onnx_bytes = self._artifact(job.primary.artifact_sha256)
                    model = evaluate_byo(onnx_bytes, data, config, spec.feature_names)
                else:
                    model = train_model(data, config, spec.feature_names, progress)
                progress("publish", 0.95)
                candidate = candidate_to_proto(job, model, data, self.code_version, current_trace_ids(), revision,
                                               spec.views, config.seed)
                if not job.byo:  # a registered model's bytes are on model.artifacts already
                    digest = publish_artifact(self.producer, self.bus, model.onnx_bytes)
                    assert digest == model.sha256
                self.producer.send(self.candidates_topic, candidate, key=job.model_name)
                self.producer.flush()
                outcome = Outcome(job, candidate=candidate, seconds=time.perf_counter() - started)
                span.set_attributes({"mlops.sha256": model.sha256, "mlops.rows": candidate.lineage.row_count})
                metrics.TRAININGS.labels(job.model_name, "candidate").inc()
                log.info("candidate published", extra={"fields": {
                    "model": job.model_name, "kind": kind, "sha256": model.sha256,
                    "rows": candidate.lineage.row_count, "metrics": dict(model.metrics),
                    "seconds": round(outcome.seconds, 3), "requests": list(job.request_ids)}})
            except Exception as exc:  # every failure becomes a TrainingFailed with a clear reason
                reason = failure_reason(exc)
                span.record_exception(exc)
                span.set_status(trace.Status(trace.StatusCode.ERROR, reason))
                failure = failure_to_proto(job, reason)
                self.producer.send(self.failures_topic, failure, key=job.model_name)
                self.producer.flush()
                outcome = Outcome(job, failure=failure, seconds=time.perf_counter() - started)
                metrics.TRAININGS.labels(job.model_name, "failed").inc()
                log.error("training failed", extra={"fields": {"model": job.model_name, "kind": kind,
                                                               "reason": reason, "requests": list(job.request_ids)}})
        metrics.DURATION.observe(outcome.seconds)
        self.last_outcome = outcome
        return outcome

    def _declared(self, model: str) -> tuple[Revision, TrainingSpec]:
        """The revision in force and what `model` trains on there (features.log joined by entity time, or, for a
        label `join: request_id`, the prediction log joined by request id); a model it does not declare fails the
        job naming it."""
        revision = self.definitions()
        if revision is None:
            raise NoDefinitions()
        try:
            spec = TrainingSpec.of(revision.definitions, model)
        except KeyError:
            raise UnknownModel(model, (m.name for m in revision.definitions.models), revision.number) from None
        return revision, spec

    def _training_set(self, spec: TrainingSpec) -> TrainingSet:
        try:
            data = self.data.training_set(spec)
        except OfflineStoreError as exc:
            raise DataUnavailable("offline store", str(exc)) from exc
        if bad := data.stats.get("labels_invalid", 0):
            metrics.LABELS_INVALID.labels(spec.model.name).inc(bad)
        return data

    def _after_change(self, spec: TrainingSpec, data: TrainingSet, change_point_ms: int, min_rows: int
                      ) -> TrainingSet:
        """The rows labelled after the change point, once there are `min_rows` of them (re-reading the data while
        labels of the new concept arrive, at most `change_point_wait_s`)."""
        s = self.settings
        deadline = time.monotonic() + s.change_point_wait_s
        while True:
            post = since_change(data, change_point_ms)
            if len(post) >= min_rows or time.monotonic() >= deadline:
                break
            log.info("waiting for rows after the change point", extra={"fields": {
                "model": spec.model.name, "change_point_ms": change_point_ms, "rows": len(post),
                "needed": min_rows}})
            time.sleep(s.change_point_poll_s)
            data = self._training_set(spec)
        if len(post) < min_rows:
            raise InsufficientData(len(post), min_rows, f"labelled after the change point {change_point_ms}")
        return post

    def _artifact(self, sha256: str) -> bytes:
        if self._artifacts is None:
            self._artifacts = ArtifactReader(self.bus)
        try:
            return self._artifacts.get(sha256, timeout=self.settings.artifact_timeout_s)
        except ArtifactError as exc:
            raise DataUnavailable("model.artifacts", str(exc)) from exc

    def answer(self, records: list[Record]) -> int:
        """Run once per (model, seed, artifact) the requests in `records` ask for; returns the number of jobs."""
        s = self.settings
        asks, links = decode_asks(records, self.registrations_topic)
        metrics.REQUESTS.inc(len(records))
        jobs = coalesce(asks, s.default_model)
        metrics.COALESCED.inc(max(0, len(asks) - len(jobs)))
        for job in jobs:
            with _tracer.start_as_current_span(
                f"process {self.requests_topic}", links=links, context=extract_context(records[-1].headers),
                kind=trace.SpanKind.CONSUMER,
                attributes=messaging_attributes("process", self.requests_topic, group=s.group_id),
            ):
                self.run_job(job)
        return len(jobs)


def decode_asks(records: list[Record], registrations_topic: str = "") -> tuple[list[RetrainAsk], list[trace.Link]]:
    """The asks (retrain requests, and model registrations from `registrations_topic`), and span links to the
    drift evidence each request names in its body (trace_id / span_id) and to the context in its headers (one link
    per distinct span)."""
    asks, links, seen = [], [], set()
    for rec in records:
        candidates = [span_link(rec.headers)]
        try:
            msg: models_pb2.RetrainRequest | models_pb2.ModelRegistration
            if rec.topic == registrations_topic:
                msg = rec.decode(models_pb2.ModelRegistration)
                asks.append(ask_from_registration(msg))
            else:
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


class _Bursts:
    """The retrain.requested consumer as run_loop sees it: once records arrive, `consume` keeps reading until the
    topic has been `coalesce_window_s` quiet (at most `coalesce_max_s`), so a burst of requests for a model is one
    batch, trained once and committed after its outcomes are published."""

    def __init__(self, consumer: Consumer, settings: TrainerSettings, stop: StopFlag):
        self._consumer, self._settings, self._stop = consumer, settings, stop
        self.group_id = consumer.group_id

    def consume(self, max_records: int = 100, timeout: float = 1.0) -> list[Record]:
        records = self._consumer.consume(max_records, timeout)
        if not records:
            return records
        s = self._settings
        burst_end = time.monotonic() + s.coalesce_max_s
        while not self._stop.is_set() and time.monotonic() < burst_end:
            quiet = min(s.coalesce_window_s, max(0.0, burst_end - time.monotonic()))
            more = self._consumer.consume(max_records, quiet)
            if not more:
                break
            records.extend(more)
        return records

    def commit(self, records: list[Record]) -> None:
        self._consumer.commit(records)

    def lag(self) -> dict[tuple[str, int], int]:
        return self._consumer.lag()

    def close(self) -> None:
        self._consumer.close()


def follow_definitions(bus: Bus, settings: TrainerSettings) -> DefinitionsFollower:
    """The revision in force, read now and followed on a daemon thread (a newer one applies from the next job)."""
    follower = DefinitionsFollower(bus, client_id="trainer-definitions")
    follower.start(settings.definitions_timeout_s)
    return follower


def run(service: TrainerService, stop: StopFlag, on_ready: Callable[[], None] | None = None) -> int:
    """Answer retrain.requested until `stop`: each burst of requests trains once per (model, seed), then the bus
    loop commits it (every outcome, candidate or failure, is flushed first). Until a definitions revision is in
    force nothing is consumed (the requests wait in Kafka). Returns the number of trainings."""
    s = service.settings
    waited = False
    while service.definitions() is None and not stop.is_set():
        if not waited:
            log.warning("no definitions revision yet: waiting before consuming retrain requests")
            waited = True
        stop.wait(s.poll_timeout_s)
    if stop.is_set():
        return 0
    consumer = service.bus.consumer(group_id=s.group_id, topics=[service.requests_topic, service.registrations_topic],
                                    client_id="trainer")
    trainings = 0

    def answer(records: list[Record]) -> None:
        nonlocal trainings
        trainings += service.answer(records)

    if on_ready is not None:
        on_ready()
    # an outcome that cannot be published stops the service uncommitted: the requests are read again
    run_loop(_Bursts(consumer, s, stop), handle_batch=answer, stop=stop, policy=FailurePolicy.STOP,
             producer=service.producer, batch_size=100, poll_timeout=s.poll_timeout_s)
    return trainings
