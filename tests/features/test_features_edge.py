"""The features edge without a broker or a running faust worker: batches through `Featurizer` with dict tables, an
in-memory store and producer — routing by source, one features.log record per event and view, the newest view of
each (view, entity) written once per batch, and a new definitions revision taking effect on the next batch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from mlops import contracts
from mlops import definitions as d
from mlops.bus import MemoryBus
from mlops.contracts import events_pb2
from mlops.online_store import MemoryOnlineStore, ViewLayout, ViewUpdate
from mlops.topics import FEATURES_LOG

from services.features import metrics
from services.features.core import DictState, Event, FeaturesConfig, ReferenceFeatures
from services.features.edge import Featurizer

T = 1_700_000_000_000
ROOT = Path(__file__).resolve().parents[2]


def revision(*paths: str, prior: d.Revision | None = None) -> d.Revision:
    """One revision holding the examples named (applied side by side, as two teams would)."""
    for path in paths:
        prior = d.plan(prior, d.load(ROOT / "examples" / path / "definitions.yaml"), "test").revision
    assert prior is not None
    return prior


SEA = revision("sea")
BOTH = revision("sea", "delivery")


class Tables(DictState):
    """Dict tables that remember which event owned each put and how often the batch was written back."""

    def __init__(self) -> None:
        super().__init__()
        self.owner: dict[Any, Any] = {}
        self.write_backs = 0
        self._event: Any = None

    def own(self, event: Any) -> None:
        self._event = event

    def put(self, key: str, value: Any) -> None:
        super().put(key, value)
        self.owner[key] = self._event

    def write_back(self) -> None:
        self.write_backs += 1


class Store(MemoryOnlineStore):
    """The in-memory online store, counting its writes (one per batch), or failing them."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.writes: list[list[tuple[str, str]]] = []
        self.fail = fail

    async def write_many(self, updates: Sequence[ViewUpdate]) -> None:
        if self.fail:
            raise ConnectionError("redis is down")
        self.writes.append([(u.layout.name, u.entity_id) for u in updates])
        await super().write_many(updates)


def record(offset: int, value: bytes) -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(topic="t.events", partition=0, offset=offset, headers=[]),
                           value=value)


def sea(offset: int, entity: str, t_ms: int, x0: float, source: str = "sea_events") -> SimpleNamespace:
    return record(offset, contracts.encode(events_pb2.Event(
        event_id=f"ev{offset}", entity_id=entity, event_time_ms=t_ms, ingest_time_ms=T, schema_version=1,
        values={"x0": x0, "x1": 1.0, "x2": 2.0}, source_name=source)))


def order(offset: int, customer: str, t_ms: int, amount: float, channel: str) -> SimpleNamespace:
    return record(offset, contracts.encode(events_pb2.Event(
        event_id=f"ev{offset}", entity_id=customer, event_time_ms=t_ms, ingest_time_ms=T, schema_version=1,
        values={"amount": amount, "items": 2, "express": 1}, categories={"channel": channel},
        source_name="orders")))


def domain(rec: SimpleNamespace) -> Event:
    ev = contracts.decode(events_pb2.Event, rec.value)
    return Event(ev.event_id, ev.source_name, ev.entity_id, ev.event_time_ms, ev.ingest_time_ms, dict(ev.values),
                 dict(ev.categories))


def featurizer(bus: MemoryBus, store: Store, rev: d.Revision = SEA) -> Featurizer:
    f = Featurizer(store, bus.producer(client_id="features-test"), bus.topic(FEATURES_LOG), "features-test")
    f.reconfigure(rev)
    return f


def features_log(bus: MemoryBus) -> list[tuple[bytes | None, events_pb2.FeatureVector]]:
    return [(r.key, r.decode(events_pb2.FeatureVector)) for r in bus.records(bus.topic(FEATURES_LOG))]


def layout(rev: d.Revision, view: str) -> ViewLayout:
    return ViewLayout.of(rev.definitions, view, rev.view_versions[view])


