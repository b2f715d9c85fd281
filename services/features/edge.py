"""The faust edge of features, declared like its diagram in `build`: app → topics → tables → agent → timers.

    events ──► [featurize agent] ──► online store (one MULTI/EXEC per batch: hash per entity, TTL, version)
                     │   ▲      └──► features.log (one FeatureVector per event, as_of_ms = the event's time)
                     ▼   │
        tables: latest (per entity) · one windowed table per window spec, windows keyed by EVENT time;
        every table is backed by `<app_id>-<table>-changelog` (rebuilt on start)

Records are protobuf: the events topic uses faust's raw serializer and `convert` turns bytes into a domain
`Event`; `core.fold` does the rest on plain values. The agent takes events in batches (up to `batch_max`, waiting
at most `batch_wait_s`), because per event a Redis round trip and one changelog record per table key cost more
than the fold: each table key is written back once per batch, the newest view of each entity goes to the store
in one MULTI/EXEC, and features.log is flushed before the batch returns. faust acks a batch only after that and
commits acked offsets only after flushing its own producer (the changelogs), so features.log is at-least-once.
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
from mlops.bus import KafkaBus, Producer, set_lag
from mlops.online_store import OnlineStore
from mlops.schema import FEATURE_SET, FeatureSet
from mlops.telemetry import extract_context, messaging_attributes, traceparent_of_current, tracer
from mlops.topics import EVENTS, FEATURES_LOG
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context

from services.features import metrics
from services.features.convert import event_from_bytes, feature_vector_record
from services.features.core import LATEST, Event, FeatureVector, Plan, State, WindowSpec, fold
from services.features.settings import FeaturesSettings

log = logging.getLogger("mlops.features")
_tracer = tracer("mlops.features")


@dataclass(frozen=True)
class FeaturesApp:
    app: faust.App
    events_topic: str
    features_log_topic: str


def build(
    settings: FeaturesSettings,
    bus: KafkaBus,
    store: OnlineStore,
    *,
    feature_set: FeatureSet = FEATURE_SET,
    on_assigned: Callable[[], None] = lambda: None,
) -> FeaturesApp:
    """The faust app of features on `bus`'s broker and topics, writing views to `store`; `on_assigned` is called
    once partitions are assigned (readiness). faust is its own Kafka client, so this takes the real bus only."""
    plan, kafka = Plan.of(feature_set), bus.settings

    # --- app -------------------------------------------------------------------------------------------------
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{host.strip()}" for host in kafka.bootstrap_servers.split(",")],
        store=settings.store,
        datadir=settings.data_dir,
        topic_partitions=kafka.default_partitions,
        topic_replication_factor=kafka.replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=settings.commit_interval_s,
        web_enabled=False,
    )

    # --- topics ----------------------------------------------------------------------------------------------
    events_name, features_log_name = bus.topic(EVENTS), bus.topic(FEATURES_LOG)
    events = app.topic(events_name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    # --- tables ----------------------------------------------------------------------------------------------
    latest = app.Table(LATEST, default=dict)
    windowed = {spec: _windowed_table(app, spec, settings.window_expires_s) for spec in plan.groups}

    # --- agent -----------------------------------------------------------------------------------------------
    # features.log goes out through the C client (librdkafka): faust's pure-Python producer cost more per record
    # than the fold
    producer = bus.producer(client_id=f"{settings.app_id}-features-log")
    featurizer = Featurizer(plan, store, producer, features_log_name, settings.app_id)

    @app.agent(events, name="featurize")
    async def featurize(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(settings.batch_max, within=settings.batch_wait_s):
            await featurizer.handle(batch, FaustTables(latest, windowed))

    # --- timers ----------------------------------------------------------------------------------------------
    @app.timer(interval=settings.commit_interval_s * 5)
    async def report_lag() -> None:
        try:
            for tp in app.consumer.assignment():
                if tp.topic == events_name:
                    position, high = await app.consumer.position(tp), app.consumer.highwater(tp)
                    if position is not None and high is not None:
                        set_lag(settings.app_id, tp.topic, tp.partition, high - position)
        except Exception as exc:  # metrics must never stop the worker
            log.debug("lag refresh failed", extra={"fields": {"error": str(exc)}})

    @app.on_rebalance_complete.connect
    async def assigned(sender: Any, **kwargs: Any) -> None:
        on_assigned()
        log.info("rebalance complete", extra={"fields": {"app_id": settings.app_id}})

    return FeaturesApp(app, events_name, features_log_name)


def _windowed_table(app: faust.App, spec: WindowSpec, expires_s: float) -> Any:
    table = app.Table(spec.name, default=dict)
    if spec.kind == "tumbling":
        return table.tumbling(spec.size_s, expires=expires_s)
    return table.hopping(spec.size_s, spec.step_s, expires=expires_s)


class BatchTables(State, Protocol):
    """The tables one batch folds into: `own(event)` names the event the following puts come from (its
    partition is the changelog partition); `write_back()` writes every key put once."""

    def own(self, event: EventT) -> None: ...

    def write_back(self) -> None: ...


class FaustTables:
    """`BatchTables` over the faust tables: each key is read once and written back once per batch, so a batch
    sends one changelog record per key instead of one per event.

    faust routes a table write to the changelog partition of the *current event*, a context variable faust keeps
    private (`faust.streams._current_event`); `write_back` makes each key's last event current while writing it
    (the source and changelog partitions of a key are the same). This class is the only user of that variable.
    """

    def __init__(self, latest: Any, windowed: dict[WindowSpec, Any]):
        self._latest = latest
        self._windowed = windowed
        self._values: dict[tuple[Any, Any], Any] = {}
        self._owner: dict[tuple[Any, Any], EventT] = {}
        self._event: EventT | None = None

    def own(self, event: EventT) -> None:
        self._event = event

    def get(self, table: Any, key: Any) -> Any:
        slot = (table, key)
        if slot not in self._values:
            source = self._latest if table == LATEST else self._windowed[table].table
            self._values[slot] = source[key]
        return self._values[slot]

    def put(self, table: Any, key: Any, value: Any) -> None:
        assert self._event is not None, "own(event) before put"
        self._values[(table, key)] = value
        self._owner[(table, key)] = self._event

    def write_back(self) -> None:
        for (table, key), event in self._owner.items():
            token = _current_event.set(weakref.ref(event))
            try:
                if table == LATEST:
                    self._latest[key] = self._values[(table, key)]
                else:
                    entity, rng = key
                    self._windowed[table][entity][rng] = self._values[(table, key)]  # also updates the key index
            finally:
                _current_event.reset(token)


@dataclass
class _Update:
    event: Event
    vector: FeatureVector
    traceparent: str
    span: Span
    context: Context


class Featurizer:
    """The agent's work on one batch: decode each event, fold it, publish its vector to features.log, then write
    the newest view of each entity to the store and flush features.log before returning."""

    def __init__(self, plan: Plan, store: OnlineStore, producer: Producer, features_log: str, group: str):
        self.plan = plan
        self._store = store
        self._producer = producer
        self._features_log = features_log
        self._group = group

    async def handle(self, batch: Sequence[EventT], tables: BatchTables) -> None:
        started = time.perf_counter()
        updates: list[_Update] = []
        try:
            for event in batch:
                update = self._fold_one(event, tables)
                if update is not None:
                    updates.append(update)
            tables.write_back()
            # the view of each entity is the last update in the batch: earlier ones would be overwritten at once
            newest = {u.vector.entity_id: u for u in updates}
            await self._write(list(newest.values()))
            now = time.time()
            for u in updates:
                if u.event.ingest_time_ms:
                    metrics.FRESHNESS.observe(max(0.0, now - u.event.ingest_time_ms / 1000.0))
        except Exception as exc:
            for u in updates:
                u.span.record_exception(exc)
                u.span.set_status(Status(StatusCode.ERROR, str(exc)))
            raise
        finally:
            for u in updates:
                u.span.end()
        metrics.UPDATES.inc(len(updates))
        metrics.BATCH_SIZE.observe(len(batch))
        metrics.PROCESSING.observe((time.perf_counter() - started) / len(batch))

    def _fold_one(self, event: EventT, tables: BatchTables) -> _Update | None:
        msg = event.message
        where = f"topic={msg.topic} partition={msg.partition} offset={msg.offset}"
        try:
            ev = event_from_bytes(event.value, where)
        except contracts.ContractError as exc:
            metrics.REJECTED.labels("undecodable").inc()
            log.error("skipping undecodable event", extra={"fields": {"where": where, "error": str(exc)}})
            return None
        attrs = messaging_attributes("process", msg.topic, msg.partition, msg.offset, ev.entity_id, self._group)
        # ended by handle once the batch's online view is written
        span = _tracer.start_span("features update", context=extract_context(msg.headers), kind=SpanKind.CONSUMER,
                                  attributes=attrs)
        span.set_attribute("mlops.event_id", ev.event_id)
        context = set_span_in_context(span)
        tables.own(event)
        vector = fold(self.plan, tables, ev)
        with _tracer.start_as_current_span(f"{self._features_log} publish", context=context, kind=SpanKind.PRODUCER,
                                           attributes=messaging_attributes("publish", self._features_log,
                                                                           key=ev.entity_id)):
            record = feature_vector_record(self.plan.feature_set, vector)
            self._producer.send(self._features_log, record, key=ev.entity_id)  # carries this span's traceparent
        # the view carries this update's traceparent: a prediction that reads it links back here
        return _Update(ev, vector, traceparent_of_current(context), span, context)

    async def _write(self, views: list[_Update]) -> None:
        """The views in one store write, while features.log is flushed (acknowledged before the batch is)."""
        flushed = asyncio.ensure_future(asyncio.to_thread(self._producer.flush))
        begun = time.time_ns()
        try:
            await self._store.write_many([(u.vector.entity_id, u.vector.values, u.vector.as_of_ms, u.traceparent)
                                          for u in views])
        finally:
            await flushed
        written = time.time_ns()
        for u in views:
            span = _tracer.start_span("online_store write", context=u.context, kind=SpanKind.CLIENT,
                                      start_time=begun, attributes={
                                          "db.system": "redis", "db.operation": "HSET",
                                          "mlops.entity_id": u.vector.entity_id, "mlops.batch_entities": len(views)})
            span.end(end_time=written)
