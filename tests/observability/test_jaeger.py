"""Integration: the stack's Jaeger v2 (built once with go, `mlops stack up --ops`) takes the services' OTLP export
and answers `mlops trace` through its query API; a line of the offline OTLP/JSON file is a request it accepts as
it is. Jaeger runs here on free ports with its own run folder. In CI a missing Go toolchain or a failed build
fails the test; elsewhere it skips, saying how to install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from mlops.settings import TelemetrySettings
from mlops.telemetry import _exporter, extract_context, inject_headers, messaging_attributes, otlp_json
from mlops_tools.procs import free_port
from mlops_tools.stack import Stack, StackError, StackSettings, jaeger
from mlops_tools.tracestore import JaegerQuery
from mlops_tools.traceview import Span, render
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

# the first use on a machine builds Jaeger with go (many minutes on two cores), inside the fixture's setup
pytestmark = [pytest.mark.integration, pytest.mark.timeout(jaeger.BUILD_TIMEOUT_S + 300)]

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


@pytest.fixture(scope="module")
def jaeger_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = StackSettings(run_dir=tmp_path_factory.mktemp("jaeger-run"), jaeger_query_port=free_port(),
                             jaeger_query_grpc_port=free_port(), otlp_grpc_port=free_port(),
                             otlp_http_port=free_port())
    stack = Stack(settings)
    try:
        jaeger.start(stack)
    except StackError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"Jaeger is required in CI: {exc}")
        pytest.skip(f"Jaeger unavailable: {exc}")
    yield stack
    jaeger.stop(stack)


def wait_for(probe: Callable[[], T | None], timeout: float = 30.0) -> T | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.3)
    return probe()


def _story(provider: TracerProvider, topic: str) -> tuple[str, str]:
    """A producer → consumer → failing Redis write trace, and a second trace whose span links to the consumer."""
    t = provider.get_tracer("obs.jaeger")
    with t.start_as_current_span(f"send {topic}", kind=SpanKind.PRODUCER,
                                 attributes=messaging_attributes("send", topic, key="e1")) as root:
        headers = inject_headers()
    with t.start_as_current_span(f"process {topic}", context=extract_context(headers), kind=SpanKind.CONSUMER,
                                 attributes=messaging_attributes("process", topic, 0, 7, "e1", "g")) as consumer:
        with t.start_as_current_span("MULTI", kind=SpanKind.CLIENT, attributes={"db.system": "redis"}) as write:
            write.record_exception(ConnectionError("redis down"))
            write.set_status(Status(StatusCode.ERROR, "redis down"))
    with t.start_as_current_span("predict", links=[trace.Link(consumer.get_span_context())]) as predict:
        pass
    return format(root.get_span_context().trace_id, "032x"), format(predict.get_span_context().trace_id, "032x")


def _one(spans: list[Span], name: str) -> Span:
    [span] = [s for s in spans if s.name == name]
    return span


def test_otlp_export_reads_back_through_the_query_api_and_mlops_trace(jaeger_stack: Stack) -> None:
    service, topic = f"obs-jaeger-{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:6]}.raw.events"
    settings = TelemetrySettings(exporter="otlp-grpc", otlp_endpoint=jaeger.otlp_endpoint(jaeger_stack.s))
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(_exporter(settings)))  # what setup_tracing installs
    first, second = _story(provider, topic)
    assert provider.force_flush(10_000)
    query = JaegerQuery(jaeger.query_url(jaeger_stack.s))

    spans = wait_for(lambda: (got := query.trace(first)) and len([s for s in got if s.trace_id == first]) == 3
                     and got)
    assert spans, f"trace {first} did not reach Jaeger: {query.trace(first)}"
    root, consumer, write = _one(spans, f"send {topic}"), _one(spans, f"process {topic}"), _one(spans, "MULTI")
    assert {s.service for s in spans} == {service}
    assert root.parent_id is None and root.kind == "PRODUCER"
    assert consumer.parent_id == root.span_id and consumer.kind == "CONSUMER"
    assert consumer.attributes["messaging.kafka.offset"] == 7
    assert consumer.attributes["messaging.destination.name"] == topic
    assert write.parent_id == consumer.span_id and write.kind == "CLIENT" and write.status == "ERROR"
    assert write.status_message == "redis down" and any(name == "exception" for name, _ in write.events)

    # a link is read back and the linked trace fetched, so the view can name the linked span
    linked = wait_for(lambda: [s for s in query.trace(second) if s.trace_id == second] and query.trace(second))
    assert linked and f"↪ links to process {topic} [{service}] in trace" in render(linked, second)

    # search by service, operation and attribute
    found = query.search(service, f"process {topic}", {"messaging.kafka.offset": "7"})
    assert {s.trace_id for s in found} == {first}

    out = subprocess.run([sys.executable, "-m", "mlops_tools.cli", "trace", first, "--jaeger", query.base_url],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"trace {first}  3 spans, 1 services ({service})" in out.stdout and "MULTI" in out.stdout
    assert "✗ redis down" in out.stdout and f"topic={topic}" in out.stdout
    listed = subprocess.run([sys.executable, "-m", "mlops_tools.cli", "trace", "--jaeger", query.base_url,
                             "--service", service], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and first in listed.stdout and second in listed.stdout, listed.stderr
    provider.shutdown()


def test_a_file_exporter_line_is_a_request_jaeger_takes_as_it_is(jaeger_stack: Stack) -> None:
    """The offline file's format is the standard OTLP/JSON mapping: POSTed to the OTLP/HTTP receiver unchanged,
    the spans come back from the query API."""
    service, topic = f"obs-file-{uuid.uuid4().hex[:8]}", "file.raw.events"
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    first, _ = _story(provider, topic)
    line = otlp_json(memory.get_finished_spans())
    request = urllib.request.Request(f"{jaeger.otlp_endpoint(jaeger_stack.s, http=True)}/v1/traces", data=line.encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200 and json.loads(reply.read() or b"{}").get("partialSuccess") in (None, {})
    query = JaegerQuery(jaeger.query_url(jaeger_stack.s))
    spans = wait_for(lambda: [s for s in query.trace(first) if s.trace_id == first])
    assert spans and {s.name for s in spans} == {f"send {topic}", f"process {topic}", "MULTI"}
    assert _one(spans, f"process {topic}").attributes["messaging.kafka.offset"] == 7
