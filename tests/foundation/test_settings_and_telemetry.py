"""Settings come from the environment; trace context survives a trip through Kafka headers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from mlops.errors import MlopsError
from mlops.settings import KafkaSettings, TelemetrySettings
from mlops.telemetry import (
    JsonLinesSpanExporter,
    UnknownExporter,
    context_headers,
    extract_context,
    inject_headers,
    setup_tracing,
    span_link,
    start_ops_server,
    tracer,
)
from mlops.topics import ALL_TOPICS, TopicSpec, topic_name
from pydantic import ValidationError


def test_env_overrides_and_unknown_keys_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_KAFKA_BOOTSTRAP_SERVERS", "broker-a:9092,broker-b:9092")
    monkeypatch.setenv("MLOPS_KAFKA_TOPIC_PREFIX", "staging.")
    settings = KafkaSettings()
    assert settings.bootstrap_servers == "broker-a:9092,broker-b:9092"
    assert topic_name(ALL_TOPICS[0], settings) == "staging.raw.events"
    with pytest.raises(ValidationError):
        KafkaSettings(bootstrap_serverz="typo:9092")
    with pytest.raises(ValidationError):
        TelemetrySettings(sampling_ratio=1.5)


def test_unknown_exporter_is_refused_with_the_choices() -> None:
    from mlops.telemetry import _exporter

    with pytest.raises(UnknownExporter, match="'zipkin'.*otlp-grpc") as info:
        _exporter(TelemetrySettings(exporter="zipkin"))
    assert isinstance(info.value, MlopsError) and isinstance(info.value, ValueError)
    assert info.value.exporter == "zipkin"


def test_sasl_credentials_only_from_settings() -> None:
    conf = KafkaSettings(sasl_mechanism="SCRAM-SHA-512", sasl_username="u", sasl_password="p",
                         security_protocol="SASL_SSL").client_config()
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512" and conf["security.protocol"] == "SASL_SSL"
    assert "sasl.password" not in KafkaSettings().client_config()


def test_topic_registry_is_unique_and_compaction_is_declared() -> None:
    names = [spec.name for spec in ALL_TOPICS]
    assert len(names) == len(set(names))
    compacted = {spec.name for spec in ALL_TOPICS if spec.compacted}
    assert compacted == {"model.artifacts", "registry.log", "definitions"}
    assert TopicSpec("x", "d", compacted=True).broker_config()["cleanup.policy"] == "compact"


def test_trace_context_round_trips_through_headers() -> None:
    setup_tracing("test-telemetry")
    with tracer("t").start_as_current_span("producer") as span:
        headers = inject_headers({"content-type": "x"})
        expected = span.get_span_context()
    assert headers["content-type"] == "x" and headers["traceparent"].startswith("00-")
    as_kafka = [(k, v.encode()) for k, v in headers.items()]  # what confluent-kafka hands a consumer
    with tracer("t").start_as_current_span("consumer", context=extract_context(as_kafka)) as child:
        assert child.get_span_context().trace_id == expected.trace_id
        assert child.parent is not None and child.parent.span_id == expected.span_id
    link = span_link(dict(as_kafka))
    assert link is not None and link.context.span_id == expected.span_id
    assert span_link({}) is None


@pytest.mark.parametrize("state", ["", "vendor=abc"])
@pytest.mark.parametrize("sampled", [True, False])
def test_trace_headers_of_a_context_equal_what_inject_writes(state: str, sampled: bool) -> None:
    """context_headers (no attach) writes the headers the propagator writes for the same span context."""
    from opentelemetry import trace

    ctx = trace.SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, is_remote=False,
                            trace_flags=trace.TraceFlags(1 if sampled else 0),
                            trace_state=trace.TraceState.from_header([state]) if state else None)
    injected = inject_headers(context=trace.set_span_in_context(trace.NonRecordingSpan(ctx)))
    assert context_headers(ctx) == injected and injected["traceparent"].endswith("-01" if sampled else "-00")
    assert ("tracestate" in injected) == bool(state)
    assert context_headers(trace.INVALID_SPAN_CONTEXT) == {}


def test_file_exporter_writes_json_lines(tmp_path) -> None:
    path = tmp_path / "spans.jsonl"
    exporter = JsonLinesSpanExporter(path)
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    local = TracerProvider()
    local.add_span_processor(SimpleSpanProcessor(exporter))
    with local.get_tracer("t").start_as_current_span("one") as one:
        with local.get_tracer("t").start_as_current_span("two", attributes={"k": "v"}) as two:
            pass
    # one OTLP/JSON ExportTraceServiceRequest per line, in the order the spans ended, each naming its ids and parent
    spans = [span for line in path.read_text().splitlines()
             for rs in json.loads(line)["resourceSpans"] for ss in rs["scopeSpans"] for span in ss["spans"]]
    assert [s["name"] for s in spans] == ["two", "one"]
    inner, outer = spans
    assert outer["spanId"] == f"{one.get_span_context().span_id:016x}" and not outer.get("parentSpanId")
    assert inner["traceId"] == outer["traceId"] == f"{two.get_span_context().trace_id:032x}"
    assert inner["parentSpanId"] == outer["spanId"]
    assert inner["attributes"] == [{"key": "k", "value": {"stringValue": "v"}}]
    assert int(inner["startTimeUnixNano"]) <= int(inner["endTimeUnixNano"])


_EXPORT = """
import sys, time
from mlops.telemetry import setup_tracing, tracer
setup_tracing("t")
for i in range(int(sys.argv[1])):
    with tracer("t").start_as_current_span(f"s{i}"):
        pass
