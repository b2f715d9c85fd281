"""The agent's work on one batch (`Featurizer`), without faust: decode, fold, publish to features.log, write the
online views, and the spans that link an event to the views it updated.

**Spans are sampled per second** (`traced_per_s`): an event given its own spans gets `process <events>` (child of
the context its record carries), `send <features.log>` and one `MULTI` per view it left newest, and its online views
and features.log records carry that update's traceparent, as before. The others (beyond the budget) carry the
traceparent their record came with (the ingest span of the same trace), so a prediction reading the view still
links back to the event's trace. Three spans per event cost more CPU than the fold itself (issue 19).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from faust.types import EventT
from mlops import contracts
from mlops.bus import BusError, Producer
from mlops.definitions import Revision
from mlops.online_store import OnlineStore, OnlineStoreUnavailable, ViewUpdate
from mlops.telemetry import extract_context, messaging_attributes, traceparent_of_current, tracer
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context

from services.features import metrics
from services.features.convert import event_from_bytes, feature_vector_record
from services.features.core import FeaturesConfig, FeatureVector, Limits, State, fold, read_view, state_key

log = logging.getLogger("mlops.features")
_tracer = tracer("mlops.features")
STORE_RETRY_MAX_S = 2.0  # longest wait between writes of a batch while Redis is unavailable
FLUSH_WAIT_S = 10.0  # features.log: how long one flush waits before the wait is logged and taken up again


class TraceBudget:
    """A token bucket of traced events: at most `per_s` a second on average, bursts of up to `per_s` (None: every
    event is traced)."""

    def __init__(self, per_s: float | None, clock=time.monotonic):
        self._per_s = per_s
        self._clock = clock
        self._tokens = per_s or 0.0
        self._at = clock()

    def take(self) -> bool:
        if self._per_s is None:
            return True
        now = self._clock()
        self._tokens = min(self._per_s, self._tokens + (now - self._at) * self._per_s)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def carried_traceparent(headers: Iterable[tuple[str, str | bytes]] | dict | None) -> str:
    """The `traceparent` header a record came with ("" when none)."""
    items = headers.items() if isinstance(headers, dict) else headers or ()
    for key, value in items:
        if key == "traceparent":
            return value.decode("ascii", "replace") if isinstance(value, bytes) else (value or "")
    return ""


class BatchTables(State, Protocol):
    """The table one batch folds into: `own(event)` names the event the following puts come from (its partition
    is the changelog partition); `write_back()` writes every key put once."""

    def own(self, event: EventT) -> None: ...

    def write_back(self) -> None: ...


@dataclass
class _Update:
    """The newest update of one (view, entity) in a batch, and the span of the event that made it."""

    vector: FeatureVector
    traceparent: str
    span: Span | None  # None: the event was not given spans of its own (beyond the trace budget)


class Featurizer:
    """The agent's work on one batch: decode each event, fold it into the views of its source, publish one vector
    per view to features.log, then write the newest view of each (view, entity) to the store and flush
    features.log before returning. `reconfigure` swaps the definitions in force (called by the follower thread)."""

    def __init__(self, store: OnlineStore, producer: Producer, features_log: str, group: str,
                 limits: Limits | None = None, config: FeaturesConfig | None = None,
                 traced_per_s: float | None = None):
        self.config = config
        self._trace_budget = TraceBudget(traced_per_s)
        self._updates: dict[str, Any] = {}
        self._limits = limits or Limits()
        self._store = store
        self._producer = producer
        self._features_log = features_log
        self._group = group

    def reconfigure(self, revision: Revision) -> None:
        """Compile `revision` and make it the one in force for the next batch (one reference swapped)."""
        try:
            config = FeaturesConfig.of(revision, self._limits)
        except Exception:  # keep serving the revision in force rather than stop
            log.exception("cannot apply definitions revision", extra={"fields": {"revision": revision.number}})
            return
        self.config = config
        metrics.REVISION.set(revision.number)
        log.info("definitions in force", extra={"fields": {
            "revision": revision.number,
            "views": {v.name: v.layout.version for v in config.views}}})

    async def handle(self, batch: Sequence[EventT], tables: BatchTables) -> None:
        config = self.config
        assert config is not None, "handle() before a definitions revision"
        started = time.perf_counter()
        spans: list[Span] = []
        ingest_ms: list[int] = []  # of each folded event (freshness)
        newest: dict[tuple[str, str], _Update] = {}
        skipped: dict[str, int] = {}
        try:
            for event in batch:
                self._fold_one(config, event, tables, spans, ingest_ms, newest, skipped)
            # features.log acknowledged before the state is written: after a crash in between, the replayed batch
            # meets state that has not folded it and publishes its vectors again (at-least-once). The other way
            # round the replay would be skipped as already folded and its vectors never reach features.log.
            await asyncio.to_thread(self._flush)
            tables.write_back()
            await self._write(self._online_views(tables, newest))
        except Exception as exc:
            for span in spans:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
            raise
        finally:
            for span in spans:
                span.end()
        now = time.time()
        for ms in ingest_ms:
            if ms:
                metrics.FRESHNESS.observe(max(0.0, now - ms / 1000.0))
        if skipped:
            log.warning("skipped events of no declared source", extra={"fields": {
                "revision": config.revision, "declared": sorted(config.views_by_source), "skipped": skipped}})
        metrics.BATCH_SIZE.observe(len(batch))
        metrics.PROCESSING.observe((time.perf_counter() - started) / len(batch))

    def _fold_one(self, config: FeaturesConfig, event: EventT, tables: BatchTables, spans: list[Span],
                  ingest_ms: list[int], newest: dict[tuple[str, str], _Update], skipped: dict[str, int]) -> None:
        msg = event.message
        where = f"topic={msg.topic} partition={msg.partition} offset={msg.offset}"
        try:
            ev = event_from_bytes(event.value, where)
        except contracts.ContractError as exc:
            metrics.REJECTED.labels("undecodable").inc()
            log.error("skipping undecodable event", extra={"fields": {"where": where, "error": str(exc)}})
            return
        tables.own(event)
        vectors = fold(config, tables, ev)
        if vectors is None:
            reason = "unknown_source" if ev.source_name else "no_source"
            metrics.REJECTED.labels(reason).inc()
            name = ev.source_name or "(none)"
            skipped[name] = skipped.get(name, 0) + 1
            return
        if not vectors:  # every view of its source has folded this event already: a replay
            if config.views_for(ev.source_name):
                metrics.REJECTED.labels("duplicate").inc()
            return
        ingest_ms.append(ev.ingest_time_ms)
        span: Span | None = None
        if self._trace_budget.take():
            attrs = messaging_attributes("process", msg.topic, msg.partition, msg.offset, ev.entity_id, self._group)
            # ended by handle once the batch's online views are written
            span = _tracer.start_span(f"process {msg.topic}", context=extract_context(msg.headers),
                                      kind=SpanKind.CONSUMER, attributes=attrs)
            span.set_attribute("mlops.event_id", ev.event_id)
            spans.append(span)
            traceparent = self._publish(ev.entity_id, vectors, set_span_in_context(span))
        else:
            traceparent = carried_traceparent(msg.headers)
            self._send(vectors, {"traceparent": traceparent} if traceparent else None)
        for vector in vectors:
            newest[(vector.view.name, ev.entity_id)] = _Update(vector, traceparent, span)

    def _publish(self, entity_id: str, vectors: list[FeatureVector], context: Context) -> str:
        """Each view's vector to features.log under one publish span; returns the traceparent the online views
        carry (a prediction that reads them links back to this update)."""
        with _tracer.start_as_current_span(f"send {self._features_log}", context=context, kind=SpanKind.PRODUCER,
                                           attributes=messaging_attributes("send", self._features_log,
                                                                           key=entity_id)):
            self._send(vectors, None)
        return traceparent_of_current(context)

    def _send(self, vectors: list[FeatureVector], headers: dict[str, str] | None) -> None:
        for vector in vectors:
            self._producer.send(self._features_log, feature_vector_record(vector), key=vector.entity_id,
                                headers=headers)
            updates = self._updates.get(vector.view.name)
            if updates is None:  # the labelled child, looked up once per view (labels() costs per call)
                updates = self._updates[vector.view.name] = metrics.UPDATES.labels(vector.view.name)
            updates.inc()

    def _flush(self) -> None:
        """Wait until features.log acknowledged the batch's vectors, however long the broker is away. Failing the
        batch stops the partitions' commits (a failed batch is never marked handled) and the agent faust restarts
        consumes nothing more (seen in the chaos suite's broker kill, when a restart took over the old 30 s flush
        timeout; before the handled-offsets consumer, faust even committed the failed batch's offsets)."""
        while True:
            try:
                self._producer.flush(FLUSH_WAIT_S)
                return
            except BusError as exc:
                # a record failed for good (not merely still queued): waiting cannot help
                if not len(self._producer) or "; " in str(exc):
                    raise
                log.warning("features.log not acknowledged yet; waiting (the batch stays unacked)",
                            extra={"fields": {"error": str(exc), "queued": len(self._producer)}})

    async def _write_until_written(self, updates: list[ViewUpdate]) -> None:
        """Write the views, waiting out a Redis outage: the batch stays unacked (nothing is lost, lag grows) and
        its state is already folded, so failing it would leave these views stale (a replay is not folded again)."""
        delay = 0.1
        while True:
            try:
                await self._store.write_many(updates)
                return
            except OnlineStoreUnavailable as exc:
                metrics.STORE_RETRIES.inc()
                log.warning("online store unavailable; retrying the batch's write", extra={"fields": {
                    "error": str(exc), "views": len(updates), "retry_in_s": delay}})
                await asyncio.sleep(delay)
                delay = min(delay * 2, STORE_RETRY_MAX_S)

    @staticmethod
    def _online_views(tables: BatchTables, newest: dict[tuple[str, str], _Update]
                      ) -> list[tuple[ViewUpdate, Span | None]]:
        """The online view of each (view, entity) the batch touched, as of the entity's newest event: the last
        update's vector, or the view read again from state when a late event came last."""
        out = []
        for (view, entity), u in newest.items():
            values, as_of = u.vector.values, u.vector.as_of_ms
            state = tables.get(state_key(view, entity))
            if state is not None and state["t"] != as_of:
                as_of, values = read_view(u.vector.view, state)  # type: ignore[misc]
            out.append((ViewUpdate(u.vector.view.layout, entity, values, as_of, u.traceparent), u.span))
        return out

    async def _write(self, views: list[tuple[ViewUpdate, Span | None]]) -> None:
        """The views in one store write (features.log was flushed before); a MULTI span for each view of a traced
        update."""
        begun = time.time_ns()
        await self._write_until_written([view for view, _ in views])
        written = time.time_ns()
        for view, span in views:
            if span is None:
                continue
            write = _tracer.start_span("MULTI", context=set_span_in_context(span), kind=SpanKind.CLIENT,
                                       start_time=begun, attributes={
                                           "db.system": "redis", "db.operation.name": "MULTI", "mlops.entity_id":
                                           view.entity_id, "mlops.view": view.layout.name,
                                           "db.operation.batch.size": len(views)})
            write.end(end_time=written)
