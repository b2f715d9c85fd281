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
batch is folded under one definitions revision. The work on one batch, and which events get spans of their own, is
`edge/featurizer.py`.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faust
from faust.streams import _current_event  # private faust API: see FaustTables (and ViewsTable)
from faust.types import EventT
from mlops.bus import KafkaBus, LagSeries
from mlops.online_store import OnlineStore
from mlops.settings import KafkaSettings
from mlops.topics import EVENTS, FEATURES_LOG

from services.features import metrics
from services.features.core import Limits
from services.features.edge.featurizer import Featurizer
from services.features.edge.offsets import HandledOffsetsConsumer, install
from services.features.settings import FeaturesSettings

log = logging.getLogger("mlops.features")
TABLE = "views"  # the faust table of per-(view, entity) state


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
        Table=ViewsTable,
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
    featurizer = Featurizer(store, producer, features_log_name, settings.app_id, limits,
                            traced_per_s=settings.traced_events_per_s or None)

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


class ViewsTable(faust.Table):
    """faust's table, except that a changelog its consumer sees with 0 partitions is not a mismatch yet.

    faust checks, on the first write per source topic, that the changelog has as many partitions as the source,
    reading the counts from its consumer's metadata snapshot (`_verify_source_topic_partitions`, private). When
    faust has just created the changelog, that snapshot can list it with 0 partitions until the next metadata
    refresh (minutes): faust then raised PartitionsMismatch on every event and the agent crash-looped while the
    process looked healthy (seen in CI). No topic has 0 partitions, so 0 means "not known yet": the check is made
    again on a later event, and a real mismatch (3 against 4) still raises."""

    def _verify_source_topic_partitions(self, source_topic: str) -> None:
        if self.app.consumer.topic_partitions(self.changelog_topic_name) == 0:
            return
        super()._verify_source_topic_partitions(source_topic)


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
