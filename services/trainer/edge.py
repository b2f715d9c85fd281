"""The trainer's edge: retrain.requested → (coalesce) → train → model.artifacts + model.candidates, or
training.failures. Decodes requests, delegates to core, encodes and publishes the outcome."""

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

from mlops.artifacts import publish_artifact
from mlops.bus import Bus, Consumer, FailurePolicy, Record, StopFlag, run_loop
from mlops.contracts import ContractError, models_pb2
from mlops.offline_store import OfflineStoreError, TrainingDataSource, TrainingSet
from mlops.schema import FEATURE_SET
from mlops.telemetry import (
    current_trace_ids,
    extract_context,
    link_to_ids,
    messaging_attributes,
    span_link,
    tracer,
)
from mlops.topics import MODEL_CANDIDATES, RETRAIN_REQUESTED, TRAINING_FAILURES
from opentelemetry import trace

from services.trainer import metrics
from services.trainer.convert import ask_from_proto, candidate_to_proto, failure_to_proto
from services.trainer.core import (
    Progress,
    RetrainAsk,
    RetrainJob,
    coalesce,
    failure_reason,
    train_config,
    train_model,
)
from services.trainer.errors import DataUnavailable
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
    """Runs retrain jobs: snapshot the training data (its offsets are the data version), train, publish. Used by
    the consume loop and by `--once`; `data` is the offline store on the bus in production."""

    def __init__(self, settings: TrainerSettings, bus: Bus, data: TrainingDataSource,
                 version_of_code: str | None = None):
        self.settings = settings
        self.bus = bus
        self.producer = bus.producer(client_id="trainer")
        self.data = data
        self.code_version = version_of_code or settings.code_version or code_version()
        self.requests_topic = bus.topic(RETRAIN_REQUESTED)
        self.candidates_topic = bus.topic(MODEL_CANDIDATES)
        self.failures_topic = bus.topic(TRAINING_FAILURES)
        self.last_outcome: Outcome | None = None

    def run_once(self, model: str, *, reason: str, seed: int | None = None, request_id: str | None = None,
                 progress: Progress = lambda s, f: None) -> Outcome:
        """One retrain of `model` asked for in-process (no retrain.requested record), published like any other."""
        request_id = request_id or f"once-{uuid.uuid4().hex[:12]}"
        seed = self.settings.seed if seed is None else seed
        ask = RetrainAsk(model, request_id, reason, "manual", int(time.time() * 1000), "trainer --once", seed)
        return self.run_job(RetrainJob(model, seed, ask, (request_id,)), progress)

    def run_job(self, job: RetrainJob, progress: Progress = lambda s, f: None) -> Outcome:
        """Train once for `job` and publish the candidate (artifact first) or a TrainingFailed; flushes."""
        started = time.perf_counter()
        with _tracer.start_as_current_span("trainer.train") as span:
            span.set_attributes({"mlops.model": job.model_name, "mlops.seed": job.seed,
                                 "mlops.retrain_request_id": job.primary.request_id,
                                 "mlops.coalesced_requests": len(job.request_ids)})
            try:
                progress("load", 0.0)
                data = self._training_set()
                model = train_model(data, train_config(self.settings, job.seed), FEATURE_SET.names, progress)
                progress("publish", 0.95)
                candidate = candidate_to_proto(job, model, data, self.code_version, current_trace_ids())
                digest = publish_artifact(self.producer, self.bus, model.onnx_bytes)
                assert digest == model.sha256
                self.producer.send(self.candidates_topic, candidate, key=job.model_name)
                self.producer.flush()
                outcome = Outcome(job, candidate=candidate, seconds=time.perf_counter() - started)
                span.set_attributes({"mlops.sha256": model.sha256, "mlops.rows": candidate.lineage.row_count})
                metrics.TRAININGS.labels("candidate").inc()
                log.info("candidate published", extra={"fields": {
                    "model": job.model_name, "sha256": model.sha256, "rows": candidate.lineage.row_count,
                    "metrics": dict(model.metrics), "seconds": round(outcome.seconds, 3),
                    "requests": list(job.request_ids)}})
            except Exception as exc:  # every failure becomes a TrainingFailed with a clear reason
                reason = failure_reason(exc)
                span.record_exception(exc)
                span.set_status(trace.Status(trace.StatusCode.ERROR, reason))
                failure = failure_to_proto(job, reason)
                self.producer.send(self.failures_topic, failure, key=job.model_name)
                self.producer.flush()
                outcome = Outcome(job, failure=failure, seconds=time.perf_counter() - started)
                metrics.TRAININGS.labels("failed").inc()
                log.error("training failed", extra={"fields": {"model": job.model_name, "reason": reason,
                                                               "requests": list(job.request_ids)}})
        metrics.DURATION.observe(outcome.seconds)
        self.last_outcome = outcome
        return outcome

    def _training_set(self) -> TrainingSet:
        try:
            return self.data.training_set()
        except OfflineStoreError as exc:
            raise DataUnavailable("offline store", str(exc)) from exc

    def answer(self, records: list[Record]) -> int:
        """Train once per (model, seed) the requests in `records` ask for; returns the number of trainings."""
        s = self.settings
        asks, links = decode_asks(records)
        metrics.REQUESTS.inc(len(records))
        jobs = coalesce(asks, s.default_model, s.seed)
        metrics.COALESCED.inc(max(0, len(asks) - len(jobs)))
        for job in jobs:
            with _tracer.start_as_current_span(
                "trainer.retrain", links=links, context=extract_context(records[-1].headers),
                attributes=messaging_attributes("process", self.requests_topic, group=s.group_id),
            ):
                self.run_job(job)
        return len(jobs)


def decode_asks(records: list[Record]) -> tuple[list[RetrainAsk], list[trace.Link]]:
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


def run(service: TrainerService, stop: StopFlag, on_ready: Callable[[], None] | None = None) -> int:
    """Answer retrain.requested until `stop`: each burst of requests trains once per (model, seed), then the bus
    loop commits it (every outcome, candidate or failure, is flushed first). Returns the number of trainings."""
    s = service.settings
    consumer = service.bus.consumer(group_id=s.group_id, topics=[service.requests_topic], client_id="trainer")
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