time.sleep(float(sys.argv[2]))  # then exit at once, before any other export could run
import os; os._exit(0)
"""


@pytest.mark.parametrize(("spans", "batch", "interval_ms", "lines"), [(8, 4, 60_000, [4, 4]), (3, 1_000, 100, [3])])
def test_spans_are_exported_by_the_configured_batch_size_and_interval(tmp_path, spans, batch, interval_ms,
                                                                       lines) -> None:
    """A full batch goes at once, a partial one after the interval (the SDK's 512 spans and 5 s would export
    nothing within the second the child process lives)."""
    import os
    import subprocess
    import sys

    path = tmp_path / "spans.jsonl"
    env = os.environ | {"MLOPS_TELEMETRY_EXPORTER": "file", "MLOPS_TELEMETRY_FILE_PATH": str(path),
                        "MLOPS_TELEMETRY_EXPORT_BATCH_SPANS": str(batch),
                        "MLOPS_TELEMETRY_EXPORT_INTERVAL_MS": str(interval_ms)}
    subprocess.run([sys.executable, "-c", _EXPORT, str(spans), "1.0"], env=env, check=True, timeout=60)
    got = [sum(len(ss["spans"]) for rs in json.loads(line)["resourceSpans"] for ss in rs["scopeSpans"])
           for line in path.read_text().splitlines()]
    assert got == lines


def test_ops_server_serves_metrics_health_and_readiness() -> None:
    state = {"ready": False}
    port = start_ops_server(0, ready=lambda: state["ready"], addr="127.0.0.1")
    base = f"http://127.0.0.1:{port}"
    assert b"python_info" in urllib.request.urlopen(f"{base}/metrics").read()
    assert urllib.request.urlopen(f"{base}/healthz").status == 200
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{base}/readyz")
    assert info.value.code == 503
    state["ready"] = True
    assert urllib.request.urlopen(f"{base}/readyz").status == 200


def test_freeze_survivors_takes_what_exists_out_of_full_collections() -> None:
    """In a fresh interpreter (the suite's own must keep its collector): everything alive at the call is frozen, so a
    full collection after it scans only what came later."""
    import subprocess
    import sys

    code = ("import gc, time; from mlops.service import freeze_survivors; import faust, grpc, onnxruntime\n"
            "kept = [[i] for i in range(300_000)]\n"
            "t = time.perf_counter(); gc.collect(); before = time.perf_counter() - t\n"
            "freeze_survivors(); t = time.perf_counter(); gc.collect(); after = time.perf_counter() - t\n"
            "print(gc.get_freeze_count(), before, after)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    frozen, before, after = out.stdout.split()
    assert int(frozen) > 300_000 and float(after) < float(before) / 3
