"""Render one trace as a timed span tree (`mlops trace`), from spans read out of Jaeger's query API
(`mlops_tools.tracestore`) or, offline, out of the OTLP/JSON-lines file the `file` exporter writes."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Span", "any_value", "find_trace", "latest", "load_spans", "matching", "otlp_attributes", "parse_otlp",
           "render", "summary", "traces", "unique"]


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    kind: str
    start_us: int
    end_us: int
    status: str
    attributes: dict[str, object]
    links: list[tuple[str, str]]  # (trace_id, span_id)
    children: list[Span] = field(default_factory=list)
    status_message: str = ""
    events: list[tuple[str, dict[str, object]]] = field(default_factory=list)  # (name, attributes)

    @property
    def duration_ms(self) -> float:
        return (self.end_us - self.start_us) / 1000


_KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


def _enum(value: object, names: dict[int, str], prefix: str, default: str) -> str:
    """An OTLP/JSON enum: an integer (the standard mapping) or its proto name (`SPAN_KIND_SERVER`)."""
    if isinstance(value, int):
        return names.get(value, default)
    return str(value).removeprefix(prefix) if value else default


def any_value(value: dict) -> object:
    """An OTLP/JSON AnyValue as a plain value (int64 arrives as a string in the standard mapping)."""
    if "intValue" in value:
        return int(value["intValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return otlp_attributes(value["kvlistValue"].get("values", []))
    for kind in ("stringValue", "boolValue", "doubleValue", "bytesValue"):
        if kind in value:
            return value[kind]
    return None


def otlp_attributes(items: list[dict] | None) -> dict[str, object]:
    return {kv["key"]: any_value(kv.get("value") or {}) for kv in items or []}


def parse_otlp(request: dict) -> list[Span]:
    """The spans of one OTLP/JSON ExportTraceServiceRequest (or TracesData): what the file exporter writes a line
    of, and what any OTLP/JSON source gives."""
    out = []
    for rs in request.get("resourceSpans") or []:
        service = str(otlp_attributes((rs.get("resource") or {}).get("attributes")).get("service.name", "?"))
        for ss in rs.get("scopeSpans") or []:
            for raw in ss.get("spans") or []:
                status = raw.get("status") or {}
                out.append(Span(
                    trace_id=raw["traceId"].lower(), span_id=raw["spanId"].lower(),
                    parent_id=(raw.get("parentSpanId") or "").lower() or None, name=raw["name"], service=service,
                    kind=_enum(raw.get("kind"), _KINDS, "SPAN_KIND_", "INTERNAL"),
                    start_us=int(raw["startTimeUnixNano"]) // 1000, end_us=int(raw["endTimeUnixNano"]) // 1000,
                    status=_enum(status.get("code"), _STATUS, "STATUS_CODE_", "UNSET"),
                    attributes=otlp_attributes(raw.get("attributes")),
                    links=[(lk["traceId"].lower(), lk["spanId"].lower()) for lk in raw.get("links") or []],
                    status_message=str(status.get("message") or ""),
                    events=[(str(ev.get("name", "")), otlp_attributes(ev.get("attributes")))
                            for ev in raw.get("events") or []],
                ))
    return out


def load_spans(paths: Iterable[Path]) -> list[Span]:
    """Every span in the OTLP/JSON-lines files (a span found twice, e.g. in overlapping files, counts once)."""
    spans: list[Span] = []
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.strip():
                try:
                    spans.extend(parse_otlp(json.loads(line)))
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue  # a partly written last line
    return unique(spans)


def unique(spans: Iterable[Span]) -> list[Span]:
    """Each (trace, span) once, first seen kept."""
    seen: set[tuple[str, str]] = set()
    out = []
    for span in spans:
        if (span.trace_id, span.span_id) not in seen:
            seen.add((span.trace_id, span.span_id))
            out.append(span)
    return out


def traces(spans: list[Span]) -> dict[str, list[Span]]:
    by_trace: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    return by_trace


def find_trace(spans: list[Span], prefix: str) -> str | None:
    """A trace id starting with `prefix` (ids are long; a unique prefix is enough). A W3C traceparent
    (`00-<trace>-<span>-01`, as the online view and Kafka headers hold it) or a span id also finds its trace."""
    prefix = prefix.strip().lower()
    parts = prefix.split("-")
    if len(parts) == 4 and len(parts[1]) == 32:
        prefix = parts[1]
    matches = sorted({s.trace_id for s in spans if s.trace_id.startswith(prefix)})
    if not matches and len(prefix) == 16:
        matches = sorted({s.trace_id for s in spans if s.span_id == prefix})
    return matches[0] if len(matches) == 1 else None


# attributes worth a glance, with the short label they are shown under
_KEY_ATTRS = {
    "messaging.destination.name": "topic", "messaging.destination.partition.id": "partition",
    "messaging.kafka.offset": "offset", "messaging.kafka.message.key": "key", "messaging.batch.message_count": "batch",
    "rpc.method": "rpc", "rpc.grpc.status_code": "grpc_status", "db.system": "db",
    "mlops.model": "model", "mlops.model_version": "version", "mlops.entity_id": "entity",
    "mlops.detector": "detector", "mlops.decision": "decision", "mlops.action": "action",
    "mlops.dlq.error_type": "dlq",
}
_BAR = 20


def _bar(start: int, end: int, t0: int, total: int) -> str:
    """A waterfall cell: where the span lies in the trace's time range."""
    if total <= 0:
        return "█".ljust(_BAR)
    a = min(_BAR - 1, int((start - t0) * _BAR / total))
    b = max(a + 1, min(_BAR, round((end - t0) * _BAR / total)))
    return (" " * a + "█" * (b - a)).ljust(_BAR)


