"""The Kafka edge: predictions + every declared model's labels in, RetrainRequest and ChallengerVerdict out.
Decodes, delegates to the DriftMonitor core, encodes.

Challengers: rows logged with a second role (shadow, canary, guard) go to the core's `ChallengerJudge`, never to
the drift detectors; each verdict it reaches is published once on challenger.verdicts (keyed by model, flushed
before the offsets are committed like a retrain request). The verdicts already published are read back before
consuming, so a restarted monitor does not judge the same challenger and phase again.

Definitions: a `DefinitionsFollower` keeps the revision in force. Until one exists the monitor consumes nothing
(records wait in Kafka) and is not ready. A newer revision is turned, on the follower's thread, into one immutable
`_Routes` (the core's `MonitorConfig`, the topics to read, which models read each label topic) and swapped in by
one assignment; the consuming thread takes it up at its next record or idle poll (`DriftMonitor.configure`), so
a batch never sees half a revision. When the set of label topics changes, the consume loop ends after the batch
(outputs flushed, offsets committed) and a new consumer of the same group subscribes to the new set — no restart.

Labels: a record on a label topic is read for each model declaring that topic, with `decode_label` (a `Label`
protobuf when the producer said so, JSON with the entity's id field otherwise, checked per task). A label that
does not fit is counted (`mlops_monitor_bad_labels_total{model,field}`) and logged with the reason — at most once
a second per model, with the number left unlogged — and never stops the loop.

Delivery and restart: offsets are committed after each batch has been handled and any RetrainRequest it caused was
acknowledged (mlops.bus.run_loop), so a restart resumes from the committed offsets. Detector state is NOT
checkpointed: after a restart each model's state is reset and its reference is rebuilt from the first window of
predictions read (the same rule as a model-version change). Reasons: the state is cheap to rebuild (one window),
a stale reference carried across a restart would be just as wrong as a fresh one after a promotion, and the
`min_records` warm-up means a restart cannot produce a retrain from half-built state. What must survive a restart
is the debounce: the earlier RetrainRequests are read back from retrain.requested (one partition, keyed by model)
before consuming, so the cool-down still holds. The cost: a drift that began shortly before the restart is
measured against a reference that may already contain it; the error-stream detector (reference error from
labels) still sees concept drift unless the whole reference window was drifted.

The monitor never holds up anyone: producers of predictions and labels are decoupled by Kafka, sends are
asynchronous, and its own lag is exported (mlops_consumer_lag_records by the bus, mlops_monitor_event_lag_seconds).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from mlops.bus import HEADER_MESSAGE_TYPE, Bus, BusError, FailurePolicy, Producer, Record, StopFlag, run_loop
from mlops.contracts import ContractError, models_pb2
from mlops.dead_letters import INVALID_LABEL, dead_letter
from mlops.definitions.labels import LabelError, decode_label
from mlops.definitions.model import Model
from mlops.definitions.revision import Revision
from mlops.definitions.store import DefinitionsFollower
from mlops.prediction_log import read_predictions
from mlops.telemetry import current_trace_ids, link_to_ids, messaging_attributes, span_link, tracer
from mlops.topics import CHALLENGER_VERDICTS, EVENTS_DLQ, PREDICTIONS, RETRAIN_REQUESTED, TopicSpec, ensure_topics
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind

from services.monitor import metrics
from services.monitor.convert import (
    block_from_columns,
    label_from_row,
    request_time_ms,
    retrain_to_pb,
    verdict_to_pb,
)
from services.monitor.core import DriftMonitor, MonitorConfig, RetrainDecision, Verdict
from services.monitor.settings import MonitorSettings

log = logging.getLogger("mlops.monitor")
CLIENT_ID = "monitor"


def _evidence_link(trace_id: str, span_id: str) -> Link | None:
    # a prediction logged without a span id still names its trace, which is what the link is followed by
    link = link_to_ids(trace_id, span_id or "1")
    return Link(link.context, {"mlops.link": "drift evidence"}) if link is not None else None


def _read_back(bus: Bus, spec: TopicSpec, timeout: float) -> list[Record]:
    """Every record of `spec` so far; best effort: none when the topic is missing or unreadable (logged)."""
    topic = bus.topic(spec)
    try:
        reader = bus.reader([topic], client_id=f"{CLIENT_ID}-restore")
        try:
            return reader.read_to_end(timeout)
        finally:
            reader.close()
    except BusError as exc:
        log.warning("cannot read back earlier outputs", extra={"fields": {"topic": topic, "error": str(exc)}})
        return []


def restore_verdicts(monitor: DriftMonitor, bus: Bus, timeout: float = 10.0) -> int:
    """Remember the ChallengerVerdicts already published (not judged again); returns how many were read."""
    ids = []
    for record in _read_back(bus, CHALLENGER_VERDICTS, timeout):
        try:
            ids.append(record.decode(models_pb2.ChallengerVerdict).verdict_id)
        except ContractError:
            continue
    monitor.judge.restore(ids)
    return len(ids)


def restore_cooldowns(monitor: DriftMonitor, bus: Bus, timeout: float = 10.0) -> int:
    """Re-apply the cool-down of the RetrainRequests already on retrain.requested; returns how many were read.
    Best effort: without the topic (nothing requested yet) or within `timeout`, the monitor starts without them."""
    read = 0
    for record in _read_back(bus, RETRAIN_REQUESTED, timeout):
        try:
            req = record.decode(models_pb2.RetrainRequest)
        except ContractError:
            continue
        monitor.restore_request(req.model_name, request_time_ms(req))
        read += 1
    return read


@dataclass(frozen=True)
class _Routes:
    """One revision as the consuming thread needs it."""

    revision: int
    config: MonitorConfig
    label_specs: tuple[TopicSpec, ...]  # the declared label topics, unprefixed (for ensure_topics)
    topics: tuple[str, ...]  # what the consumer subscribes to: predictions + every label topic (bus names)
    labels: Mapping[str, tuple[tuple[Model, str], ...]]  # label topic (bus name) → (model, id field) reading it

    @classmethod
    def of(cls, revision: Revision, bus: Bus) -> _Routes:
        config = MonitorConfig.of(revision.definitions, revision.number)
        specs: dict[str, TopicSpec] = {}
        labels: dict[str, list[tuple[Model, str]]] = {}
        for model in revision.definitions.models:
            declared = model.label.topic
            spec = specs.setdefault(declared, TopicSpec(declared, f"labels of model {model.name!r}"))
            labels.setdefault(bus.topic(spec), []).append((model, config.policies[model.name].id_field))
        topics = tuple(sorted({bus.topic(PREDICTIONS), *labels}))
        return cls(revision.number, config, tuple(specs.values()), topics,
                   {topic: tuple(readers) for topic, readers in labels.items()})


class _Until(StopFlag):
    """Ends one consume loop: when the service stops, or when the topics to read changed (`set`)."""

    def __init__(self, outer: StopFlag):
        super().__init__(install_signals=False)
        self._outer = outer

    def is_set(self) -> bool:
        return self._outer.is_set() or super().is_set()


class MonitorService:
    def __init__(self, settings: MonitorSettings, bus: Bus, monitor: DriftMonitor | None = None):
        self.settings = settings
        self.bus = bus
        self.observer = metrics.PrometheusObserver()
        # no model is watched until a revision says which (MonitorConfig() has no fallback)
        self.monitor = monitor or DriftMonitor(settings, self.observer, config=MonitorConfig())
        self.predictions_topic = bus.topic(PREDICTIONS)
        self.retrain_topic = bus.topic(RETRAIN_REQUESTED)
        self.verdicts_topic = bus.topic(CHALLENGER_VERDICTS)
        self.dlq_topic = bus.topic(EVENTS_DLQ)
        self.tracer = tracer("mlops.monitor")
        self.follower = DefinitionsFollower(bus, client_id=f"{CLIENT_ID}-definitions", on_change=self._on_revision)
        self.published: list[str] = []  # request ids, newest last (bounded)
        self._sync = metrics.CounterSync()
        self._last_sync = 0.0
        self._producer: Producer | None = None
        self._polled = False
        self._wanted: _Routes | None = None  # set on the follower's thread, one assignment
        self._routes: _Routes | None = None  # applied on the consuming thread
        self._until: _Until | None = None
        self._bad_logged: dict[str, tuple[float, int]] = {}  # model → (last log time, labels left unlogged)
        self._unwatched_logged: set[str] = set()

    def ready(self) -> bool:
        """True once the loop has completed a poll under a definitions revision whose follower still runs. (Asking
        the consumer for its assignment from the ops-server thread would block behind the consuming thread, so
        readiness is a flag the loop sets.)"""
        return self._polled and self._routes is not None and self.follower.alive()

    # --- definitions ------------------------------------------------------------------------------------------

    def _on_revision(self, revision: Revision) -> None:
        # the follower's thread: build the whole new routing, then publish it with one assignment
        self._wanted = _Routes.of(revision, self.bus)

    def _take_up(self) -> None:
        """On the consuming thread: apply a newer revision; end the loop if it reads other topics."""
        wanted = self._wanted
        if wanted is None or wanted is self._routes:
            return
        previous, self._routes = self._routes, wanted
        self.monitor.configure(wanted.config)
        metrics.REVISION.set(wanted.revision)
        metrics.MODELS.set(len(wanted.config.policies))
        metrics.show_gate_floors(model for readers in wanted.labels.values() for model, _ in readers)
        log.info("monitoring by definitions revision", extra={"fields": {
            "revision": wanted.revision, "models": sorted(wanted.config.policies), "topics": list(wanted.topics)}})
        if previous is not None and previous.topics != wanted.topics and self._until is not None:
            self._until.set()

    # --- consuming --------------------------------------------------------------------------------------------

    def run(self, stop: StopFlag) -> int:
        """Follow the definitions, then consume (re-subscribing when the label topics change) until `stop`."""
        self.follower.start()
        handled = 0
        try:
            while self._wanted is None and not stop.is_set():
                if not self.follower.alive():
                    raise RuntimeError("the definitions follower stopped before a revision arrived")
                stop.wait(0.2)  # nothing is read before a revision says what to watch: records wait in Kafka
            if stop.is_set():
                return 0
            restored = restore_cooldowns(self.monitor, self.bus)
            restore_verdicts(self.monitor, self.bus)
            self._producer = self.bus.producer(client_id=CLIENT_ID)
            while not stop.is_set():
                self._take_up()
                handled += self._consume(stop, restored)
        finally:
            self.follower.stop()
        return handled

    def _consume(self, stop: StopFlag, restored: int) -> int:
        routes = self._routes
        assert routes is not None and self._producer is not None
        self._ensure_label_topics(routes)
        self._until = until = _Until(stop)
        consumer = self.bus.consumer(group_id=self.settings.group_id, topics=list(routes.topics),
                                     client_id=CLIENT_ID)
        log.info("monitor consuming", extra={"fields": {
            "topics": list(routes.topics), "group": self.settings.group_id, "revision": routes.revision,
            "restored_requests": restored}})
        return run_loop(
            consumer, self.handle, stop=until, policy=FailurePolicy.SKIP_AND_LOG, producer=self._producer,
            batch_size=self.settings.batch_size, poll_timeout=self.settings.poll_timeout_s,
            on_idle=self._idle,
        )

    def _ensure_label_topics(self, routes: _Routes) -> None:
        # `mlops apply` creates declared topics; a monitor subscribing to a missing one would get broker errors
        kafka = self.bus.settings
        if kafka is None or not routes.label_specs:
            return
        try:
            ensure_topics(kafka, routes.label_specs)
        except Exception as exc:  # e.g. no rights to create: consuming still works once the topics exist
            log.warning("cannot make sure the label topics exist", extra={"fields": {
                "topics": [s.name for s in routes.label_specs], "error": str(exc)}})

    def handle(self, record: Record) -> None:
        """One record from any topic read. Bad predictions raise ContractError: skipped and logged by the loop
        policy; bad labels are counted and logged here."""
        self._polled = True
        if self._wanted is not self._routes:
            self._take_up()
        routes = self._routes
        assert routes is not None
        if record.topic == self.predictions_topic:
            served = read_predictions(record)  # either contract (ContractError: skipped)
            requests = served.split()
            decisions = []
            for request in requests:  # a request's rows at a time, as columns: no object per row
                decisions += self.monitor.observe_block(block_from_columns(request))
            if (latest := requests[-1].timestamp_ms):
                metrics.EVENT_LAG.set(max(0.0, time.time() - latest / 1000.0))
            if served.model_name not in routes.config.policies:
                self._unwatched(served.model_name)
        else:
            decisions = []
            message_type = record.header(HEADER_MESSAGE_TYPE)
            for model, id_field in routes.labels.get(record.topic, ()):
                try:
                    row = decode_label(record.value, model, id_field, message_type)
                except LabelError as exc:
                    self._bad_label(model.name, exc, record)
                    continue
                decisions += self.monitor.observe_label(model.name, label_from_row(row))
        for d in decisions:
            self._publish(d, record)
        verdicts = self.monitor.judge.take_verdicts()
        for v in verdicts:
            self._publish_verdict(v, record)
        self._maybe_sync(force=bool(verdicts))  # a verdict's figures are on the gauges as it goes out

    def _bad_label(self, model: str, exc: LabelError, record: Record) -> None:
        metrics.BAD_LABELS.labels(model, exc.field).inc()
        # dead-lettered with the reason (flushed before the offset is committed, like the retrain requests)
        assert self._producer is not None
        self._producer.send(self.dlq_topic, dead_letter(record, "monitor", INVALID_LABEL, exc.field,
                                                        f"label of model {model!r}: {exc}"), key=record.key)
        now = time.monotonic()
        last, unlogged = self._bad_logged.get(model, (0.0, 0))
        if now - last < 1.0:  # a flood of bad labels must not become a flood of log lines
            self._bad_logged[model] = (last, unlogged + 1)
            return
        self._bad_logged[model] = (now, 0)
        log.warning("bad label skipped", extra={"fields": {
            "model": model, "field": exc.field, "reason": exc.reason, "where": record.where,
            "bad_labels_not_logged_since_last": unlogged}})

    def _unwatched(self, model: str) -> None:
        if model not in self._unwatched_logged and len(self._unwatched_logged) < 100:
            self._unwatched_logged.add(model)
            log.warning("predictions of a model the definitions do not declare are not watched",
                        extra={"fields": {"model": model}})

    def _publish(self, d: RetrainDecision, record: Record) -> None:
        assert self._producer is not None
        links = [lk for lk in (_evidence_link(t, s) for t, s in d.evidence_traces) if lk is not None]
        here = span_link(record.headers)
        if here is not None:
            links.append(here)
        attrs = messaging_attributes("send", self.retrain_topic, key=d.model_name) | {
            "mlops.model.name": d.model_name, "mlops.model.version": d.model_version,
            "mlops.drift.detector": d.detector, "mlops.drift.statistic": d.statistic,
            "mlops.drift.feature": d.feature, "mlops.drift.value": d.value,
            "mlops.retrain.request_id": d.request_id,
        }
        with self.tracer.start_as_current_span(f"send {self.retrain_topic}", kind=SpanKind.PRODUCER,
                                               links=links, attributes=attrs, context=trace.set_span_in_context(
                                                   trace.INVALID_SPAN)):
            trace_id, span_id = current_trace_ids()
            msg = retrain_to_pb(d, int(time.time() * 1000), trace_id, span_id)
            self._producer.send(self.retrain_topic, msg, key=d.model_name)
        metrics.PrometheusObserver.on_retrain(d)
        self.published.append(d.request_id)
        del self.published[:-100]
        log.warning("retrain requested", extra={"fields": {
            "model": d.model_name, "version": d.model_version, "request_id": d.request_id, "reason": d.reason,
            "detector": d.detector, "statistic": d.statistic, "feature": d.feature, "value": d.value,
            "window_start_ms": d.window_start_ms, "window_end_ms": d.window_end_ms}})

    def _publish_verdict(self, v: Verdict, record: Record) -> None:
        assert self._producer is not None
        here = span_link(record.headers)
        attrs = messaging_attributes("send", self.verdicts_topic, key=v.model_name) | {
            "mlops.model.name": v.model_name, "mlops.challenger.version": v.challenger_version,
            "mlops.challenger.phase": v.phase, "mlops.challenger.verdict": v.verdict,
            "mlops.challenger.difference": v.difference, "mlops.challenger.labelled_rows": v.labelled_rows,
        }
        with self.tracer.start_as_current_span(f"send {self.verdicts_topic}", kind=SpanKind.PRODUCER,
                                               links=[here] if here is not None else [], attributes=attrs,
                                               context=trace.set_span_in_context(trace.INVALID_SPAN)):
            trace_id, span_id = current_trace_ids()
            self._producer.send(self.verdicts_topic, verdict_to_pb(v, int(time.time() * 1000), trace_id, span_id),
                                key=v.model_name)
        metrics.VERDICTS.labels(v.model_name, v.phase, v.verdict).inc()
        log.warning("challenger verdict", extra={"fields": {
            "model": v.model_name, "champion": v.champion_version, "challenger": v.challenger_version,
            "phase": v.phase, "verdict": v.verdict, "verdict_id": v.verdict_id, "reason": v.reason}})

    def _idle(self) -> None:
        self._polled = True
        self._take_up()
        self._maybe_sync(force=True)

    def _maybe_sync(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_sync < 1.0:
            return
        self._last_sync = now
        self._sync.sync(self.monitor)
