"""The faust edge of features, declared like its diagram in `build`: app → topics → tables → agent → timers.

    definitions ──► DefinitionsFollower ──► Featurizer.reconfigure (a new FeaturesConfig, swapped whole)
    events ──► [featurize agent] ──► online store (one MULTI/EXEC per batch: each touched view of each entity)
                     │   ▲      └──► features.log (one FeatureVector per event and view, as_of_ms = event time)
                     ▼   │
        table `views`: the state of each (view, entity), backed by `<app_id>-views-changelog` (rebuilt on start);
        one generic table because faust tables are declared at start while views change at run time

Records are protobuf: the events topic uses faust's raw serializer and `convert` turns bytes into a domain
`Event`; `core.fold` routes it by source to its views and does the rest on plain values. The agent takes events in
batches (up to `batch_max`, waiting at most `batch_wait_s`), because per event a Redis round trip and one changelog
record per table key cost more than the fold: each table key is written back once per batch, the newest view of each
(view, entity) goes to the store in one MULTI/EXEC, and features.log is flushed before the table keys are written
back (a replay after a crash never skips an event whose vectors were not acknowledged). Only then does the agent mark
the batch handled, and the consumer (`offsets.HandledOffsetsConsumer`) commits no offset past an event that is not
(faust's own rule could), after flushing faust's producer (the changelogs): features.log is at-least-once. A whole
batch is folded under one definitions revision.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import faust
from faust.streams import _current_event  # the one private faust API: see FaustTables
from faust.types import EventT
from mlops import contracts
from mlops.bus import BusError, KafkaBus, LagSeries, Producer
from mlops.definitions import Revision
from mlops.online_store import OnlineStore, OnlineStoreUnavailable, ViewUpdate
from mlops.settings import KafkaSettings
from mlops.telemetry import extract_context, messaging_attributes, traceparent_of_current, tracer
from mlops.topics import EVENTS, FEATURES_LOG
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context

from services.features import metrics
from services.features.convert import event_from_bytes, feature_vector_record
from services.features.core import FeaturesConfig, FeatureVector, Limits, State, fold, read_view, state_key
from services.features.edge.offsets import HandledOffsetsConsumer, install
from services.features.settings import FeaturesSettings

log = logging.getLogger("mlops.features")
_tracer = tracer("mlops.features")
TABLE = "views"  # the faust table of per-(view, entity) state
STORE_RETRY_MAX_S = 2.0  # longest wait between writes of a batch while Redis is unavailable
FLUSH_WAIT_S = 10.0  # features.log: how long one flush waits before the wait is logged and taken up again


@dataclass(frozen=True)
class FeaturesApp:
    app: faust.App
    featurizer: Featurizer
    events_topic: str
    features_log_topic: str


def broker_credentials(kafka: KafkaSettings) -> faust.types.auth.CredentialsT | None:
    """faust's (aiokafka's) credentials from the KafkaSettings the confluent clients use: the SASL user and
    password, and a TLS context with the same CA and client certificate (None on PLAINTEXT)."""
    context = kafka.ssl_context()
    if kafka.sasl:
        return faust.SASLCredentials(username=kafka.sasl_username, password=kafka.password(),
                                     mechanism=kafka.sasl_mechanism, ssl_context=context)
    return faust.SSLCredentials(context) if context is not None else None


def build(
    settings: FeaturesSettings,
    bus: KafkaBus,
    store: OnlineStore,
    *,
    on_assigned: Callable[[], None] = lambda: None,
    rebuild_online_store: Callable[[], object] | None = None,
) -> FeaturesApp:
    """The faust app of features on `bus`'s broker and topics, writing views to `store`; `on_assigned` is called
    once partitions are assigned (readiness); `rebuild_online_store` (blocking: run in a thread every
    `online_rebuild_check_s`) rebuilds the store when it lost its data and returns None when it had not. faust is
    its own Kafka client, so this takes the real bus only. The agent folds nothing until `featurizer.reconfigure`
    has given it a definitions revision."""
    kafka = bus.settings

    # --- app -------------------------------------------------------------------------------------------------
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{host.strip()}" for host in kafka.bootstrap_servers.split(",")],
        broker_credentials=broker_credentials(kafka),
        store=settings.store,
        datadir=settings.data_dir,
        topic_partitions=kafka.default_partitions,
        topic_replication_factor=kafka.replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=settings.commit_interval_s,
        # the confluent consumers' session timeout for faust too (faust's default, 60 s, kept a killed member's
        # partitions unprocessed for about 70 s after its restart); heartbeats as the confluent consumers send them
        broker_session_timeout=kafka.session_timeout_ms / 1000,
        broker_heartbeat_interval=max(1000, kafka.session_timeout_ms // 4) / 1000,
        consumer_group_instance_id=settings.group_instance_id or None,
        web_enabled=False,
    )
    # commits never pass an event the agent has not handled (faust can: see edge/offsets.py)
    install(app, {bus.topic(EVENTS)})

    # --- topics ----------------------------------------------------------------------------------------------
    events_name, features_log_name = bus.topic(EVENTS), bus.topic(FEATURES_LOG)
    events = app.topic(events_name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    # --- tables ----------------------------------------------------------------------------------------------
    # the changelog really compacted (Kafka leaves the active segment alone): a restart restores about one state
    # per key, not every write since the topic began (restores grew to tens of seconds in the chaos suite)
    lag_ms = str(round(settings.changelog_compaction_lag_s * 1000))
    views = app.Table(TABLE, default=None, extra_topic_configs={
        "max.compaction.lag.ms": lag_ms, "segment.ms": lag_ms, "min.cleanable.dirty.ratio": "0.1"})

    # --- agent -----------------------------------------------------------------------------------------------
    # features.log goes out through the C client (librdkafka): faust's pure-Python producer cost more per record
    # than the fold
    # records never expire in the queue (message.timeout.ms 0): a broker outage is waited out, see _flush
    producer = bus.producer(client_id=f"{settings.app_id}-features-log", extra={"message.timeout.ms": 0})
    limits = Limits(round(settings.late_events_s * 1000), settings.sliding_max_events, settings.remembered_events)
    featurizer = Featurizer(store, producer, features_log_name, settings.app_id, limits)

    @app.agent(events, name="featurize")
    async def featurize(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(settings.batch_max, within=settings.batch_wait_s):
            while featurizer.config is None:  # no definitions yet: hold the batch (unacked: nothing is lost)
                await asyncio.sleep(0.1)
            await featurizer.handle(batch, FaustTables(views))
            consumer: HandledOffsetsConsumer = app.consumer  # type: ignore[assignment]
            consumer.mark_handled(event.message for event in batch)  # only now may their offsets be committed

    # --- timers ----------------------------------------------------------------------------------------------
    lag = LagSeries(settings.app_id)  # a partition revoked since the last report drops its series

    @app.timer(interval=settings.commit_interval_s * 5)
    async def report_lag() -> None:
        try:
            lags = {}
            for tp in app.consumer.assignment():
                if tp.topic == events_name:
                    position, high = await app.consumer.position(tp), app.consumer.highwater(tp)
                    if position is not None and high is not None:
                        lags[(tp.topic, tp.partition)] = high - position
            lag.update(lags)
        except Exception as exc:  # metrics must never stop the worker
            log.debug("lag refresh failed", extra={"fields": {"error": str(exc)}})

    if rebuild_online_store is not None:
        check = rebuild_online_store

        @app.timer(interval=settings.online_rebuild_check_s)
        async def online_store_check() -> None:
            try:
                rebuilt = await asyncio.to_thread(check)
            except Exception as exc:  # Redis still down: the next tick tries again
                log.warning("online store check failed", extra={"fields": {"error": str(exc)}})
                return
            if rebuilt is not None:
                metrics.ONLINE_REBUILDS.inc()

    @app.on_rebalance_complete.connect
    async def assigned(sender: Any, **kwargs: Any) -> None:
        on_assigned()
        log.info("rebalance complete", extra={"fields": {"app_id": settings.app_id}})

    return FeaturesApp(app, featurizer, events_name, features_log_name)


class BatchTables(State, Protocol):
    """The table one batch folds into: `own(event)` names the event the following puts come from (its partition
    is the changelog partition); `write_back()` writes every key put once."""

    def own(self, event: EventT) -> None: ...

    def write_back(self) -> None: ...


class FaustTables:
    """`BatchTables` over the faust table: each key is read once and written back once per batch, so a batch
    sends one changelog record per key instead of one per event.

    faust routes a table write to the changelog partition of the *current event*, a context variable faust keeps
    private (`faust.streams._current_event`); `write_back` makes each key's last event current while writing it
    (the source and changelog partitions of a key are the same: both keyed by entity). This class is the only user
    of that variable.
    """

    def __init__(self, table: Any):
        self._table = table
        self._values: dict[str, Any] = {}
        self._owner: dict[str, EventT] = {}
        self._event: EventT | None = None

    def own(self, event: EventT) -> None:
        self._event = event

    def get(self, key: str) -> Any:
        if key not in self._values:
            self._values[key] = self._table.get(key)
        return self._values[key]

    def put(self, key: str, value: Any) -> None:
        assert self._event is not None, "own(event) before put"
        self._values[key] = value
        self._owner[key] = self._event

    def write_back(self) -> None:
        for key, event in self._owner.items():
            token = _current_event.set(weakref.ref(event))
            try:
                self._table[key] = self._values[key]
            finally:
                _current_event.reset(token)


@dataclass
class _Update:
    """The newest update of one (view, entity) in a batch, and the span of the event that made it."""

    vector: FeatureVector
    traceparent: str
    span: Span


class Featurizer:
    """The agent's work on one batch: decode each event, fold it into the views of its source, publish one vector
    per view to features.log, then write the newest view of each (view, entity) to the store and flush
    features.log before returning. `reconfigure` swaps the definitions in force (called by the follower thread)."""

    def __init__(self, store: OnlineStore, producer: Producer, features_log: str, group: str,
                 limits: Limits | None = None, config: FeaturesConfig | None = None):
        self.config = config
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
        spans: list[tuple[Span, int]] = []
        newest: dict[tuple[str, str], _Update] = {}
        skipped: dict[str, int] = {}
        try:
            for event in batch:
                self._fold_one(config, event, tables, spans, newest, skipped)
            # features.log acknowledged before the state is written: after a crash in between, the replayed batch
            # meets state that has not folded it and publishes its vectors again (at-least-once). The other way
            # round the replay would be skipped as already folded and its vectors never reach features.log.
            await asyncio.to_thread(self._flush)
            tables.write_back()
            await self._write(self._online_views(tables, newest))
        except Exception as exc:
            for span, _ in spans:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
            raise
        finally:
            for span, _ in spans:
                span.end()
        now = time.time()
        for _, ingest_ms in spans:
            if ingest_ms:
                metrics.FRESHNESS.observe(max(0.0, now - ingest_ms / 1000.0))
        if skipped:
            log.warning("skipped events of no declared source", extra={"fields": {
                "revision": config.revision, "declared": sorted(config.views_by_source), "skipped": skipped}})
        metrics.BATCH_SIZE.observe(len(batch))
        metrics.PROCESSING.observe((time.perf_counter() - started) / len(batch))

    def _fold_one(self, config: FeaturesConfig, event: EventT, tables: BatchTables, spans: list[tuple[Span, int]],
                  newest: dict[tuple[str, str], _Update], skipped: dict[str, int]) -> None:
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
        attrs = messaging_attributes("process", msg.topic, msg.partition, msg.offset, ev.entity_id, self._group)
        # ended by handle once the batch's online views are written
        span = _tracer.start_span(f"process {msg.topic}", context=extract_context(msg.headers), kind=SpanKind.CONSUMER,
                                  attributes=attrs)
        span.set_attribute("mlops.event_id", ev.event_id)
        spans.append((span, ev.ingest_time_ms))
        context = set_span_in_context(span)
        traceparent = self._publish(ev.entity_id, vectors, context)
        for vector in vectors:
            newest[(vector.view.name, ev.entity_id)] = _Update(vector, traceparent, span)

    def _publish(self, entity_id: str, vectors: list[FeatureVector], context: Context) -> str:
        """Each view's vector to features.log under one publish span; returns the traceparent the online views
        carry (a prediction that reads them links back to this update)."""
        with _tracer.start_as_current_span(f"send {self._features_log}", context=context, kind=SpanKind.PRODUCER,
                                           attributes=messaging_attributes("send", self._features_log,
                                                                           key=entity_id)):
            for vector in vectors:
                self._producer.send(self._features_log, feature_vector_record(vector), key=vector.entity_id)
                metrics.UPDATES.labels(vector.view.name).inc()
        return traceparent_of_current(context)

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
    def _online_views(tables: BatchTables, newest: dict[tuple[str, str], _Update]) -> list[tuple[ViewUpdate, Span]]:
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

    async def _write(self, views: list[tuple[ViewUpdate, Span]]) -> None:
        """The views in one store write (features.log was flushed before)."""
        begun = time.time_ns()
        await self._write_until_written([view for view, _ in views])
        written = time.time_ns()
        for view, span in views:
            write = _tracer.start_span("MULTI", context=set_span_in_context(span), kind=SpanKind.CLIENT,
                                       start_time=begun, attributes={
                                           "db.system": "redis", "db.operation.name": "MULTI", "mlops.entity_id":
                                           view.entity_id, "mlops.view": view.layout.name,
                                           "db.operation.batch.size": len(views)})
            write.end(end_time=written)
