"""The Kafka edge: predictions + labels in, RetrainRequest out. Decodes, delegates to the DriftMonitor core,
encodes.

Delivery and restart: offsets are committed after each batch has been handled and any RetrainRequest it caused was
acknowledged (mlops.bus.run_loop), so a restart resumes from the committed offsets. Detector state is NOT
checkpointed: after a restart each model's state is reset and its reference is rebuilt from the first window of
predictions read (the same rule as a model-version change). Reasons: the state is cheap to rebuild (one window),
a stale reference carried across a restart would be just as wrong as a fresh one after a promotion, and the
`min_records` warm-up means a restart cannot produce a retrain from half-built state. What must survive a restart
is the debounce: the earlier RetrainRequests are read back from retrain.requested (one partition, keyed by model)
before consuming, so the cool-down still holds. The cost: a drift that began shortly before the restart is
measured against a reference that may already contain it; the error-stream detector (reference error rate from
labels) still sees concept drift unless the whole reference window was drifted.

The monitor never holds up anyone: producers of predictions and labels are decoupled by Kafka, sends are
asynchronous, and its own lag is exported (mlops_consumer_lag_records by the bus, mlops_monitor_event_lag_seconds).
"""

from __future__ import annotations

import logging
import time

from mlops.bus import Bus, BusError, FailurePolicy, Producer, Record, StopFlag, run_loop
from mlops.contracts import ContractError, events_pb2, models_pb2
from mlops.telemetry import current_trace_ids, link_to_ids, messaging_attributes, span_link, tracer
from mlops.topics import LABELS, PREDICTIONS, RETRAIN_REQUESTED
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind

from services.monitor import metrics
from services.monitor.convert import label_from_pb, prediction_from_pb, request_time_ms, retrain_to_pb
from services.monitor.core import DriftMonitor, RetrainDecision
from services.monitor.settings import MonitorSettings

log = logging.getLogger("mlops.monitor")
CLIENT_ID = "monitor"


def _evidence_link(trace_id: str, span_id: str) -> Link | None:
    # a prediction logged without a span id still names its trace, which is what the link is followed by
    link = link_to_ids(trace_id, span_id or "1")
    return Link(link.context, {"mlops.link": "drift evidence"}) if link is not None else None


def restore_cooldowns(monitor: DriftMonitor, bus: Bus, timeout: float = 10.0) -> int:
    """Re-apply the cool-down of the RetrainRequests already on retrain.requested; returns how many were read.
    Best effort: without the topic (nothing requested yet) or within `timeout`, the monitor starts without them."""
    topic = bus.topic(RETRAIN_REQUESTED)
    try:
        reader = bus.reader([topic], client_id=f"{CLIENT_ID}-restore")
        try:
            records = reader.read_to_end(timeout)
        finally:
            reader.close()
    except BusError as exc:
        log.warning("cannot read back earlier retrain requests", extra={"fields": {"topic": topic, "error": str(exc)}})
        return 0
    read = 0
    for record in records:
        try:
            req = record.decode(models_pb2.RetrainRequest)
        except ContractError:
            continue
        monitor.restore_request(req.model_name, request_time_ms(req))
        read += 1
    return read


class MonitorService:
    def __init__(self, settings: MonitorSettings, bus: Bus, monitor: DriftMonitor | None = None):
        self.settings = settings
        self.bus = bus
        self.observer = metrics.PrometheusObserver()
        self.monitor = monitor or DriftMonitor(settings, self.observer)
        self.predictions_topic = bus.topic(PREDICTIONS)
        self.labels_topic = bus.topic(LABELS)
        self.retrain_topic = bus.topic(RETRAIN_REQUESTED)
        self.tracer = tracer("mlops.monitor")
        self.published: list[str] = []  # request ids, newest last (bounded)
        self._sync = metrics.CounterSync()
        self._last_sync = 0.0
        self._producer: Producer | None = None
        self._polled = False

    def ready(self) -> bool:
        """True once the loop has completed a poll. (Asking the consumer for its assignment from the ops-server
        thread would block behind the consuming thread, so readiness is a flag the loop sets.)"""
        return self._polled

    def run(self, stop: StopFlag) -> int:
        restored = restore_cooldowns(self.monitor, self.bus)
        self._producer = self.bus.producer(client_id=CLIENT_ID)
        consumer = self.bus.consumer(group_id=self.settings.group_id,
                                     topics=[self.predictions_topic, self.labels_topic], client_id=CLIENT_ID)
        log.info("monitor consuming", extra={"fields": {
            "topics": [self.predictions_topic, self.labels_topic], "group": self.settings.group_id,
            "restored_requests": restored}})
        return run_loop(
            consumer, self.handle, stop=stop, policy=FailurePolicy.SKIP_AND_LOG, producer=self._producer,
            batch_size=self.settings.batch_size, poll_timeout=self.settings.poll_timeout_s,
            on_idle=self._idle,
        )

    def handle(self, record: Record) -> None:
        """One record from either topic. Bad records raise ContractError: skipped and logged by the loop policy."""
        self._polled = True
        if record.topic == self.predictions_topic:
            msg = record.decode(models_pb2.PredictionRecord)
            decisions = self.monitor.observe_prediction(prediction_from_pb(msg))
            if msg.timestamp_ms:
                metrics.EVENT_LAG.set(max(0.0, time.time() - msg.timestamp_ms / 1000.0))
        elif record.topic == self.labels_topic:
            decisions = self.monitor.observe_label(label_from_pb(record.decode(events_pb2.Label)))
        else:
            return
        for d in decisions:
            self._publish(d, record)
        self._maybe_sync()

    def _publish(self, d: RetrainDecision, record: Record) -> None:
        assert self._producer is not None
        links = [lk for lk in (_evidence_link(t, s) for t, s in d.evidence_traces) if lk is not None]
        here = span_link(record.headers)
        if here is not None:
            links.append(here)
        attrs = messaging_attributes("publish", self.retrain_topic, key=d.model_name) | {
            "mlops.model.name": d.model_name, "mlops.model.version": d.model_version,
            "mlops.drift.detector": d.detector, "mlops.drift.statistic": d.statistic,
            "mlops.drift.feature": d.feature, "mlops.drift.value": d.value,
            "mlops.retrain.request_id": d.request_id,
        }
        with self.tracer.start_as_current_span(f"{self.retrain_topic} publish", kind=SpanKind.PRODUCER,
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

    def _idle(self) -> None:
        self._polled = True
        self._maybe_sync(force=True)

    def _maybe_sync(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_sync < 1.0:
            return
        self._last_sync = now
        self._sync.sync(self.monitor)
