"""One line per trace for the search results: its root span, services, start, duration, span and error counts."""

from __future__ import annotations

from services.console.core.domain import Trace, TraceSummary

__all__ = ["summarize"]


def summarize(trace: Trace) -> TraceSummary:
    spans = trace.spans
    if not spans:
        return TraceSummary(trace.trace_id, "(no spans)", (), 0, 0, 0, 0)
    ids = {s.span_id for s in spans}
    roots = sorted((s for s in spans if s.parent_id not in ids), key=lambda s: s.start_us) or list(spans)
    start = min(s.start_us for s in spans)
    end = max(s.start_us + s.duration_us for s in spans)
    return TraceSummary(trace.trace_id, f"{roots[0].service}: {roots[0].name}",
                        tuple(sorted({s.service for s in spans})), start, end - start, len(spans),
                        sum(s.error for s in spans))
