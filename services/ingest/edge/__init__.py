"""The Kafka edge of ingest: every declared source's raw topic → validate (core) → events | events.dlq,
at-least-once, reconfigured by the definitions revision in force without a restart.

Definitions: a `DefinitionsFollower` reads the `definitions` topic; each newer revision is compiled (one validator
per source, built once) into an immutable `_Config` and swapped in by one reference assignment, on the follower's
thread. The loop reads that reference once per batch, so a batch is validated by one revision. When the set of
source topics changes, the loop ends its consume loop (flushing and committing what it handled) and subscribes
anew, in the same consumer group. Until a revision declares a source, ingest consumes nothing and is not ready.

Per batch: the batch path (`edge.batch`) validates each source topic's records at once and produces their events
in one loop; what it does not accept takes the per-record path (`Ingest.handle`), in order, which accepts it the
slow way or dead-letters it naming the field.

Delivery: `mlops.bus.run_loop` handles a batch, flushes the idempotent producer (every Event / DeadLetter is
acknowledged by the broker) and only then commits the batch's offsets. A crash in between re-reads the batch, so
a record can be written twice but never lost; the event id of a record without one is derived from its source
position (topic/partition/offset), so a replayed duplicate carries the same event id and downstream can drop it.
(Kafka transactions would give exactly-once at the cost of a transaction per batch and read_committed readers;
features and the offline store are idempotent per event id / point in time, so at-least-once is the choice.)
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from mlops.bus import HEADER_CONTENT_TYPE, Bus, Consumer, FailurePolicy, Record, StopFlag, run_loop
from mlops.definitions import Revision
from mlops.definitions.store import DefinitionsFollower
from mlops.telemetry import extract_context, messaging_attributes
from mlops.topics import EVENTS, EVENTS_DLQ, TopicSpec, ensure_topics
from opentelemetry.trace import Status, StatusCode

from services.ingest import metrics
from services.ingest.convert import to_dead_letter, to_event, validate
from services.ingest.core import compile_sources
from services.ingest.edge.batch import NO_PARENT, BatchPath, Route, by_topic, failed, record_span, trace_headers
from services.ingest.errors import Rejected
from services.ingest.settings import IngestSettings

log = logging.getLogger("mlops.ingest")
INTERNAL_ERROR = "internal_error"
UNKNOWN_TOPIC = "unknown_topic"


@dataclass(frozen=True)
class _Config:
    """One definitions revision, compiled: a route per (prefixed) source topic. Never changed once built."""

    revision: int
    routes: dict[str, Route]
    topic_specs: tuple[TopicSpec, ...]  # unprefixed, for ensure_topics

    @property
    def topics(self) -> frozenset[str]:
        return frozenset(self.routes)


class _Until(StopFlag):
    """Ends one consume loop: when the service stops, or when `changed()` says the subscription is stale."""

    def __init__(self, stop: StopFlag, changed: Callable[[], bool]):
        super().__init__(install_signals=False)
        self._outer, self._changed = stop, changed

    def is_set(self) -> bool:
        return self._outer.is_set() or self._changed()


class Ingest:
    """One ingest process: a consumer-group member with its producer, on the bus it is given."""

    def __init__(self, settings: IngestSettings, bus: Bus):
        self.settings = settings
        self._bus = bus
        self.events_topic = bus.topic(EVENTS)
        self.dlq_topic = bus.topic(EVENTS_DLQ)
        self._client_id = f"{settings.client_id}-{socket.gethostname()}-{os.getpid()}"
        self.producer = bus.producer(client_id=self._client_id)
        self.follower = DefinitionsFollower(bus, client_id=f"{self._client_id}-definitions", on_change=self._apply)
        self._config: _Config | None = None  # swapped whole by the follower's thread, read once per batch
        self.consumer: Consumer | None = None  # the current subscription's (the loop's thread only)
        self.assigned = False  # set by the loop's thread (the consumer is not shared across threads)
        self._batch = BatchPath(self.producer, self.events_topic, settings.max_future_skew_ms)

    @property
    def ready(self) -> bool:
        """A revision with sources is in force, still followed, and this member holds partitions."""
        return self._config is not None and self.follower.alive() and self.assigned

    @property
    def revision(self) -> int | None:
        return self._config.revision if self._config is not None else None

    def run(self, stop: StopFlag) -> int:
        """Consume every declared source's topic until `stop`; returns the number of records handled."""
        self.follower.start(self.settings.definitions_timeout_s)
        handled = 0
        try:
            while not stop.is_set():
                config = self._config
                if config is None or not config.routes:
                    self.assigned = False  # nothing declared yet: records wait in Kafka
                    stop.wait(self.settings.poll_timeout_s)
                    continue
                handled += self._consume(config, stop)
        finally:
            self.follower.stop()
        return handled

    def _consume(self, config: _Config, stop: StopFlag) -> int:
        """One subscription to `config`'s topics, until `stop` or until a revision changes the set of topics."""
        topics = config.topics
        self._ensure_topics(config)
        self.consumer = self._bus.consumer(group_id=self.settings.group_id, topics=sorted(topics),
                                           client_id=self._client_id)
        self.assigned = False
        log.info("ingest subscribed", extra={"fields": {
            "revision": config.revision, "sources": sorted(topics), "events": self.events_topic,
            "dlq": self.dlq_topic, "group": self.settings.group_id}})
        # each record's failures are dead-lettered inside handle_batch; a failure of the batch itself is a bug of
        # this loop: stop without committing, so the batch is read again after a restart
        handled = run_loop(
            self.consumer,
            handle_batch=self.handle_batch,
            stop=_Until(stop, lambda: self._config is not None and self._config.topics != topics),
            policy=FailurePolicy.STOP,
            producer=self.producer,
            batch_size=self.settings.batch_size,
            poll_timeout=self.settings.poll_timeout_s,
            on_idle=self._check_assigned,
        )
        self.assigned = False  # run_loop closed the consumer
        return handled

    def _ensure_topics(self, config: _Config) -> None:
        # `mlops apply` creates a source's topic; a subscription to a topic that is missing anyway (deleted, or
        # definitions published another way) would fail the consumer, so make sure of it
        if self._bus.settings is None:
            return
        try:
            ensure_topics(self._bus.settings, config.topic_specs)
        except Exception as exc:  # the consumer says it again, with the broker's error, if it matters
            log.warning("could not ensure the source topics", extra={"fields": {"error": str(exc)}})

    def _apply(self, revision: Revision) -> None:
        """The follower's callback: compile the revision and swap it in whole (or keep the one in force)."""
        definitions = revision.definitions
        try:
            validators = compile_sources(definitions)
            routes, specs = {}, []
            for source in definitions.sources:
                spec = TopicSpec(source.topic, f"raw records of source {source.name!r}")
                topic = self._bus.topic(spec)
                attrs = messaging_attributes("process", topic, group=self.settings.group_id)
                routes[topic] = Route(validators[source.name], attrs | {"mlops.source": source.name})
                specs.append(spec)
        except Exception:  # a revision this release cannot validate by: keep serving the one in force
            log.exception("definitions revision not applied", extra={"fields": {"revision": revision.number}})
            return
        self._config = _Config(revision.number, routes, tuple(specs))
        metrics.DEFINITIONS_REVISION.set(revision.number)
        log.info("definitions applied", extra={"fields": {"revision": revision.number, "sources": sorted(
            s.name for s in definitions.sources)}})

    def _check_assigned(self) -> None:
        self.assigned = self.consumer is not None and bool(self.consumer.assignment())

    # --- per batch: run_loop flushes the producer and commits after it returns ---------------------------------
    def handle_batch(self, records: list[Record]) -> None:
        """Validate every record into events or dead letters, by the revision in force when the batch began: the
        batch path for each source topic's common valid JSON records, the per-record path (`handle`) for the rest,
        in the records' order; metrics are published once per batch (hot path)."""
        started = time.perf_counter()
        config = self._config
        routes = config.routes if config is not None else {}
        out = 0
        dlq: dict[str, int] = {}
        for topic, group in by_topic(records):
            route = routes.get(topic)
            for record in self._batch.leftovers(route, topic, group) if route is not None else group:
                try:  # the per-record path: what the batch path left (bad records, lenient forms, protobuf)
                    error_type = self.handle(record, routes)
                except Exception as exc:  # a bug, not bad input: the record still goes to the DLQ (never lost)
                    error_type = self.on_unexpected(record, exc)
                if error_type is None:
                    out += 1
                else:
                    dlq[error_type] = dlq.get(error_type, 0) + 1
        out += self._batch.take_sent()
        seconds = time.perf_counter() - started
        metrics.RECORDS_IN.inc(len(records))
        if out:
            metrics.RECORDS_OUT.inc(out)
        for error_type, n in dlq.items():
            metrics.RECORDS_DLQ.labels(error_type).inc(n)
        metrics.PROCESSING.observe(seconds / len(records))
        metrics.BATCH.observe(seconds)
        self._check_assigned()

    # --- per record ------------------------------------------------------------------------------------------
    def handle(self, record: Record, routes: dict[str, Route] | None = None) -> str | None:
        """Produce the record's Event, or its DeadLetter; returns the dead letter's error type (None: an event)."""
        start_ns = time.time_ns()
        now_ms = start_ns // 1_000_000
        topic, partition, offset, key = record.topic, record.partition, record.offset, record.key
        headers = record.headers
        if routes is None:
            routes = self._config.routes if self._config is not None else {}
        route = routes.get(topic)
        if route is None:  # definitions changed under a subscription: say so, never drop it silently
            return self._unrouted(record, now_ms)
        # one CONSUMER span per record, child of the producer's span when the record carries a traceparent; it is
        # started after validation with the time taken before it, so it still covers validate+convert+produce
        parent = extract_context(headers) if "traceparent" in headers else NO_PARENT
        try:
            ev = validate(
                record.value,
                route.validator,
                content_type=record.header(HEADER_CONTENT_TYPE),
                fallback_event_id=f"{topic}/{partition}/{offset}",
                now_ms=now_ms,
                max_future_skew_ms=self.settings.max_future_skew_ms,
            )
        except Rejected as rej:
            span = record_span(route, parent, start_ns, partition, offset, key, None)
            try:
                span.set_attribute("mlops.dlq.error_type", rej.error_type)
                span.set_status(Status(StatusCode.ERROR, rej.reason))
                self._dead_letter(record, rej.error_type, rej.field, rej.reason, now_ms, trace_headers(span, headers))
            finally:
                span.end()
            return rej.error_type
        except Exception as exc:  # a bug in validation: still one span per record, then it is dead-lettered
            span = record_span(route, parent, start_ns, partition, offset, key, None)
            failed(span, exc)
            span.end()
            raise
        span = record_span(route, parent, start_ns, partition, offset, key, ev.event_id)
        try:
            self.producer.send(
                self.events_topic,
                to_event(ev, topic, partition, offset, now_ms),
                key=ev.entity_id,
                headers=trace_headers(span, headers),
            )
        except Exception as exc:  # a bug, not bad input: the record is dead-lettered
            failed(span, exc)
            raise
        finally:
            span.end()
        return None

    def _unrouted(self, record: Record, now_ms: int) -> str:
        revision = self.revision
        reason = (f"topic {record.topic!r} is not the topic of any source declared in definitions revision "
                  f"{revision}" if revision is not None else f"topic {record.topic!r}: no definitions in force")
        self._dead_letter(record, UNKNOWN_TOPIC, "", reason, now_ms)
        return UNKNOWN_TOPIC

    def _dead_letter(
        self,
        record: Record,
        error_type: str,
        field: str,
        reason: str,
        now_ms: int,
        headers: dict[str, str] | None = None,
    ) -> None:
        dead = to_dead_letter(record, error_type, field, reason, now_ms, self.settings.dead_letter_original_bytes)
        self.producer.send(self.dlq_topic, dead, key=record.key, headers=headers)

    def on_unexpected(self, record: Record, exc: Exception) -> str:
        """A bug, not bad input: the record still goes to the DLQ (never lost, never a crash loop)."""
        log.exception("unexpected error; dead-lettering", extra={"fields": {"where": record.where}})
        self._dead_letter(record, INTERNAL_ERROR, "", f"{type(exc).__name__}: {exc}", int(time.time() * 1000))
        return INTERNAL_ERROR