def _describe(span: Span | None, span_id: str, trace_id: str, here: str) -> str:
    where = "this trace" if trace_id == here else f"trace {trace_id[:16]}…"
    return f"{span.name} [{span.service}] in {where}" if span else f"span {span_id} in {where} (not recorded)"


def render(spans: list[Span], trace_id: str, width: int = 100) -> str:
    """A timed tree of one trace (offset from the trace start, waterfall, duration, key attributes); a span that
    started after its parent ended shows the wait (a Kafka hop). Span links are resolved to the linked span's
    name where it is recorded; spans in other traces that link into this one are listed after it."""
    members = [s for s in spans if s.trace_id == trace_id]
    if not members:
        return f"no spans for trace {trace_id}"
    every = {(s.trace_id, s.span_id): s for s in spans}
    by_id = {s.span_id: s for s in members}
    for s in members:
        s.children = []
    roots = []
    for s in sorted(members, key=lambda s: s.start_us):
        parent = by_id.get(s.parent_id or "")
        (parent.children if parent else roots).append(s)
    t0 = min(s.start_us for s in members)
    t1 = max(s.end_us for s in members)
    services = sorted({s.service for s in members})
    errors = sum(1 for s in members if s.status == "ERROR")
    lines = [f"trace {trace_id}  {len(members)} spans, {len(services)} services ({', '.join(services)}), "
             f"{(t1 - t0) / 1000:.1f} ms" + (f", {errors} failed" if errors else "")]
    name_width = max(24, width - 40)

    def walk(span: Span, prefix: str, last: bool, parent: Span | None) -> None:
        branch = "└─ " if last else "├─ "
        inner = prefix + ("   " if last else "│  ")
        attrs = " ".join(f"{label}={span.attributes[k]}" for k, label in _KEY_ATTRS.items() if k in span.attributes)
        mark = " ✗" if span.status == "ERROR" else ""
        label = f"{prefix}{branch}{span.name} [{span.service}]{mark}"
        if parent is not None and span.start_us > parent.end_us:
            attrs = f"(+{(span.start_us - parent.end_us) / 1000:.1f} ms after parent) {attrs}"
        elif parent is None and span.parent_id:
            attrs = f"(parent {span.parent_id} not recorded) {attrs}"
        lines.append(f"{(span.start_us - t0) / 1000:9.1f} ms  {label:<{name_width}} "
                     f"{_bar(span.start_us, span.end_us, t0, t1 - t0)} {span.duration_ms:9.2f} ms  {attrs}".rstrip())
        if span.status == "ERROR":
            why = span.status_message or next((str(a.get("exception.message", "")) for n, a in span.events
                                               if n == "exception"), "")
            if why:
                lines.append(f"{'':13}{inner}✗ {why}")
        for link_trace, link_span in span.links:
            target = _describe(every.get((link_trace, link_span)), link_span, link_trace, trace_id)
            lines.append(f"{'':13}{inner}↪ links to {target}")
        for i, child in enumerate(span.children):
            walk(child, inner, i == len(span.children) - 1, span)

    for i, root in enumerate(roots):
        walk(root, "", i == len(roots) - 1, None)
    linked_in = [s for s in spans if s.trace_id != trace_id and any(t == trace_id for t, _ in s.links)]
    if linked_in:
        lines.append("linked from other traces:")
        for s in sorted(linked_in, key=lambda s: s.start_us):
            to = ", ".join(by_id[sid].name if sid in by_id else sid for t, sid in s.links if t == trace_id)
            lines.append(f"  {s.name} [{s.service}] in trace {s.trace_id} ({s.duration_ms:.2f} ms) → {to}")
    return "\n".join(lines)


def matching(spans: list[Span], contains: str = "") -> dict[str, list[Span]]:
    """Traces with a span whose name or service contains `contains` (all traces when empty)."""
    needle = contains.lower()
    return {tid: members for tid, members in traces(spans).items()
            if not needle or any(needle in s.name.lower() or needle in s.service.lower() for s in members)}


def latest(spans: list[Span], contains: str = "") -> str | None:
    """The id of the most recently started trace (with a span matching `contains`)."""
    found = matching(spans, contains)
    return max(found, key=lambda tid: min(s.start_us for s in found[tid])) if found else None


def summary(spans: list[Span], limit: int = 20, contains: str = "") -> str:
    """The most recent traces, one line each (only those with a span matching `contains`)."""
    rows = []
    for trace_id, members in matching(spans, contains).items():
        start = min(s.start_us for s in members)
        root = min(members, key=lambda s: s.start_us)
        services = sorted({s.service for s in members})
        took = (max(s.end_us for s in members) - start) / 1000
        failed = " ✗" if any(s.status == "ERROR" for s in members) else "  "
        rows.append((start, f"{trace_id}  {len(members):3} spans {took:9.1f} ms{failed} {root.name[:40]:40} "
                            f"{', '.join(services)}"))
    rows.sort(reverse=True)
    return "\n".join(row for _, row in rows[:limit]) or "no traces recorded"
