"""The console without a broker: its pages over a registry double served on real gRPC, MemoryBus records, and
Prometheus's and Jaeger's documented JSON (httpx MockTransport); absent upstreams; the action rules; the core's
charts and waterfall on plain values."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from console_helpers import TRACE_ID, FakeRegistry, dead_letter, jaeger_answer, prometheus_answer, serve_registry
from mlops.bus import Bus, KafkaBus, MemoryBus
from mlops.contracts import models_pb2
from mlops.settings import KafkaSettings
from mlops.topics import EVENTS_DLQ, PREDICTIONS, RETRAIN_REQUESTED
from mlops_tools.procs import free_port

from services.console import convert
from services.console.core import Series, Span, Trace, authorize, bar_chart, console_actor, line_chart, waterfall
from services.console.edge import Console, build_app
from services.console.errors import ActionRefused
from services.console.settings import ConsoleSettings


def _closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def _mock(answer) -> httpx.MockTransport:  # type: ignore[no-untyped-def]
    def handle(request: httpx.Request) -> httpx.Response:
        out = answer(request.url.path, dict(request.url.params))
        status, body = out if isinstance(out, tuple) else (200, out)
        return httpx.Response(status, json=body)

    return httpx.MockTransport(handle)


@pytest.fixture
def registry() -> Iterator[tuple[FakeRegistry, str]]:
    fake = FakeRegistry()
    server, address = serve_registry(fake)
    yield fake, address
    server.stop(0)


def _client(address: str, bus: Bus, upstreams: bool = True, **settings) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    s = ConsoleSettings(registry_address=address, prometheus_url=_closed_url(), jaeger_url=_closed_url(),
                        upstream_timeout_s=2, kafka_timeout_s=2, **settings)
    console = Console.create(s, bus)
    if upstreams:  # Prometheus and Jaeger answering in their public formats
        console.prometheus.http = httpx.AsyncClient(base_url="http://prometheus", transport=_mock(prometheus_answer))
        console.jaeger.http = httpx.AsyncClient(base_url="http://jaeger", transport=_mock(jaeger_answer))
    return httpx.AsyncClient(transport=httpx.ASGITransport(build_app(console)), base_url="http://console",
                             follow_redirects=True)


def _bus_with_records() -> MemoryBus:
    bus = MemoryBus()
    producer = bus.producer(client_id="test")
    producer.send(bus.topic(EVENTS_DLQ), dead_letter(), key="e1")
    producer.send(bus.topic(RETRAIN_REQUESTED), models_pb2.RetrainRequest(
        model_name="sea", request_id="rr-2", reason="drift", detector="ADWIN", statistic="error_rate", value=0.4,
        requested_at_ms=1_700_000_050_000, requested_by="monitor", trace_id=TRACE_ID), key="sea")
    producer.send(bus.topic(PREDICTIONS), models_pb2.PredictionRecord(
        request_id="req-9", entity_id="e1", model_name="sea", model_version="2", score=0.8, predicted_label=1,
        latency_us=900, trace_id=TRACE_ID, timestamp_ms=1_700_000_070_000), key="e1")
    producer.flush()
    return bus


async def test_pages_show_registry_records_metrics_and_traces(registry) -> None:  # type: ignore[no-untyped-def]
    _, address = registry
    async with _client(address, _bus_with_records()) as client:
        page = await client.get("/models")
        assert page.status_code == 200 and 'href="/models/sea"' in page.text and "v2" in page.text
        sea = (await client.get("/models/sea")).text
        assert "auc 0.95 beats champion v1" in sea and "features.log/0 [0, 1200)" in sea
        assert "entity_activity v1" in sea and "revision 1" in sea and "# Model card: sea v2" in sea
        assert f'href="/traces/{TRACE_ID}"' in sea, "the version links to its retrain request's trace"
        assert "<svg" in sea and "Promote" not in sea, "read-only by default"
        drift = (await client.get("/drift")).text
        assert "drift statistics of sea" in drift and "feature=x0, statistic=psi" in drift and "<polyline" in drift
        assert "ADWIN" in drift and f'href="/traces/{TRACE_ID}"' in drift and "beats champion v1" in drift
        health = (await client.get("/health")).text
        assert "DriftDetected" in health and "firing" in health and "127.0.0.1:9105" in health
        assert health.count("<polyline") >= 4 and "down" in health
        traces = (await client.get("/traces?service=inference")).text
        assert "inference: ModelInfer" in traces and "inference, monitor" in traces
        trace = (await client.get(f"/traces/{TRACE_ID}")).text
        assert trace.count('class="span-row"') == 3 and 'class="err"' in trace
        assert (await client.get(f"/traces/{'0' * 31}1")).status_code == 404
        assert (await client.get("/traces/not-a-trace")).status_code == 400
        dlq = (await client.get("/dead-letters")).text
        assert "Input should be a valid number" in dlq and "raw.events/0@41" in dlq and TRACE_ID in dlq
        predictions = (await client.get("/predictions")).text
        assert "req-9" in predictions and f'href="/traces/{TRACE_ID}"' in predictions
        assert (await client.get("/models/nope")).status_code == 404


async def test_absent_upstreams_are_named_and_the_rest_of_the_page_shows(registry) -> None:  # type: ignore[no-untyped-def]
    _, address = registry
    async with _client(address, _bus_with_records(), upstreams=False) as client:
        health = await client.get("/health")
        assert health.status_code == 200
        assert re.search(r"Prometheus not reachable at http://127\.0\.0\.1:\d+", health.text), health.text
        drift = (await client.get("/drift")).text
        assert "Prometheus not reachable at" in drift and "ADWIN" in drift, "retrain requests still shown"
        traces = (await client.get("/traces")).text
        assert re.search(r"Jaeger not reachable at http://127\.0\.0\.1:\d+", traces)
    no_broker = KafkaBus(KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}"))
    async with _client(f"127.0.0.1:{free_port()}", no_broker, upstreams=False) as client:
        models = await client.get("/models")
        assert models.status_code == 200 and "Registry not reachable at 127.0.0.1:" in models.text
        dlq = await client.get("/dead-letters")
        assert dlq.status_code == 200 and "Kafka topic events.dlq not reachable at 127.0.0.1:" in dlq.text


async def test_actions_need_the_setting_and_the_token_and_record_the_actor(registry) -> None:  # type: ignore[no-untyped-def]
    fake, address = registry
    async with _client(address, MemoryBus()) as client:  # disabled by default
        r = await client.post("/models/sea/promote", data={"version": "1", "token": "s3cret"})
        assert r.status_code == 403 and "actions are disabled" in r.text and not fake.calls
    async with _client(address, MemoryBus(), actions_enabled=True, admin_token="s3cret") as client:
        assert 'id="promote-form"' in (await client.get("/models/sea")).text
        r = await client.post("/models/sea/promote", data={"version": "1", "token": "wrong"})
        assert r.status_code == 403 and "wrong" in r.text and not fake.calls
        r = await client.post("/models/sea/rollback", data={"actor": "alice", "reason": "canary"},
                        headers={"X-Admin-Token": "s3cret"}, follow_redirects=False)
        assert r.status_code == 303 and fake.calls == [("rollback", "1", "console:alice", "canary")]
        page = (await client.post("/models/sea/promote", data={"version": "2", "actor": "bob", "token": "s3cret"})).text
        assert "v2 promoted by console:bob" in page and "console:bob" in page
        assert fake.calls[-1] == ("promote", "2", "console:bob", "promote from the console")
        assert (await client.post("/models/sea/delete", data={"token": "s3cret"})).status_code == 404


def test_authorize_and_actor_rules() -> None:
    for enabled, configured, given, text in [(False, "t", "t", "disabled"), (True, "", "t", "no admin token"),
                                             (True, "t", "", "missing"), (True, "t", "u", "wrong")]:
        with pytest.raises(ActionRefused, match=text):
            authorize(enabled, configured, given)
    authorize(True, "t", "t")
    assert console_actor("") == "console:admin" and console_actor("alice") == "console:alice"
    with pytest.raises(ActionRefused, match="actor"):
        console_actor("<script>")


def test_charts_and_waterfall_on_plain_values() -> None:
    svg = line_chart([Series({"feature": "<x0>"}, ((0.0, 1.0), (60.0, 2.0)))], title="a & b", label_keys=("feature",))
    assert svg.startswith("<svg") and "&lt;x0&gt;" in svg and "a &amp; b" in svg and "<polyline" in svg
    assert "no data in range" in line_chart([], title="t")
    assert bar_chart([("v1", 0.7), ("v2", 0.9)], title="auc", highlight="v2").count("<rect") == 2
    spans = (Span("c", "b", "child", "s", 150, 50), Span("a", "", "root", "s", 100, 200),
             Span("b", "a", "mid", "s", 120, 100), Span("x", "gone", "orphan", "t", 250, 10))
    rows = waterfall(Trace("t", spans))
    assert [(r.span.name, r.depth) for r in rows] == [("root", 0), ("mid", 1), ("child", 2), ("orphan", 0)]
    assert rows[0].offset_pct == 0 and rows[0].width_pct == pytest.approx(100 * 200 / 200)
    assert rows[2].offset_pct == pytest.approx(100 * 50 / 200)


def test_convert_reads_the_public_formats() -> None:
    body = prometheus_answer("/api/v1/query_range", {"query": "mlops_monitor_drift_statistic"})
    series = convert.series(body)
    assert len(series) == 2 and series[0].labels["feature"] == "x0" and len(series[0].points) == 11
    trace = convert.trace(jaeger_answer(f"/api/traces/{TRACE_ID}", {})[1]["data"][0])
    assert [s.service for s in trace.spans] == ["inference", "inference", "monitor"]
    assert [s.error for s in trace.spans] == [False, False, True] and trace.spans[1].parent_id == "a1"
    assert convert.trace_id_of(f"00-{TRACE_ID}-00f067aa0ba902b7-01") == TRACE_ID
    assert convert.trace_id_of("garbage") == "" and convert.trace_id_of(f"00-{'0' * 32}-00f067aa0ba902b7-01") == ""


async def test_a_record_that_does_not_decode_is_named_not_fatal(registry) -> None:  # type: ignore[no-untyped-def]
    _, address = registry
    bus = _bus_with_records()
    producer = bus.producer(client_id="test")
    producer.send(bus.topic(EVENTS_DLQ), b"\xff not a DeadLetter", key="e2")
    producer.flush()
    async with _client(address, bus) as client:
        page = await client.get("/dead-letters")
        assert page.status_code == 200 and "skipped a record" in page.text and "DeadLetter" in page.text
        assert "Input should be a valid number" in page.text, "the good record is still shown"
