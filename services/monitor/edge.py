"""The Kafka edge: predictions + labels in, RetrainRequest out. Converts protobuf ↔ domain and delegates to the
DriftMonitor core.

Delivery and restart: offsets are committed after each batch has been handled and any RetrainRequest it caused was
acknowledged (mlops.bus.run_loop), so a restart resumes from the committed offsets. Detector state is NOT
checkpointed: after a restart each model's state is reset and its reference is rebuilt from the first window of
predictions read (the same rule as a model-version change). Reasons: the state is cheap to rebuild (one window),
a stale reference carried across a restart would be just as wrong as a fresh one after a promotion, and the
`min_records` warm-up means a restart cannot produce a retrain from half-built state. What must survive a restart
is the debounce: the last RetrainRequest per model is read back from retrain.requested (one partition, keyed by
model) before consuming, so the cool-down still holds. The cost: a drift that began shortly before the restart
is measured against a reference that may already contain it; the error-stream detector (reference error rate
from labels) still sees concept drift unless the whole reference window was drifted.

The monitor never holds up anyone: producers of predictions and labels are decoupled by Kafka, sends are
asynchronous, and its own lag is exported (mlops_monitor_consumer_lag_records, mlops_monitor_event_lag_seconds).
"""

from __future__ import annotations

import logging
import time
import uuid

from confluent_kafka import Consumer as _KafkaConsumer
from confluent_kafka import KafkaException, TopicPartition
from mlops import contracts
from mlops.bus import Consumer, FailurePolicy, Producer, Record, StopFlag, run_loop, watermarks
from mlops.contracts import events_pb2, models_pb2
from mlops.settings import KafkaSettings
from mlops.telemetry import current_trace_ids, messaging_attributes, span_link, tracer
from mlops.topics import LABELS, PREDICTIONS, RETRAIN_REQUESTED, topic_name
from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags

from services.monitor import metrics
from services.monitor.convert import label_from_pb, prediction_from_pb, request_time_ms, retrain_to_pb
from services.monitor.core import DriftMonitor, RetrainDecision
from services.monitor.settings import MonitorSettings

log = logging.getLogger("mlops.monitor")


def _link(trace_id: str, span_id: str) -> Link | None:
    try:
        ctx = SpanContext(int(trace_id, 16), int(span_id or "1", 16), is_remote=True,
                          trace_flags=TraceFlags(TraceFlags.SAMPLED))
    except ValueError:
        return None
    return Link(ctx, {"mlops.link": "drift evidence"}) if ctx.is_valid else None


# --- restart: the debounce state read back ---------------------------------------------------------------


def restore_cooldowns(monitor: DriftMonitor, kafka: KafkaSettings, timeout: float = 10.0, tail: int = 1000) -> int:
    """Re-apply the cool-down of the last RetrainRequests (the newest `tail` of retrain.requested); returns how
    many were read. The topic has one partition (mlops.topics), read without a consumer group."""
    topic = topic_name(RETRAIN_REQUESTED, kafka)
    c = _KafkaConsumer(kafka.client_config() | {"group.id": f"monitor-restore-{uuid.uuid4().hex[:8]}",
                                                 "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        try:
            low, high = watermarks(c, topic, 0, timeout)
        except KafkaException as exc:  # best effort: no topic yet means no earlier request to honour
            log.warning("cannot read back earlier retrain requests", extra={"fields": {
                "topic": topic, "error": str(exc)}})
            return 0
        if high <= low:
            return 0
        c.assign([TopicPartition(topic, 0, max(low, high - tail))])
        read, deadline = 0, time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                break  # partition EOF (or an error: the cool-down is best effort)
            try:
                req = contracts.decode(models_pb2.RetrainRequest, msg.value(), f"{topic} offset {msg.offset()}")
            except ValueError:
                continue
            monitor.restore_request(req.model_name, request_time_ms(req))
            read += 1
            if msg.offset() + 1 >= high:
                break
        return read
    finally:
        c.close()


# --- the service loop -------------------------------------------------------------------------------------------


class MonitorService:
    def __init__(self, settings: MonitorSettings, kafka: KafkaSettings, monitor: DriftMonitor | None = None):
        self.settings = settings
        self.kafka = kafka
        self.observer = metrics.PrometheusObserver()
        self.monitor = monitor or DriftMonitor(settings, self.observer)
        self.predictions_topic = topic_name(PREDICTIONS, kafka)
        self.labels_topic = topic_name(LABELS, kafka)
        self.retrain_topic = topic_name(RETRAIN_REQUESTED, kafka)
        self.tracer = tracer("mlops.monitor")
        self.published: list[str] = []  # request ids, newest last (bounded)
        self._sync = metrics.CounterSync()
        self._last_sync = 0.0
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._polled = False

    def ready(self) -> bool:
        """True once the loop has completed a poll. (Asking the consumer for its assignment from the ops-server
        thread would block behind the consuming thread, so readiness is a flag the loop sets.)"""
        return self._polled

    def run(self, stop: StopFlag) -> int:
        restored = restore_cooldowns(self.monitor, self.kafka)
        self._producer = Producer(self.kafka, client_id="monitor")
        self._consumer = Consumer(self.kafka, group_id=self.settings.group_id,
                                  topics=[self.predictions_topic, self.labels_topic], client_id="monitor")
        log.info("monitor consuming", extra={"fields": {
            "topics": [self.predictions_topic, self.labels_topic], "group": self.settings.group_id,
            "restored_requests": restored}})
        return run_loop(
            self._consumer, self.handle, stop=stop, policy=FailurePolicy.SKIP_AND_LOG, producer=self._producer,
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
        links = [lk for lk in (_link(t, s) for t, s in d.evidence_traces) if lk is not None]
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
        if self._consumer is not None:
            lag: dict[str, int] = {}
            try:
                for tp in self._consumer.raw.position(self._consumer.raw.assignment()):
                    _low, high = self._consumer.raw.get_watermark_offsets(tp, cached=True)
                    if tp.offset >= 0 and high >= 0:
                        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - tp.offset)
            except Exception as exc:  # lag is best-effort telemetry, never a reason to stop
                log.debug("lag unavailable", extra={"fields": {"error": str(exc)}})
            for topic, value in lag.items():
                metrics.CONSUMER_LAG.labels(topic).set(value)
