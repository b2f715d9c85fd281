"""Unit: `mlops trace` against Jaeger's query API, served here by a stub that answers as Jaeger v2 does (the
shape of a real answer, trimmed; tests/observability/test_jaeger.py runs the real one). No broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from mlops_tools.tracestore import JaegerQuery, TraceStoreError, parse_jaeger
from mlops_tools.traceview import render

ROOT = Path(__file__).resolve().parents[2]
FIRST, SECOND = "4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"
# Jaeger prints a 128-bit id whose high half is zero with 16 digits
SHORT = "00000000000000002d5e8f0a1b3c4d5e"


def _tag(key: str, value: object) -> dict:
    kind = {bool: "bool", int: "int64", float: "float64"}.get(type(value), "string")
    return {"key": key, "type": kind, "value": value}


def _span(trace_id: str, span_id: str, name: str, start: int, duration: int, refs: list[dict], tags: list[dict],
          logs: list[dict] | None = None) -> dict:
    return {"traceID": trace_id, "spanID": span_id, "operationName": name, "references": refs, "startTime": start,
            "duration": duration, "tags": tags, "logs": logs or [], "processID": "p1", "warnings": None}


TRACES = {
    FIRST: {"traceID": FIRST, "processes": {"p1": {"serviceName": "ingest", "tags": []}}, "warnings": None, "spans": [
        _span(FIRST, "00f067aa0ba902b7", "send raw.events", 1_700_000_000_000_000, 120, [],
              [_tag("span.kind", "producer"), _tag("messaging.destination.name", "raw.events"),
               _tag("otel.scope.name", "t")]),
        _span(FIRST, "b7ad6b7169203331", "process raw.events", 1_700_000_000_002_000, 800,
              [{"refType": "CHILD_OF", "traceID": FIRST, "spanID": "00f067aa0ba902b7"}],
              [_tag("span.kind", "consumer"), _tag("messaging.destination.name", "raw.events"),
               _tag("messaging.kafka.offset", 7)]),
        _span(FIRST, "53995c3f42cd8ad8", "MULTI", 1_700_000_000_002_300, 300,
              [{"refType": "CHILD_OF", "traceID": FIRST, "spanID": "b7ad6b7169203331"}],
              [_tag("span.kind", "client"), _tag("db.system", "redis"), _tag("otel.status_code", "ERROR"),
               _tag("error", True), _tag("otel.status_description", "redis down")],
              [{"timestamp": 1_700_000_000_002_500, "fields": [_tag("event", "exception"),
                                                              _tag("exception.message", "redis down")]}]),
    ]},
    SECOND: {"traceID": SECOND, "processes": {"p1": {"serviceName": "inference", "tags": []}}, "warnings": None,
             "spans": [_span(SECOND, "1111111111111111", "predict", 1_700_000_000_010_000, 50,
                             [{"refType": "FOLLOWS_FROM", "traceID": FIRST, "spanID": "b7ad6b7169203331"}],
                             [_tag("span.kind", "server")])]},
    SHORT: {"traceID": SHORT[16:], "processes": {"p1": {"serviceName": "x", "tags": []}}, "spans": [
        _span(SHORT[16:], "2222222222222222", "lonely", 1_700_000_000_020_000, 5, [], [])]},
}


class _Jaeger(BaseHTTPRequestHandler):
    searches: list[dict[str, list[str]]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/api/services":
            self._json({"data": ["ingest", "inference", "jaeger"], "total": 3})
        elif url.path.startswith("/api/traces/"):
            found = TRACES.get(url.path.rsplit("/", 1)[1])
            self._json({"data": [found]} if found else {"data": None, "errors": [{"code": 404, "msg": "trace not "
                                                                                   "found"}]}, 200 if found else 404)
        elif url.path == "/api/traces":
            query = urllib.parse.parse_qs(url.query)
            self.searches.append(query)
            wanted = {"ingest": [FIRST], "inference": [SECOND]}.get(query["service"][0], [])
            self._json({"data": [TRACES[t] for t in wanted]})
        else:
            self._json({"errors": [{"code": 404}]}, 404)

    def _json(self, body: dict, code: int = 200) -> None:
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture(scope="module")
def jaeger_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Jaeger)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_jaeger_answers_become_spans_with_parents_kinds_status_events_and_links() -> None:
    spans = parse_jaeger({"data": [TRACES[FIRST], TRACES[SECOND]]})
    by_name = {s.name: s for s in spans}
    send, process, write = by_name["send raw.events"], by_name["process raw.events"], by_name["MULTI"]
    assert (send.parent_id, send.kind, send.service) == (None, "PRODUCER", "ingest")
    assert process.parent_id == send.span_id and process.kind == "CONSUMER"
    assert process.attributes == {"messaging.destination.name": "raw.events", "messaging.kafka.offset": 7}
    assert process.start_us == 1_700_000_000_002_000 and process.end_us == 1_700_000_000_002_800
    assert write.status == "ERROR" and write.status_message == "redis down" and "error" not in write.attributes
    assert write.events == [("exception", {"exception.message": "redis down"})]
    assert by_name["predict"].links == [(FIRST, "b7ad6b7169203331")] and by_name["predict"].parent_id is None
    assert parse_jaeger({"data": [TRACES[SHORT]]})[0].trace_id == SHORT


def test_a_trace_is_fetched_with_the_traces_it_links_into(jaeger_url: str) -> None:
    query = JaegerQuery(jaeger_url)
    spans = query.trace(SECOND)
    assert {s.trace_id for s in spans} == {FIRST, SECOND}
    assert "↪ links to process raw.events [ingest] in trace" in render(spans, SECOND)
    assert query.trace("f" * 32) == []  # Jaeger's 404: no such trace
    assert query.services() == ["inference", "ingest"]  # Jaeger's own service left out


def test_search_asks_each_service_with_operation_tags_and_a_time_window(jaeger_url: str) -> None:
    _Jaeger.searches.clear()
    spans = JaegerQuery(jaeger_url).search(operation="process raw.events", tags={"messaging.kafka.offset": "7"},
                                           limit=5, lookback_s=600)
    assert {s.trace_id for s in spans} == {FIRST, SECOND}
    assert sorted(q["service"][0] for q in _Jaeger.searches) == ["inference", "ingest"]
    asked = _Jaeger.searches[0]
    assert asked["operation"] == ["process raw.events"] and asked["limit"] == ["5"]
    assert json.loads(asked["tags"][0]) == {"messaging.kafka.offset": "7"}
    assert int(asked["end"][0]) - int(asked["start"][0]) == 600_000_000


def test_an_unreachable_jaeger_names_its_address_and_how_to_start_it() -> None:
    from mlops_tools.procs import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TraceStoreError, match=f"{url}.*mlops stack up --ops"):
        JaegerQuery(url, timeout=2).services()
    assert not JaegerQuery(url, timeout=2).reachable()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlops_tools.cli", "trace", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_mlops_trace_draws_a_trace_from_jaeger_by_id_traceparent_prefix_and_lists_recent(jaeger_url: str) -> None:
    by_id = _cli(FIRST, "--jaeger", jaeger_url)
    assert by_id.returncode == 0, by_id.stderr
    assert by_id.stdout.startswith(f"trace {FIRST}  3 spans, 1 services (ingest)") and "1 failed" in by_id.stdout
    assert "✗ redis down" in by_id.stdout and "topic=raw.events" in by_id.stdout
    by_parent = _cli(f"00-{FIRST}-b7ad6b7169203331-01", "--jaeger", jaeger_url)
    assert by_parent.returncode == 0 and by_parent.stdout == by_id.stdout
    by_prefix = _cli(SECOND[:8], "--jaeger", jaeger_url)  # searched among recent traces
    assert by_prefix.returncode == 0 and f"trace {SECOND}" in by_prefix.stdout
    listing = _cli("--jaeger", jaeger_url, "--span", "process")
    assert listing.returncode == 0 and FIRST in listing.stdout and SECOND not in listing.stdout
    missing = _cli("f" * 32, "--jaeger", jaeger_url)
    assert missing.returncode == 1 and "has no such trace" in missing.stderr
    bad = _cli("--jaeger", jaeger_url, "--tag", "no-equals-sign")
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr


def test_mlops_trace_falls_back_to_the_span_file_when_jaeger_is_down(tmp_path: Path) -> None:
    from mlops_tools.procs import free_port

    out = _cli("--jaeger", f"http://127.0.0.1:{free_port()}", "--file", str(tmp_path / "none.jsonl"))
    assert out.returncode == 1 and "no spans in" in out.stderr  # --file given: Jaeger is not asked
    env_file = tmp_path / "spans.jsonl"
    down = subprocess.run([sys.executable, "-m", "mlops_tools.cli", "trace", "--jaeger",
                           f"http://127.0.0.1:{free_port()}"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "MLOPS_TELEMETRY_FILE_PATH": str(env_file)})
    assert down.returncode == 1 and "is not reachable" in down.stderr and str(env_file) in down.stderr
