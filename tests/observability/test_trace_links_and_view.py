"""Unit: span links of the trainer (to the RetrainRequest's drift evidence) and the `mlops trace` renderer on spans
written by the OTLP/JSON-lines file exporter. No broker. (The registry's spans are tested in tests/registry and
test_registry_grpc_tracing.py; Jaeger's answers in test_tracestore.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlops import contracts
from mlops.bus import Record
from mlops.contracts import models_pb2
from mlops.telemetry import (
    JsonLinesSpanExporter,
    extract_context,
    inject_headers,
    link_to_ids,
    setup_tracing,
    traceparent_of_current,
)
from mlops_tools.traceview import find_trace, latest, load_spans, render, summary
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.trainer.edge import decode_asks

EVIDENCE_TRACE, EVIDENCE_SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
HEADER_TRACE, HEADER_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


class FakeMessage:
    """The part of confluent-kafka's Message that mlops.bus.Record reads."""

    def __init__(self, value: bytes, headers: list[tuple[str, bytes]], topic: str = "t", offset: int = 0):
        self._value, self._headers, self._topic, self._offset = value, headers, topic, offset

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"m"


@pytest.fixture(scope="module")
def memory() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    setup_tracing("obs-unit", exporter=exporter)
    return exporter


def test_link_to_ids_accepts_only_valid_ids() -> None:
    link = link_to_ids(EVIDENCE_TRACE, EVIDENCE_SPAN)
    assert link is not None and format(link.context.trace_id, "032x") == EVIDENCE_TRACE
    assert link_to_ids("", "") is None and link_to_ids("zz", "1") is None and link_to_ids("0" * 32, "0" * 16) is None


def test_trainer_links_body_and_header_contexts_once_each() -> None:
    body = models_pb2.RetrainRequest(model_name="m", request_id="r1", trace_id=EVIDENCE_TRACE, span_id=EVIDENCE_SPAN)
    same = models_pb2.RetrainRequest(model_name="m", request_id="r2", trace_id=HEADER_TRACE, span_id=HEADER_SPAN)
    tp = f"00-{HEADER_TRACE}-{HEADER_SPAN}-01".encode()
    records = [
        Record(FakeMessage(contracts.encode(body), [("traceparent", tp)])),  # type: ignore[arg-type]
        Record(FakeMessage(contracts.encode(same), [("traceparent", tp)], offset=1)),  # type: ignore[arg-type]
        Record(FakeMessage(b"\xff not protobuf", [], offset=2)),  # type: ignore[arg-type]
    ]
    asks, links = decode_asks(records)
    assert [a.request_id for a in asks] == ["r1", "r2"]
    got = {(format(lk.context.trace_id, "032x"), format(lk.context.span_id, "016x")) for lk in links}
    assert got == {(HEADER_TRACE, HEADER_SPAN), (EVIDENCE_TRACE, EVIDENCE_SPAN)} and len(links) == 2


def _write_story(path: Path) -> tuple[str, str]:
    """A producer → consumer → failing child trace, and a second trace whose span links into the first."""
    provider = TracerProvider(resource=Resource.create({"service.name": "story"}))
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    t = provider.get_tracer("story")
    with t.start_as_current_span("send raw.events", kind=SpanKind.PRODUCER) as root:
        headers = inject_headers()
        assert traceparent_of_current().startswith("00-")
    first = format(root.get_span_context().trace_id, "032x")
    with t.start_as_current_span("process raw.events", context=extract_context(headers), kind=SpanKind.CONSUMER,
                                 attributes={"messaging.destination.name": "raw.events",
                                             "messaging.kafka.offset": 7}) as consumer:
        with t.start_as_current_span("MULTI", kind=SpanKind.CLIENT, attributes={"db.system": "redis"}) as failing:
            failing.set_status(Status(StatusCode.ERROR, "redis down"))
    update_ctx = consumer.get_span_context()
    with t.start_as_current_span("predict", links=[trace.Link(update_ctx)]) as predict:
        pass
    provider.shutdown()
    return first, format(predict.get_span_context().trace_id, "032x")


def test_render_shows_tree_waits_errors_and_resolved_links(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    first, second = _write_story(path)
    with path.open("a") as fh:
        fh.write('{"name": "half a line')  # a partly written last line is skipped
    spans = load_spans([path, path])  # the same file twice: every span once
    assert len(spans) == 4
    tree = render(spans, first)
    lines = tree.splitlines()
    assert lines[0].startswith(f"trace {first}  3 spans") and "1 failed" in lines[0]
    assert "└─ send raw.events [story]" in lines[1]
    assert "process raw.events" in lines[2] and "topic=raw.events" in lines[2] and "offset=7" in lines[2]
    assert "after parent" in lines[2]  # the consumer started after the producer span ended: the Kafka hop
    assert "MULTI [story] ✗" in tree and "db=redis" in tree and "✗ redis down" in tree
    assert "linked from other traces:" in tree and "→ process raw.events" in tree
    other = render(spans, second)
    assert "↪ links to process raw.events [story] in trace" in other
    assert render(spans, "f" * 32) == f"no spans for trace {'f' * 32}"


def test_find_trace_by_prefix_traceparent_span_id_and_latest(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    first, second = _write_story(path)
    spans = load_spans([path])
    assert find_trace(spans, first[:8]) == first
    some_span = next(s for s in spans if s.trace_id == first)
    assert find_trace(spans, f"00-{first}-{some_span.span_id}-01") == first
    assert find_trace(spans, some_span.span_id) == first
    assert find_trace(spans, "") is None  # ambiguous: two traces
    assert latest(spans) == second and latest(spans, "process") == first and latest(spans, "nothing") is None
    listing = summary(spans, contains="process")
    assert first in listing and second not in listing and "✗" in listing
    assert summary([], 5) == "no traces recorded"


def test_span_file_lines_are_otlp_json_requests(tmp_path: Path) -> None:
    """Each line is one ExportTraceServiceRequest in the standard OTLP/JSON mapping: camelCase fields, hex ids,
    integer enums, int64 as strings (what an OTLP/HTTP receiver takes as it is)."""
    path = tmp_path / "spans.jsonl"
    first, _ = _write_story(path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    spans = [sp for r in rows for rs in r["resourceSpans"] for ss in rs["scopeSpans"] for sp in ss["spans"]]
    assert {sp["name"] for sp in spans} == {"send raw.events", "process raw.events", "MULTI", "predict"}
    service = rows[0]["resourceSpans"][0]["resource"]["attributes"]
    assert {"key": "service.name", "value": {"stringValue": "story"}} in service
    consumer = next(sp for sp in spans if sp["name"] == "process raw.events")
    assert consumer["traceId"] == first and len(consumer["spanId"]) == 16 and consumer["kind"] == 5
    assert {"key": "messaging.kafka.offset", "value": {"intValue": "7"}} in consumer["attributes"]
    failing = next(sp for sp in spans if sp["name"] == "MULTI")
    assert failing["status"] == {"code": 2, "message": "redis down"} and failing["parentSpanId"] == consumer["spanId"]
    assert int(failing["startTimeUnixNano"]) <= int(failing["endTimeUnixNano"])
