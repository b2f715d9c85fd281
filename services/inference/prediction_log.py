"""PredictionRecords to Kafka without touching the response path.

The request path only appends one `ServedBatch` (arrays it already has) to a bounded buffer; a background thread
turns it into one PredictionRecord per row and produces them. When the buffer is full (Kafka slow or down), new
batches are dropped and counted in `mlops_inference_prediction_logs_dropped_total`; requests never wait.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass

import numpy as np
from mlops.bus import BusError, Producer
from mlops.contracts import models_pb2
from opentelemetry import context as otel_context
from opentelemetry import trace

from services.inference.metrics import PREDICTIONS_DROPPED, PREDICTIONS_LOGGED

log = logging.getLogger("mlops.inference")


@dataclass
class ServedBatch:
    request_id: str
    model_name: str
    model_version: str
    feature_names: tuple[str, ...]
    x: np.ndarray  # float32 [n, k]
    probabilities: np.ndarray | None  # [n, classes]
    labels: np.ndarray | None  # [n]
    entity_ids: list[str] | None
    as_of_ms: list[int] | None
    latency_us: int
    timestamp_ms: int
    span_context: trace.SpanContext | None

    def records(self) -> list[tuple[str, models_pb2.PredictionRecord]]:
        ctx = self.span_context
        trace_id = format(ctx.trace_id, "032x") if ctx and ctx.is_valid else ""
        span_id = format(ctx.span_id, "016x") if ctx and ctx.is_valid else ""
        names = self.feature_names or tuple(f"f{i}" for i in range(self.x.shape[1]))
        out = []
        xs = self.x.tolist()
        probs = self.probabilities.tolist() if self.probabilities is not None else None
        labels = self.labels.tolist() if self.labels is not None else None
        for i, row in enumerate(xs):
            entity = self.entity_ids[i] if self.entity_ids else ""
            p = probs[i] if probs is not None else []
            rec = models_pb2.PredictionRecord(
                request_id=self.request_id if len(xs) == 1 else f"{self.request_id}/{i}",
                entity_id=entity, model_name=self.model_name, model_version=self.model_version,
                inputs=dict(zip(names, row, strict=False)), outputs=p,
                score=p[1] if len(p) > 1 else (p[0] if p else 0.0),
                predicted_label=float(labels[i]) if labels is not None else 0.0,
                latency_us=self.latency_us, trace_id=trace_id, span_id=span_id, timestamp_ms=self.timestamp_ms,
                features_as_of_ms=self.as_of_ms[i] if self.as_of_ms else 0,
            )
            out.append((entity or rec.request_id, rec))
        return out


class PredictionLog:
    """Bounded, lossy (counted) hand-off of served batches to a Kafka producer thread."""

    def __init__(self, producer: Producer, topic: str, buffer_rows: int):
        self._producer, self._topic, self._limit = producer, topic, buffer_rows
        self._buffer: collections.deque[ServedBatch] = collections.deque()
        self._pending_rows = 0
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def offer(self, batch: ServedBatch) -> bool:
        """Queue a batch unless the buffer is full (then it is dropped and counted). Never blocks on Kafka."""
        n = len(batch.x)
        with self._cond:
            if self._stop or self._pending_rows + n > self._limit:
                PREDICTIONS_DROPPED.inc(n)
                return False
            self._buffer.append(batch)
            self._pending_rows += n
            self._cond.notify()
        return True

    def _on_delivery(self, err: object, _msg: object) -> None:
        if err is not None:
            PREDICTIONS_DROPPED.inc()
        else:
            PREDICTIONS_LOGGED.inc()

    def _run(self) -> None:
        last_check = time.monotonic()
        while True:
            with self._cond:
                while not self._buffer and not self._stop:
                    self._cond.wait(0.5)
                    break
                if self._stop and not self._buffer:
                    return
                batch = self._buffer.popleft() if self._buffer else None
                if batch is not None:
                    self._pending_rows -= len(batch.x)
            if batch is not None:
                self._send(batch)
            self._producer.poll(0)
            if time.monotonic() - last_check > 1.0:  # collect delivery errors so they do not pile up
                last_check = time.monotonic()
                self._drain_errors(0)

    def _send(self, batch: ServedBatch) -> None:
        token = None
        if batch.span_context is not None and batch.span_context.is_valid:
            token = otel_context.attach(trace.set_span_in_context(trace.NonRecordingSpan(batch.span_context)))
        try:
            for key, record in batch.records():
                self._producer.send(self._topic, record, key=key, on_delivery=self._on_delivery)
        except Exception as exc:  # a broken record or producer must not kill the logger thread
            PREDICTIONS_DROPPED.inc(len(batch.x))
            log.error("prediction log failed", extra={"fields": {"error": str(exc)}})
        finally:
            if token is not None:
                otel_context.detach(token)

    def _drain_errors(self, timeout: float) -> None:
        try:
            self._producer.flush(timeout)
        except BusError as exc:
            if timeout:
                log.warning("prediction log delivery", extra={"fields": {"error": str(exc)[:500]}})

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout)
        self._drain_errors(timeout)
