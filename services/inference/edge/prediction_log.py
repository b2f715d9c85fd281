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

from mlops.bus import BusError, Producer
from opentelemetry import context as otel_context
from opentelemetry import trace

from services.inference import convert
from services.inference.core import ServedBatch
from services.inference.metrics import PREDICTIONS_DROPPED, PREDICTIONS_LOGGED

log = logging.getLogger("mlops.inference")


class PredictionLog:
    """Bounded, lossy (counted) hand-off of served batches to a Kafka producer thread."""

    def __init__(self, producer: Producer, topic: str, buffer_rows: int):
        self._producer, self._topic, self._limit = producer, topic, buffer_rows
        self._buffer: collections.deque[tuple[ServedBatch, trace.SpanContext]] = collections.deque()
        self._pending_rows = 0
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def offer(self, batch: ServedBatch) -> bool:
        """Queue a batch, with the trace context of the request serving it, unless the buffer is full (then it is
        dropped and counted). Never blocks on Kafka."""
        n = len(batch.x)
        ctx = trace.get_current_span().get_span_context()
        with self._cond:
            if self._stop or self._pending_rows + n > self._limit:
                PREDICTIONS_DROPPED.inc(n)
                return False
            self._buffer.append((batch, ctx))
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
                item = self._buffer.popleft() if self._buffer else None
                if item is not None:
                    self._pending_rows -= len(item[0].x)
            if item is not None:
                self._send(*item)
            self._producer.poll(0)
            if time.monotonic() - last_check > 1.0:  # collect delivery errors so they do not pile up
                last_check = time.monotonic()
                self._drain_errors(0)

    def _send(self, batch: ServedBatch, ctx: trace.SpanContext) -> None:
        token = None
        trace_id = span_id = ""
        if ctx.is_valid:  # the records name the request's trace, and their produce spans join it
            token = otel_context.attach(trace.set_span_in_context(trace.NonRecordingSpan(ctx)))
            trace_id, span_id = format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
        try:
            for key, record in convert.prediction_records(batch, trace_id, span_id):
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
