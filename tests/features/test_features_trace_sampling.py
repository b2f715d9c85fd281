"""Per-event spans within a budget (issue 19): the events beyond `traced_events_per_s` are folded, published and
written exactly as traced ones (same features.log values, same online views), and carry the traceparent their record
came with instead of features' own spans."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from mlops import contracts
from mlops.bus import MemoryBus
from mlops.contracts import events_pb2
from mlops.telemetry import setup_tracing
from mlops.topics import FEATURES_LOG
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_features_edge import SEA, Store, Tables, layout

from services.features.edge import Featurizer, TraceBudget, carried_traceparent

T = 1_700_000_000_000
SPANS = InMemorySpanExporter()
setup_tracing("features-trace-sampling-test", exporter=SPANS)


def traced_record(offset: int, entity: str, t_ms: int, x0: float) -> SimpleNamespace:
    parent = f"00-{uuid.uuid4().hex}-{offset + 1:016x}-01"
    value = contracts.encode(events_pb2.Event(
        event_id=f"ev{offset}", entity_id=entity, event_time_ms=t_ms, ingest_time_ms=T, schema_version=1,
        values={"x0": x0, "x1": 1.0, "x2": 2.0}, source_name="sea_events"))
    return SimpleNamespace(value=value, message=SimpleNamespace(
        topic="t.events", partition=0, offset=offset, headers=[("traceparent", parent.encode())]))


def test_the_budget_allows_per_s_a_second_in_bursts_of_per_s() -> None:
    now = [0.0]
    budget = TraceBudget(2, clock=lambda: now[0])
    assert [budget.take() for _ in range(3)] == [True, True, False]
    now[0] = 0.5
    assert [budget.take(), budget.take()] == [True, False]
    now[0] = 10.0  # a long pause refills no more than one second's worth
    assert [budget.take() for _ in range(3)] == [True, True, False]
    assert all(TraceBudget(None).take() for _ in range(1000))


def test_the_carried_traceparent_is_read_from_bytes_or_str_headers() -> None:
    assert carried_traceparent([("a", b"1"), ("traceparent", b"00-ab-cd-01")]) == "00-ab-cd-01"
    assert carried_traceparent({"traceparent": "00-ab-cd-01"}) == "00-ab-cd-01"
    assert carried_traceparent([]) == carried_traceparent(None) == ""


async def run(per_s: float | None, batches: list[list[SimpleNamespace]]) -> tuple[MemoryBus, Store]:
    bus, store = MemoryBus(), Store()
    f = Featurizer(store, bus.producer(client_id="features-test"), bus.topic(FEATURES_LOG), "features-test",
                   traced_per_s=per_s)
    f._trace_budget = TraceBudget(per_s, clock=lambda: 0.0)  # a frozen clock: exactly `per_s` traced events
    f.reconfigure(SEA)
    tables = Tables()
    for batch in batches:
        await f.handle(batch, tables)
    return bus, store


@pytest.mark.asyncio
async def test_sampled_spans_change_no_vector_and_no_view_and_untraced_updates_keep_their_trace() -> None:
    records = [traced_record(i, f"e{i % 5}", T + 1000 * i - (7000 if i % 7 == 3 else 0), float(i)) for i in range(60)]
    batches = [records[i:i + 16] for i in range(0, len(records), 16)]
    SPANS.clear()
    all_bus, all_store = await run(None, batches)
    assert sum(s.name == "process t.events" for s in SPANS.get_finished_spans()) == len(records)
    SPANS.clear()
    bus, store = await run(3, batches)
    process = [s for s in SPANS.get_finished_spans() if s.name == "process t.events"]
    assert len(process) == 3 and sum(s.name == "MULTI" for s in SPANS.get_finished_spans()) <= 3

    topic = bus.topic(FEATURES_LOG)
    sampled = [(r.key, r.decode(events_pb2.FeatureVector)) for r in bus.records(topic)]
    every = [(r.key, r.decode(events_pb2.FeatureVector)) for r in all_bus.records(all_bus.topic(FEATURES_LOG))]
    assert len(sampled) == len(records) and sampled == every  # same records, same order, same values

    incoming = {f"ev{r.message.offset}": r.message.headers[0][1].decode() for r in records}
    own = {format(s.context.span_id, "016x") for s in SPANS.get_finished_spans()}
    for record in bus.records(topic):
        vector, tp = record.decode(events_pb2.FeatureVector), record.headers.get("traceparent", b"")
        tp = tp.decode()
        # a traced update's record names features' publish span; the others the span their event came with
        assert tp == incoming[vector.event_id] or tp[36:52] in own, tp

    view = layout(SEA, "entity_activity")
    for entity in (f"e{i}" for i in range(5)):
        (got,), (want,) = await store.read_many(view, [entity]), await all_store.read_many(view, [entity])
        assert got is not None and want is not None
        assert (got.values, got.as_of_ms) == (want.values, want.as_of_ms)
        assert got.traceparent.split("-")[1] in {tp.split("-")[1] for tp in incoming.values()}