async def test_a_batch_folds_publishes_and_writes_the_newest_view_once() -> None:
    bus, store, tables = MemoryBus(), Store(), Tables()
    # the last event of "a" is late: it counts in its windows, and the online view stays as of a's newest event
    batch = [sea(0, "a", T, 1.0), sea(1, "b", T + 10, 5.0), sea(2, "a", T + 2000, 3.0), record(3, b"\xffnot"),
             sea(4, "a", T + 1000, 2.0, source="")]  # unnamed: the only source's
    rejected = metrics.REJECTED.labels("undecodable")._value.get()

    await featurizer(bus, store).handle(batch, tables)

    ref = ReferenceFeatures(FeaturesConfig.of(SEA))
    want = {f"ev{i}": ref.update(domain(batch[i]))["entity_activity"] for i in (0, 1, 2, 4)}
    log = {rec.event_id: (key, rec) for key, rec in features_log(bus)}
    assert sorted(log) == ["ev0", "ev1", "ev2", "ev4"]  # flushed before handle returned
    for event_id, (_, rec) in log.items():
        assert dict(rec.values) == pytest.approx(want[event_id])
        assert rec.feature_set == "entity_activity" and rec.feature_set_version == SEA.view_versions["entity_activity"]
    assert log["ev4"][0] == b"a" and log["ev4"][1].as_of_ms == T + 1000
    assert metrics.REJECTED.labels("undecodable")._value.get() == rejected + 1
    assert store.writes == [[("entity_activity", "a"), ("entity_activity", "b")]]  # one write per batch
    a, b = await store.read_many(layout(SEA, "entity_activity"), ["a", "b"])
    online_a = ref.online("entity_activity", "a")
    assert a is not None and online_a is not None and a.as_of_ms == T + 2000 == online_a[0]
    assert a.values == pytest.approx(online_a[1]) and a.values["x0_last"] == 3.0
    assert b is not None and b.as_of_ms == T + 10 and b.values == pytest.approx(want["ev1"])
    assert tables.write_backs == 1
    assert tables.owner["entity_activity:a"] is batch[4] and tables.owner["entity_activity:b"] is batch[1]


async def test_events_go_to_the_views_of_their_source_only() -> None:
    bus, store = MemoryBus(), Store()
    f = featurizer(bus, store, BOTH)
    skipped = metrics.REJECTED.labels("no_source")._value.get()
    batch = [sea(0, "a", T, 1.0), order(1, "c1", T, 12.5, "web"), order(2, "c1", T + 1, 30.0, "__other__"),
             sea(3, "a", T + 5, 2.0, source="")]  # unnamed among two sources: skipped
    await f.handle(batch, Tables())
    log = features_log(bus)
    assert [(r.event_id, r.feature_set) for _, r in log] == [
        ("ev0", "entity_activity"), ("ev1", "customer_orders"), ("ev2", "customer_orders")]
    assert metrics.REJECTED.labels("no_source")._value.get() == skipped + 1
    [c1] = await store.read_many(layout(BOTH, "customer_orders"), ["c1"])
    assert c1 is not None and c1.as_of_ms == T + 1
    assert c1.values["amount_last"] == 30.0 and c1.values["orders_1h"] == 2.0 and c1.values["channel=web"] == 0.0


async def test_a_new_revision_applies_from_the_next_batch_and_keeps_unchanged_state() -> None:
    bus, store = MemoryBus(), Store()
    f, tables = featurizer(bus, store, SEA), Tables()
    await f.handle([sea(0, "a", T, 1.0), sea(1, "a", T + 1, 1.0)], tables)
    changed = SEA.definitions.model_copy(deep=True)
    view = changed.feature_views[0]
    extra = view.features[0].model_copy(update={"name": "x0_max", "aggregation": d.Aggregation.MAX})
    changed = changed.model_copy(update={"feature_views": (view.model_copy(
        update={"features": (*view.features, extra)}),)})
    rev2 = d.plan(SEA, changed, "test").revision
    assert rev2 is not None and rev2.view_versions["entity_activity"] == SEA.view_versions["entity_activity"] + 1
    f.reconfigure(rev2)
    assert metrics.REVISION._value.get() == rev2.number
    await f.handle([sea(2, "a", T + 2, 4.0)], tables)
    last = features_log(bus)[-1][1]
    assert last.feature_set_version == rev2.view_versions["entity_activity"]
    assert last.values["x0_max"] == 4.0  # new feature: from this event on
    assert last.values["events_30s"] == 3.0  # unchanged feature: its state carried over
    [new] = await store.read_many(layout(rev2, "entity_activity"), ["a"])
    [old] = await store.read_many(layout(SEA, "entity_activity"), ["a"])
    assert new is not None and new.values["x0_max"] == 4.0 and old is not None and old.as_of_ms == T + 1


async def test_a_failed_store_write_fails_the_batch() -> None:
    bus = MemoryBus()
    with pytest.raises(ConnectionError):
        await featurizer(bus, Store(fail=True)).handle([sea(0, "a", T, 1.0)], Tables())
    assert len(features_log(bus)) == 1  # features.log was still flushed
