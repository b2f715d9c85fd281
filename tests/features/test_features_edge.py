"""The features edge without a broker or a running faust worker: a batch through `Featurizer` with dict tables,
an in-memory store and producer; and the window ranges core computes are faust's own."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from faust.windows import HoppingWindow, TumblingWindow
from mlops import contracts
from mlops.contracts import events_pb2
from mlops.online_store import MemoryOnlineStore, View
from mlops.schema import FEATURE_SET

from services.features import metrics
from services.features.core import DictState, Plan, ReferenceAggregator, WindowSpec, ranges
from services.features.edge import Featurizer

T = 1_700_000_000_000
TOPIC = "t.features.log"


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


class Producer:
    def __init__(self) -> None:
        self.queued: list[tuple[str, Any, Any]] = []
        self.sent: list[tuple[str, Any, Any]] = []

    def send(self, topic: str, value: Any, *, key: Any = None, headers: Any = None) -> None:
        self.queued.append((topic, value, key))

    def flush(self, timeout: float = 30.0) -> None:
        self.sent += self.queued
        self.queued = []


def event(offset: int, entity: str, t_ms: int, x0: float) -> SimpleNamespace:
    value = contracts.encode(events_pb2.Event(event_id=f"ev{offset}", entity_id=entity, event_time_ms=t_ms,
                                              ingest_time_ms=T, schema_version=1,
                                              values={"x0": x0, "x1": 1.0, "x2": 2.0}))
    return SimpleNamespace(message=SimpleNamespace(topic="t.events", partition=0, offset=offset, headers=[]),
                           value=value)


def featurizer(store: Store, producer: Producer) -> Featurizer:
    return Featurizer(Plan.of(FEATURE_SET), store, producer, TOPIC, "features-test")  # type: ignore[arg-type]


async def test_a_batch_folds_publishes_and_writes_the_newest_view_once() -> None:
    store, producer, tables = Store(), Producer(), Tables()
    batch = [event(0, "a", T, 1.0), event(1, "b", T + 10, 5.0), event(2, "a", T + 2000, 3.0),
             SimpleNamespace(message=SimpleNamespace(topic="t.events", partition=0, offset=3, headers=[]),
                             value=b"\xffnot a record"),
             event(4, "a", T + 1000, 2.0)]  # late: counts in its windows, does not overwrite the last values
    rejected = metrics.REJECTED.labels("undecodable")._value.get()

    await featurizer(store, producer).handle(batch, tables)

    ref = ReferenceAggregator(FEATURE_SET)
    want = [ref.update("a", T, {"x0": 1.0, "x1": 1.0, "x2": 2.0}), ref.update("b", T + 10, {"x0": 5.0, "x1": 1.0,
            "x2": 2.0}), ref.update("a", T + 2000, {"x0": 3.0, "x1": 1.0, "x2": 2.0}),
            ref.update("a", T + 1000, {"x0": 2.0, "x1": 1.0, "x2": 2.0})]
    # every decodable event is on features.log, flushed before handle returned
    assert producer.queued == []
    assert [(topic, key, rec.event_id) for topic, rec, key in producer.sent] == [
        (TOPIC, "a", "ev0"), (TOPIC, "b", "ev1"), (TOPIC, "a", "ev2"), (TOPIC, "a", "ev4")]
    assert [dict(rec.values) for _, rec, _ in producer.sent] == want
    assert producer.sent[3][1].as_of_ms == T + 1000 and producer.sent[3][1].feature_set == FEATURE_SET.name
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
    producer = Producer()
    with pytest.raises(ConnectionError):
        await featurizer(Store(fail=True), producer).handle([event(0, "a", T, 1.0)], Tables())
    assert producer.queued == [] and len(producer.sent) == 1  # features.log was still flushed


@pytest.mark.parametrize("spec", [WindowSpec("tumbling", 60, 60), WindowSpec("hopping", 30, 10)])
def test_core_window_ranges_are_fausts(spec: WindowSpec) -> None:
    window = TumblingWindow(spec.size_s) if spec.kind == "tumbling" else HoppingWindow(spec.size_s, spec.step_s)
    for t_s in (0.0, 9.99, 10.0, 59.9, 60.0, 1_700_000_000.0, 1_700_000_005.123, 1_700_000_029.9):
        assert ranges(spec, t_s) == [tuple(r) for r in window.ranges(t_s)]
        assert ranges(spec, t_s)[0] == tuple(window.earliest(t_s))
