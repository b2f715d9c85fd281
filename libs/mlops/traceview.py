"""Read spans written by the JSON-lines exporter and render one trace as a timed span tree (`mlops trace`)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path


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

    @property
    def duration_ms(self) -> float:
        return (self.end_us - self.start_us) / 1000


def _hex(value: str | None) -> str | None:
    return value[2:] if value and value.startswith("0x") else value


def _micros(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1_000_000)


def parse_span(line: str) -> Span:
    raw = json.loads(line)
    ctx = raw["context"]
    return Span(
        trace_id=_hex(ctx["trace_id"]) or "",
        span_id=_hex(ctx["span_id"]) or "",
        parent_id=_hex(raw.get("parent_id")),
        name=raw["name"],
        service=str(raw.get("resource", {}).get("attributes", {}).get("service.name", "?")),
        kind=str(raw.get("kind", "")).removeprefix("SpanKind."),
        start_us=_micros(raw["start_time"]),
        end_us=_micros(raw["end_time"]),
        status=raw.get("status", {}).get("status_code", "UNSET"),
        attributes=raw.get("attributes", {}),
        links=[(_hex(lk["context"]["trace_id"]) or "", _hex(lk["context"]["span_id"]) or "")
               for lk in raw.get("links", [])],
    )


def load_spans(paths: Iterable[Path]) -> list[Span]:
    spans = []
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.strip():
                try:
                    spans.append(parse_span(line))
                except (ValueError, KeyError):
                    continue  # a partly written last line
    return spans


def traces(spans: list[Span]) -> dict[str, list[Span]]:
    by_trace: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    return by_trace


def find_trace(spans: list[Span], prefix: str) -> str | None:
    """A trace id starting with `prefix` (ids are long; a unique prefix is enough)."""
    matches = sorted({s.trace_id for s in spans if s.trace_id.startswith(prefix.lower())})
    return matches[0] if len(matches) == 1 else None


_KEY_ATTRS = ("messaging.destination.name", "messaging.destination.partition.id", "messaging.kafka.offset",
              "rpc.method", "rpc.grpc.status_code", "mlops.model_version", "mlops.entity_id", "mlops.detector")


def render(spans: list[Span], trace_id: str, width: int = 100) -> str:
    """A timed tree of one trace; spans in other traces that link into it are listed after it."""
    members = [s for s in spans if s.trace_id == trace_id]
    if not members:
        return f"no spans for trace {trace_id}"
    by_id = {s.span_id: s for s in members}
    for s in members:
        s.children = []
    roots = []
    for s in sorted(members, key=lambda s: s.start_us):
        parent = by_id.get(s.parent_id or "")
        (parent.children if parent else roots).append(s)
    t0 = min(s.start_us for s in members)
    total = (max(s.end_us for s in members) - t0) / 1000
    services = sorted({s.service for s in members})
    lines = [f"trace {trace_id}  {len(members)} spans, {len(services)} services ({', '.join(services)}), "
             f"{total:.1f} ms"]

    def walk(span: Span, prefix: str, last: bool) -> None:
        branch = "└─ " if last else "├─ "
        attrs = " ".join(f"{k.split('.')[-1]}={span.attributes[k]}" for k in _KEY_ATTRS if k in span.attributes)
        mark = " ✗" if span.status == "ERROR" else ""
        label = f"{prefix}{branch}{span.name} [{span.service}]{mark}"
        lines.append(f"{(span.start_us - t0) / 1000:9.1f} ms  {label:<{width - 40}} {span.duration_ms:8.2f} ms  "
                     f"{attrs}".rstrip())
        for link_trace, link_span in span.links:
            where = "this trace" if link_trace == trace_id else f"trace {link_trace[:16]}…"
            lines.append(f"{'':13}{prefix}{'   ' if last else '│  '}↪ links to span {link_span} in {where}")
        for i, child in enumerate(span.children):
            walk(child, prefix + ("   " if last else "│  "), i == len(span.children) - 1)

    for i, root in enumerate(roots):
        walk(root, "", i == len(roots) - 1)
    linked_in = [s for s in spans if s.trace_id != trace_id and any(t == trace_id for t, _ in s.links)]
    if linked_in:
        lines.append("linked from other traces:")
        for s in sorted(linked_in, key=lambda s: s.start_us):
            lines.append(f"  {s.name} [{s.service}] in trace {s.trace_id} ({s.duration_ms:.2f} ms)")
    return "\n".join(lines)


def summary(spans: list[Span], limit: int = 20) -> str:
    """The most recent traces, one line each."""
    rows = []
    for trace_id, members in traces(spans).items():
        start = min(s.start_us for s in members)
        root = min(members, key=lambda s: s.start_us)
        services = sorted({s.service for s in members})
        rows.append((start, f"{trace_id}  {len(members):3} spans  {root.name[:40]:40} {', '.join(services)}"))
    rows.sort(reverse=True)
    return "\n".join(row for _, row in rows[:limit]) or "no traces recorded"
