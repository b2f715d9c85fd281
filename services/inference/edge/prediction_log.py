"""The prediction log: served requests to Kafka as columnar `PredictionBatch`es, off the response path.

The request path only appends its `ServedBatch` (arrays it already has) to a bounded buffer; a background thread
packs what gathered since its last round into one record per model version, role and partition the rows' entities
hash to (each request's id, trace, latency and time kept per request) and hands those to the producer. The produce
rate is the round rate, not the request or row rate: a produce and its delivery report cost more than packing.
The thread wakes once per `prediction_log_interval_ms` while requests flow, not once per request: on a busy machine a
thread wake-up (and the GIL hand-over it brings) costs more than packing a request.

Buffer policy when Kafka is slow or down (settings, all counted in
`mlops_inference_prediction_logs_dropped_total{reason}` by rows; requests never wait):
- records wait in the producer's queue until acknowledged, at most `prediction_delivery_timeout_s`; one not
  acknowledged by then is dropped (`reason="delivery_failed"`);
- when the producer's queue is full the thread waits for room, and served batches wait in this buffer, up to
  `prediction_buffer_rows` rows; beyond that `prediction_overflow` decides: `drop-newest` refuses the new batch,
  `drop-oldest` evicts the oldest queued ones (`reason="buffer_full"`);
- a batch that cannot be encoded or produced is dropped (`reason="failed"`) and logged; the thread lives on.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

from mlops.bus import BusError, Producer
from mlops.contracts import models_pb2
from mlops.telemetry import context_headers
from opentelemetry import trace

from services.inference import convert
from services.inference.core import ServedBatch
from services.inference.metrics import PREDICTIONS_DROPPED, PREDICTIONS_LOGGED
from services.inference.settings import PredictionOverflow

log = logging.getLogger("mlops.inference")

_Item = tuple[ServedBatch, trace.SpanContext]
_RETRY_PARTITIONS_S = 60.0
_ROUND_BYTES = 4 * convert.MERGE_BYTES  # taken from the buffer at a time (a few records' worth)


class PredictionLog:
    """Bounded hand-off of served batches to a producer thread; what it cannot keep is dropped and counted.
    `partitions` tells the thread how many partitions `topic` has (asked on the thread; while it fails,
    `fallback_partitions` is assumed and the question retried a minute later); `interval_s` is how long the thread
    lets batches gather after the first one woke it."""

    def __init__(self, producer: Producer, topic: str, buffer_rows: int,
                 overflow: PredictionOverflow = PredictionOverflow.DROP_NEWEST,
                 partitions: Callable[[], int] | int = 1, fallback_partitions: int = 1, interval_s: float = 0.0):
        self._producer, self._topic, self._limit, self._overflow = producer, topic, buffer_rows, overflow
        self._interval_s = interval_s
        self._partitions_of, self._fallback = partitions, fallback_partitions
        self._partitions: int | None = partitions if isinstance(partitions, int) else None
        self._partitions_retry_at = 0.0
        self._buffer: collections.deque[_Item] = collections.deque()
        self._pending_rows = 0
        self._cond = threading.Condition()
        self._stop = False
        self._idle = False
        self._dropped_full = PREDICTIONS_DROPPED.labels("buffer_full")
        self._dropped_failed = PREDICTIONS_DROPPED.labels("failed")
        self._dropped_delivery = PREDICTIONS_DROPPED.labels("delivery_failed")
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def offer(self, batch: ServedBatch) -> bool:
        """Queue a batch with the trace context of the request serving it; False when it was dropped (buffer full
        under `drop-newest`, or closing). Never blocks on Kafka. Rows scored off their request (shadow, guard)
        bring its trace context with them."""
        n = len(batch.x)
        ctx = batch.trace if batch.trace is not None else trace.get_current_span().get_span_context()
        with self._cond:
            if self._stop:
                self._dropped_full.inc(n)
                return False
            if self._pending_rows + n > self._limit:
                if self._overflow is PredictionOverflow.DROP_NEWEST or n > self._limit:
                    self._dropped_full.inc(n)
                    return False
                while self._buffer and self._pending_rows + n > self._limit:  # drop-oldest: make room
                    old = len(self._buffer.popleft()[0].x)
                    self._pending_rows -= old
                    self._dropped_full.inc(old)
            if self._idle:  # wake the thread only from its idle wait: while requests flow it runs on a timer
                self._cond.notify()
            self._buffer.append((batch, ctx))
            self._pending_rows += n
        return True

    def pending_rows(self) -> int:
        """Rows waiting in this buffer (not yet handed to the producer)."""
        return self._pending_rows

    def _delivered(self, rows: int) -> Callable[[object, object], None]:
        def on_delivery(err: object, _msg: object) -> None:
            (self._dropped_delivery if err is not None else PREDICTIONS_LOGGED).inc(rows)

        return on_delivery

    def _partition_count(self) -> int:
        if self._partitions is not None:
            return self._partitions
        now = time.monotonic()
        if now < self._partitions_retry_at:
            return self._fallback
        try:
            assert callable(self._partitions_of)
            self._partitions = max(1, self._partitions_of())
            return self._partitions
        except Exception as exc:  # no broker yet: assume the count topics are made with until it answers
            self._partitions_retry_at = now + _RETRY_PARTITIONS_S
            log.warning("prediction log: partitions of the topic unknown", extra={"fields": {
                "topic": self._topic, "assumed": self._fallback, "error": str(exc)[:300]}})
            return self._fallback

    def _pop_round(self) -> list[_Item]:
        """What waits, up to about `_ROUND_BYTES` (the rest stays under the buffer's limit and policy)."""
        items: list[_Item] = []
        size = 0
        with self._cond:
            while self._buffer and size < _ROUND_BYTES:
                item = self._buffer.popleft()
                self._pending_rows -= len(item[0].x)
                size += convert.logged_bytes(item[0])
                items.append(item)
        return items

    def _run(self) -> None:
        last_check = time.monotonic()
        flowing = False  # the last round found batches: sleep on the timer, nobody needs to wake the thread
        while True:
            with self._cond:
                if not self._buffer and not self._stop and not flowing:
                    self._idle = True  # idle until a batch arrives (offer wakes the thread then, and only then)
                    self._cond.wait(1.0)
                    self._idle = False
                if self._stop and not self._buffer:
                    return
            if not self._stop:  # let concurrent requests queue up: one wake-up per interval, not one per request
                time.sleep(self._interval_s)
            flowing = False
            while items := self._pop_round():
                self._send(items, self._partition_count())
                flowing = True
            self._producer.poll(0)  # serve delivery callbacks
            if time.monotonic() - last_check > 1.0:  # collect delivery errors so they do not pile up
                last_check = time.monotonic()
                self._drain_errors(0)

    def _send(self, items: list[_Item], partitions: int) -> None:
        """The round's requests as few records (merged per model version, role and partition), each naming every
        request's trace; its traceparent header joins the trace of its first request."""
        served: list[tuple[ServedBatch, str, str]] = []
        contexts: dict[str, trace.SpanContext] = {}
        for batch, ctx in items:
            if ctx.is_valid:
                span_id = format(ctx.span_id, "016x")
                contexts[span_id] = ctx
                served.append((batch, format(ctx.trace_id, "032x"), span_id))
            else:
                served.append((batch, "", ""))
        try:
            records = convert.round_batches(served, partitions)
        except Exception:  # a broken batch must not take the round's others with it: each on its own
            records = [record for one in served for record in self._records_of(one, partitions)]
        for key, record in records:
            ctx = contexts.get(record.span_id)
            try:
                self._producer.send(self._topic, record, key=key, headers=context_headers(ctx) if ctx else {},
                                    on_delivery=self._delivered(record.rows), poll=False)  # polled once per round
            except Exception as exc:  # a broken producer must not kill the logger thread
                self._failed(record.rows, exc)

    def _records_of(self, served: tuple[ServedBatch, str, str],
                    partitions: int) -> list[tuple[str, models_pb2.PredictionBatch]]:
        try:
            return convert.round_batches([served], partitions)
        except Exception as exc:
            self._failed(len(served[0].x), exc)
            return []

    def _failed(self, rows: int, exc: Exception) -> None:
        self._dropped_failed.inc(rows)
        log.error("prediction log failed", extra={"fields": {"error": str(exc)}})

    def _drain_errors(self, timeout: float) -> None:
        try:
            self._producer.flush(timeout)
        except BusError as exc:
            if timeout:
                log.warning("prediction log delivery", extra={"fields": {"error": str(exc)[:500]}})

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued, wait up to `timeout` for acknowledgements, stop the thread."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout)
        self._drain_errors(timeout)
