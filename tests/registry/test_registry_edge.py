"""The registry's edges on an in-process bus (MemoryBus): candidates in → registry.log and model.promoted out, a
restart that replays registry.log into the same state, the gRPC API over it, the spans a candidate leaves, and the
definitions topic: nothing consumed before a revision, a newer revision's policy applied without a restart.
No broker."""

from __future__ import annotations

import hashlib
import threading
import time

import grpc
import pytest
from mlops.artifacts import publish_artifact
from mlops.bus import MemoryBus, StopFlag
from mlops.contracts import models_pb2
from mlops.definitions.store import read_revisions
from mlops.telemetry import setup_tracing, tracer
from mlops.topics import MODEL_CANDIDATES, MODEL_PROMOTED, REGISTRY_LOG
from mlops_tools.registry_client import RegistryCallError, RegistryClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY
from registry_helpers import apply_definitions
from testkit import wait_until

from services.registry.edge import RegistryApp, build, run
from services.registry.settings import RegistrySettings

SETTINGS = RegistrySettings(grpc_host="127.0.0.1", grpc_port=0, grpc_workers=2, replay_timeout_s=5.0)
TRAINING_TRACE, TRAINING_SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"


class Running:
    """build + run on a MemoryBus, the candidate loop in a thread; the test definitions are applied first unless
    `definitions` is false or a revision is already there."""

    def __init__(self, bus: MemoryBus, definitions: bool = True):
        if definitions and not read_revisions(bus, client_id="test", timeout=1):
            apply_definitions(bus)
        self.app: RegistryApp = build(SETTINGS, bus)
        self.stop_flag = StopFlag(install_signals=False)
        self.thread = threading.Thread(target=run, args=(self.app, SETTINGS, self.stop_flag), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_flag.set()
        self.thread.join(10)
        self.app.stop()


@pytest.fixture
def running_factory():
    started: list[Running] = []

    def make(bus: MemoryBus, definitions: bool = True) -> Running:
        started.append(Running(bus, definitions))
        return started[-1]

    yield make
    for r in started:
        r.stop()


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    setup_tracing("registry-unit", exporter=exporter)
    return exporter


def publish(bus: MemoryBus, *artifacts: bytes) -> None:
    producer = bus.producer(client_id="trainer")
    for data in artifacts:
        publish_artifact(producer, bus, data)
    producer.flush()


def offer(bus: MemoryBus, *candidates: models_pb2.ModelCandidate, headers: dict[str, str] | None = None) -> None:
    producer = bus.producer(client_id="trainer")
    for c in candidates:
        producer.send(bus.topic(MODEL_CANDIDATES), c, key=c.model_name, headers=headers)
    producer.flush()


def promoted(bus: MemoryBus, want: int, timeout: float = 30.0) -> list[models_pb2.ModelPromoted]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(bus.records(bus.topic(MODEL_PROMOTED))) < want:
        time.sleep(0.05)
    return [r.decode(models_pb2.ModelPromoted) for r in bus.records(bus.topic(MODEL_PROMOTED))]


def snapshot(app: RegistryApp) -> tuple:
    st = app.registry.state
    return ({n: {v: (s.status, s.promoted_sequence, s.gate_reason) for v, s in d.items()}
             for n, d in st.versions.items()},
            {n: [(a.sequence, a.action, a.version, a.why) for a in st.audit_of(n)] for n in st.audit},
            dict(st.sequence))


def test_a_candidate_becomes_registry_log_records_and_a_promotion(running_factory, onnx_model_factory,
                                                                  candidate_factory) -> None:
    bus, first, better = MemoryBus(), onnx_model_factory(7.0), onnx_model_factory(9.5)
    publish(bus, first, better)
    running_factory(bus)
    offer(bus, candidate_factory(first, 7.0), candidate_factory(better, 9.5))
    promos = promoted(bus, 2)
    assert [(p.version, p.previous_version, p.action) for p in promos] == [("1", "", "promote"), ("2", "1", "promote")]
    assert promos[1].artifact_sha256 == hashlib.sha256(better).hexdigest()
    keys = [r.key.decode() for r in bus.records(bus.topic(REGISTRY_LOG))]
    # per candidate: the register audit entry, the retired champion (second only), the new state, the decision
    assert keys == ["sea/audit/000000000001", "sea/1", "sea/audit/000000000002",
                    "sea/audit/000000000003", "sea/1", "sea/2", "sea/audit/000000000004"]
    events = [r.decode(models_pb2.RegistryEvent) for r in bus.records(bus.topic(REGISTRY_LOG))]
    assert [(e.record_kind, e.status) for e in events if e.record_kind == "state"] == [
        ("state", "champion"), ("state", "retired"), ("state", "champion")]
    assert all(not e.candidate.holdout.features_f32 for e in events)  # holdout rows stay off the log


def test_a_restart_replays_registry_log_into_the_same_state(running_factory, onnx_model_factory,
                                                            candidate_factory) -> None:
    bus = MemoryBus()
    models = [onnx_model_factory(7.0), onnx_model_factory(9.5), onnx_model_factory(9.5, seed=2)]
    publish(bus, *models)
    first = running_factory(bus)
    offer(bus, candidate_factory(models[0], 7.0), candidate_factory(models[1], 9.5),
          candidate_factory(models[2], 7.0))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and first.app.registry.state.next_version("sea") != "4":
        time.sleep(0.05)
    first.app.registry.rollback("sea", "alice", "canary errors")
    before = snapshot(first.app)
    first.stop()

    again = running_factory(bus)
    assert again.app.replayed == len(bus.records(bus.topic(REGISTRY_LOG)))
    assert snapshot(again.app) == before
    assert again.app.registry.state.champion("sea").version == "1"
    # the group committed what the first instance handled, so nothing is gated twice: a new candidate, read after
    # whatever the group had left, becomes version 4 (it would be 7 after the three old ones again)
    newer = onnx_model_factory(8.0, seed=3)
    publish(bus, newer)
    offer(bus, candidate_factory(newer, 8.0))
    assert wait_until(lambda: again.app.registry.state.next_version("sea") != "4")
    assert again.app.registry.state.next_version("sea") == "5"


def test_a_redelivered_promoted_candidate_is_announced_again(running_factory, onnx_model_factory,
                                                             candidate_factory) -> None:
    bus, model = MemoryBus(), onnx_model_factory(7.0)
    publish(bus, model)
    reg = running_factory(bus)
    cand = candidate_factory(model, 7.0)
    offer(bus, cand, cand)  # a crash between registry.log and model.promoted delivers it again
    assert [(p.version, p.action) for p in promoted(bus, 2)] == [("1", "promote"), ("1", "promote")]
    assert reg.app.registry.state.next_version("sea") == "2"


def test_the_grpc_api_answers_over_a_memory_bus(running_factory, onnx_model_factory, candidate_factory) -> None:
    bus, model = MemoryBus(), onnx_model_factory(7.0)
    publish(bus, model)
    reg = running_factory(bus)
    client = RegistryClient(f"127.0.0.1:{reg.app.grpc_port}", timeout=10)
    try:
        assert client.register(candidate_factory(model, 7.0)).decision == "promoted"
        [summary] = client.list_models().models
        assert (summary.name, summary.champion_version, summary.version_count) == ("sea", "1", 1)
        assert client.model_card("sea").version == "1"
    finally:
        client.close()
    assert [p.version for p in promoted(bus, 1)] == ["1"]


def test_the_candidate_span_continues_the_training_trace_and_parents_the_promote_span(
    spans: InMemorySpanExporter, running_factory, onnx_model_factory, candidate_factory,
) -> None:
    bus, model = MemoryBus(topic_prefix="obs."), onnx_model_factory(7.0)
    publish(bus, model)
    running_factory(bus)
    spans.clear()
    before = REGISTRY.get_sample_value("mlops_registry_promotions_total", {"model": "sea", "action": "promote"}) or 0
    cand = candidate_factory(model, 7.0)
    cand.trace_id, cand.span_id = TRAINING_TRACE, TRAINING_SPAN
    offer(bus, cand, headers={"traceparent": f"00-{TRAINING_TRACE}-{TRAINING_SPAN}-01"})
    promoted(bus, 1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "process obs.model.candidates" not in {
            s.name for s in spans.get_finished_spans()}:
        time.sleep(0.05)
    by_name = {s.name: s for s in spans.get_finished_spans()}
    candidate, promote = by_name["process obs.model.candidates"], by_name["send obs.model.promoted"]
    assert candidate.kind == SpanKind.CONSUMER and candidate.attributes["messaging.operation.type"] == "process"
    assert format(candidate.context.trace_id, "032x") == TRAINING_TRACE
    assert [(format(lk.context.trace_id, "032x"), format(lk.context.span_id, "016x")) for lk in candidate.links] == [
        (TRAINING_TRACE, TRAINING_SPAN)]
    assert candidate.attributes["mlops.model_version"] == "1"
    assert promote.parent is not None and promote.parent.span_id == candidate.context.span_id
    assert promote.kind == SpanKind.PRODUCER
    assert promote.attributes["messaging.destination.name"] == "obs.model.promoted"
    assert promote.attributes["mlops.model_version"] == "1"
    after = REGISTRY.get_sample_value("mlops_registry_promotions_total", {"model": "sea", "action": "promote"})
    assert after == before + 1


def test_a_promote_over_grpc_joins_the_callers_trace(
    spans: InMemorySpanExporter, running_factory, onnx_model_factory, candidate_factory,
) -> None:
    """The client's span (OTel gRPC instrumentation) carries the caller's context to the registry's server span,
    which parents the `send model.promoted` span; the announcement carries that trace to inference."""
    bus, first, better = MemoryBus(topic_prefix="obs."), onnx_model_factory(7.0), onnx_model_factory(9.5)
    publish(bus, first, better)
    reg = running_factory(bus)
    client = RegistryClient(f"127.0.0.1:{reg.app.grpc_port}", timeout=10)
    try:
        assert client.register(candidate_factory(first, 7.0)).decision == "promoted"
        assert client.register(candidate_factory(better, 9.5)).decision == "promoted"
        client.rollback("sea", "alice", "canary errors")
        spans.clear()
        with tracer("test.operator").start_as_current_span("operator promote") as caller:
            client.promote("sea", "2", "alice", "canary fixed")
    finally:
        client.close()
    trace_id = caller.get_span_context().trace_id
    finished = [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]
    by_kind = {s.kind: s for s in finished if s.name == "/mlops.v1.ModelRegistry/Promote"}
    client_span, server_span = by_kind[SpanKind.CLIENT], by_kind[SpanKind.SERVER]
    [send] = [s for s in finished if s.name == "send obs.model.promoted"]
    assert client_span.parent is not None and client_span.parent.span_id == caller.get_span_context().span_id
    assert server_span.parent is not None and server_span.parent.span_id == client_span.context.span_id
    assert send.parent is not None and send.parent.span_id == server_span.context.span_id
    assert send.kind == SpanKind.PRODUCER and send.attributes["messaging.operation.type"] == "send"
    assert (server_span.attributes["rpc.system"], server_span.attributes["rpc.service"],
            server_span.attributes["rpc.method"]) == ("grpc", "mlops.v1.ModelRegistry", "Promote")
    announced = bus.records(bus.topic(MODEL_PROMOTED))[-1]
    assert announced.headers["traceparent"].decode().split("-")[1] == format(trace_id, "032x")
    assert not [s for s in spans.get_finished_spans() if "grpc.health" in s.name]  # probes are not traced


def test_nothing_is_gated_before_a_definitions_revision_and_nothing_is_lost(running_factory, onnx_model_factory,
                                                                            candidate_factory) -> None:
    bus, model = MemoryBus(), onnx_model_factory(7.0)
    publish(bus, model)
    reg = running_factory(bus, definitions=False)
    offer(bus, candidate_factory(model, 7.0))
    assert wait_until(reg.app.definitions.alive)  # it read the definitions topic to its end: no revision
    assert not reg.app.ready() and bus.records(bus.topic(REGISTRY_LOG)) == []
    client = RegistryClient(f"127.0.0.1:{reg.app.grpc_port}", timeout=10)
    try:
        with pytest.raises(RegistryCallError) as refused:  # no policy to judge by: try again later
            client.register(candidate_factory(model, 7.0))
        assert refused.value.code == grpc.StatusCode.UNAVAILABLE and "mlops apply" in refused.value.detail
    finally:
        client.close()
    apply_definitions(bus)  # the candidate waited in model.candidates: it is gated once a revision is in force
    assert [p.version for p in promoted(bus, 1)] == ["1"]
    assert reg.app.ready()


def test_a_newer_revision_changes_the_margin_for_the_next_candidate_without_a_restart(
    running_factory, onnx_model_factory, candidate_factory,
) -> None:
    bus, first, better = MemoryBus(), onnx_model_factory(7.0), onnx_model_factory(9.5)
    publish(bus, first, better)
    reg = running_factory(bus)
    offer(bus, candidate_factory(first, 7.0))
    promoted(bus, 1)
    apply_definitions(bus, {"sea": {"margin": 0.5}})  # no challenger can beat an AUC by 0.5
    assert wait_until(lambda: reg.app.definitions.current.number == 2)
    offer(bus, candidate_factory(better, 9.5))  # would be promoted under revision 1 (margin 0)
    assert wait_until(lambda: reg.app.registry.state.get("sea", "2") is not None)
    v2 = reg.app.registry.state.get("sea", "2")
    assert v2.status == "rejected" and v2.gate_metrics["auc"] > v2.champion_metrics["auc"]
    assert "by more than the margin 0.5" in v2.gate_reason and "definitions revision 2" in v2.gate_reason
    assert "## Declared (definitions revision 2 in force)" in reg.app.registry.model_card("sea", "2")
