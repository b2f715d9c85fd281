"""The features edge without a broker or a running faust worker: a batch through `Featurizer` with dict tables,
an in-memory store and producer; and the window ranges core computes are faust's own."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from faust.windows import HoppingWindow, TumblingWindow
from mlops import contracts
from mlops.bus import MemoryBus
from mlops.contracts import events_pb2
from mlops.online_store import MemoryOnlineStore, View
from mlops.schema import FEATURE_SET
from mlops.topics import FEATURES_LOG

from services.features import metrics
from services.features.core import DictState, Plan, ReferenceAggregator, WindowSpec, ranges
from services.features.edge import Featurizer

T = 1_700_000_000_000


class Tables(DictState):
    """Dict tables that remember which event owned each put and how often the batch was written back."""

    def __init__(self) -> None:
        super().__init__()
        self.owner: dict[Any, Any] = {}
        self.write_backs = 0
        self._event: Any = None

    def own(self, event: Any) -> None:
        self._event = event

    def put(self, table: Any, key: Any, value: Any) -> None:
        super().put(table, key, value)
        self.owner[(table, key)] = self._event

    def write_back(self) -> None:
        self.write_backs += 1


class Store(MemoryOnlineStore):
    """The in-memory online store, counting its writes (one per batch), or failing them."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__(FEATURE_SET)
        self.writes: list[list[str]] = []
        self.fail = fail

    async def write_many(self, views: Sequence[View]) -> None:
        if self.fail:
            raise ConnectionError("redis is down")
        self.writes.append([entity for entity, *_ in views])
        await super().write_many(views)


def event(offset: int, entity: str, t_ms: int, x0: float) -> SimpleNamespace:
    value = contracts.encode(events_pb2.Event(event_id=f"ev{offset}", entity_id=entity, event_time_ms=t_ms,
                                              ingest_time_ms=T, schema_version=1,
                                              values={"x0": x0, "x1": 1.0, "x2": 2.0}))
    return SimpleNamespace(message=SimpleNamespace(topic="t.events", partition=0, offset=offset, headers=[]),
                           value=value)


def featurizer(bus: MemoryBus, store: Store) -> Featurizer:
    producer = bus.producer(client_id="features-test")
    return Featurizer(Plan.of(FEATURE_SET), store, producer, bus.topic(FEATURES_LOG), "features-test")


def features_log(bus: MemoryBus) -> list[tuple[bytes | None, events_pb2.FeatureVector]]:
    """features.log's (key, record) pairs."""
    return [(r.key, r.decode(events_pb2.FeatureVector)) for r in bus.records(bus.topic(FEATURES_LOG))]


async def test_a_batch_folds_publishes_and_writes_the_newest_view_once() -> None:
    bus, store, tables = MemoryBus(), Store(), Tables()
    # the last event of "a" is late: it counts in its windows but does not overwrite the last values
    sent = [(0, "a", T, 1.0), (1, "b", T + 10, 5.0), (2, "a", T + 2000, 3.0), (4, "a", T + 1000, 2.0)]
    batch = [event(*e) for e in sent]
    batch.insert(3, SimpleNamespace(message=SimpleNamespace(topic="t.events", partition=0, offset=3, headers=[]),
                                    value=b"\xffnot a record"))
    rejected = metrics.REJECTED.labels("undecodable")._value.get()

    await featurizer(bus, store).handle(batch, tables)

    ref = ReferenceAggregator(FEATURE_SET)
    want = [ref.update(entity, t, {"x0": x0, "x1": 1.0, "x2": 2.0}) for _, entity, t, x0 in sent]
    # every decodable event is on features.log, flushed before handle returned
    log = {rec.event_id: (key, rec) for key, rec in features_log(bus)}
    assert sorted(log) == ["ev0", "ev1", "ev2", "ev4"]
    assert [dict(log[e][1].values) for e in ("ev0", "ev1", "ev2", "ev4")] == want
    assert log["ev4"][0] == b"a" and log["ev4"][1].as_of_ms == T + 1000
    assert log["ev4"][1].feature_set == FEATURE_SET.name and log["ev1"][0] == b"b"
    assert metrics.REJECTED.labels("undecodable")._value.get() == rejected + 1
    # one store write per batch: the newest update of each entity
    assert store.writes == [["a", "b"]]
    a, b = await store.read_many(["a", "b"])
    assert a is not None and a.as_of_ms == T + 1000 and a.values == pytest.approx(want[3])
    assert b is not None and b.as_of_ms == T + 10 and b.values == pytest.approx(want[1])
    assert a.values["x0_last"] == 3.0
    # one write-back per batch; each key owned by the last event that touched it
    assert tables.write_backs == 1
    assert tables.owner[("latest", "a")] is batch[4] and tables.owner[("latest", "b")] is batch[1]


async def test_a_failed_store_write_fails_the_batch() -> None:
    bus = MemoryBus()
    with pytest.raises(ConnectionError):
        await featurizer(bus, Store(fail=True)).handle([event(0, "a", T, 1.0)], Tables())
    assert len(features_log(bus)) == 1  # features.log was still flushed


@pytest.mark.parametrize("spec", [WindowSpec("tumbling", 60, 60), WindowSpec("hopping", 30, 10)])
def test_core_window_ranges_are_fausts(spec: WindowSpec) -> None:
    window = TumblingWindow(spec.size_s) if spec.kind == "tumbling" else HoppingWindow(spec.size_s, spec.step_s)
    for t_s in (0.0, 9.99, 10.0, 59.9, 60.0, 1_700_000_000.0, 1_700_000_005.123, 1_700_000_029.9):
        assert ranges(spec, t_s) == [tuple(r) for r in window.ranges(t_s)]
        assert ranges(spec, t_s)[0] == tuple(window.earliest(t_s))
