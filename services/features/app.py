"""The faust edge of features, declared top-down: app → topics → tables → agent.

    events ──► [featurize agent] ──► Redis online view (AsyncOnlineStore: hash per entity, TTL, version)
                     │   ▲                └────► features.log (FeatureVector, as_of_ms = the event's event time)
                     ▼   │
        tables: latest (per entity) · one windowed table per window spec (tumbling 60 s, hopping 30 s / 10 s),
        windows keyed by EVENT time; every table is backed by `<app_id>-<table>-changelog` (rebuilt on start)

Records are protobuf: the topics use faust's raw serializer and `mlops.contracts.decode` turns bytes into an
`Event`. faust commits a source offset only after the agent acknowledged the event and after flushing its producer
(faust.transport.consumer), so features.log is at-least-once.
"""

from __future__ import annotations

import contextvars
import logging
import time
from dataclasses import dataclass
from typing import Any

import faust
from mlops import contracts
from mlops.bus import HEADER_CONTENT_TYPE, HEADER_CONTRACT, HEADER_MESSAGE_TYPE
from mlops.contracts import events_pb2
from mlops.online_store import AsyncOnlineStore
from mlops.schema import FEATURE_SET, FeatureSet
from mlops.settings import KafkaSettings, RedisSettings
from mlops.telemetry import extract_context, inject_headers, messaging_attributes, traceparent_of_current, tracer
from mlops.topics import EVENTS, FEATURES_LOG, topic_name
from opentelemetry.trace import SpanKind

from . import metrics
from .core import WindowSpec, assemble, fold_latest, fold_window, window_groups
from .settings import FeaturesSettings

log = logging.getLogger("mlops.features")
_tracer = tracer("mlops.features")

# the event time (seconds) of the event being folded: what the windowed tables are relative to
_event_time_s: contextvars.ContextVar[float] = contextvars.ContextVar("event_time_s")


def _relative_to_event_time(event: Any = None) -> float:
    return _event_time_s.get()


@dataclass
class FeaturesApp:
    app: faust.App
    store: AsyncOnlineStore
    events_topic: str
    features_log_topic: str
    ready: dict[str, bool]


def create_app(
    settings: FeaturesSettings,
    kafka: KafkaSettings,
    redis: RedisSettings,
    feature_set: FeatureSet = FEATURE_SET,
) -> FeaturesApp:
    # --- app ---------------------------------------------------------------------------------------------------
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

    # --- topics ------------------------------------------------------------------------------------------------
    events_name = topic_name(EVENTS, kafka)
    features_log_name = topic_name(FEATURES_LOG, kafka)
    events = app.topic(events_name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    features_log = app.topic(features_log_name, key_serializer="raw", value_serializer="raw")

    # --- tables ------------------------------------------------------------------------------------------------
    latest = app.Table("latest", default=dict)
    groups = window_groups(feature_set)
    windowed = {
        spec: _windowed_table(app, spec, settings.window_expires_s).relative_to(_relative_to_event_time)
        for spec in groups
    }
    store = AsyncOnlineStore(redis, feature_set)
    ready = {"assigned": False}

    # --- agent -------------------------------------------------------------------------------------------------
    @app.agent(events, name="featurize")
    async def featurize(stream: faust.StreamT) -> None:
        async for event in stream.events():
            started = time.perf_counter()
            msg = event.message
            where = f"topic={msg.topic} partition={msg.partition} offset={msg.offset}"
            try:
                ev = contracts.decode(events_pb2.Event, event.value, where)
            except contracts.ContractError as exc:
                metrics.REJECTED.labels("undecodable").inc()
                log.error("skipping undecodable event", extra={"fields": {"where": where, "error": str(exc)}})
                continue
            attrs = messaging_attributes("process", msg.topic, msg.partition, msg.offset, ev.entity_id,
                                         settings.app_id)
            with _tracer.start_as_current_span(
                "features update", context=extract_context(msg.headers), kind=SpanKind.CONSUMER, attributes=attrs
            ) as span:
                span.set_attribute("mlops.event_id", ev.event_id)
                entity, values = ev.entity_id, dict(ev.values)
                t_s = ev.event_time_ms / 1000.0
                token = _event_time_s.set(t_s)
                try:
                    state = fold_latest(latest[entity], values, ev.event_time_ms)
                    latest[entity] = state
                    read: dict[WindowSpec, Any] = {}
                    for spec, aggs in groups.items():
                        wset = windowed[spec][entity]
                        window = windowed[spec].table.window
                        for rng in window.ranges(t_s):
                            wset[rng] = fold_window(wset[rng], aggs, values)
                        read[spec] = wset[window.earliest(t_s)]  # the oldest window holding t (core.read_range)
                finally:
                    _event_time_s.reset(token)
                vector = assemble(feature_set, state, read)
                # the view carries this update's traceparent: a prediction that reads it links back here
                traceparent = traceparent_of_current()
                with _tracer.start_as_current_span("online_store write", kind=SpanKind.CLIENT,
                                                   attributes={"db.system": "redis", "db.operation": "HSET",
                                                               "mlops.entity_id": entity}):
                    await store.write(entity, vector, ev.event_time_ms, traceparent)
                if ev.ingest_time_ms:
                    metrics.FRESHNESS.observe(max(0.0, time.time() - ev.ingest_time_ms / 1000.0))
                record = events_pb2.FeatureVector(
                    entity_id=entity, feature_set=feature_set.name, feature_set_version=feature_set.version,
                    as_of_ms=ev.event_time_ms, values=vector, event_id=ev.event_id,
                )
                with _tracer.start_as_current_span(f"{features_log_name} publish", kind=SpanKind.PRODUCER,
                                                   attributes=messaging_attributes("publish", features_log_name,
                                                                                   key=entity)):
                    headers = inject_headers({
                        HEADER_CONTENT_TYPE: contracts.CONTENT_TYPE,
                        HEADER_CONTRACT: str(contracts.CONTRACT_VERSION),
                        HEADER_MESSAGE_TYPE: record.DESCRIPTOR.full_name,
                    })
                    await features_log.send(
                        key=entity.encode(), value=contracts.encode(record),
                        headers=[(k, v.encode()) for k, v in headers.items()],
                    )
            metrics.UPDATES.inc()
            metrics.PROCESSING.observe(time.perf_counter() - started)

    @app.timer(interval=settings.commit_interval_s * 5)
    async def _consumer_lag() -> None:
        try:
            for tp in app.consumer.assignment():
                if tp.topic == events_name:
                    position, high = await app.consumer.position(tp), app.consumer.highwater(tp)
                    if position is not None and high is not None:
                        metrics.CONSUMER_LAG.labels(str(tp.partition)).set(max(0, high - position))
        except Exception as exc:  # metrics must never stop the worker
            log.debug("lag refresh failed", extra={"fields": {"error": str(exc)}})

    @app.on_rebalance_complete.connect
    async def _assigned(sender: Any, **kwargs: Any) -> None:
        ready["assigned"] = True
        log.info("rebalance complete", extra={"fields": {"app_id": settings.app_id}})

    return FeaturesApp(app, store, events_name, features_log_name, ready)


def _windowed_table(app: faust.App, spec: WindowSpec, expires_s: float) -> Any:
    table = app.Table(spec.name, default=dict)
    if spec.kind == "tumbling":
        return table.tumbling(spec.size_s, expires=expires_s)
    return table.hopping(spec.size_s, spec.step_s, expires=expires_s)
