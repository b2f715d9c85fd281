"""`mlops trace [ID]`: show one trace as a timed span tree (or list recent traces) from the span files the
services write with MLOPS_TELEMETRY_EXPORTER=file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlops.settings import TelemetrySettings

__all__ = ["register"]

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trace", help="show a trace as a timed span tree (no ID: list recent traces)")
    p.add_argument("trace_id", nargs="?",
                   help="trace id or a unique prefix of one, a traceparent or span id, or 'last' for the newest")
    p.add_argument("--file", type=Path, action="append",
                   help="span file(s) (default: MLOPS_TELEMETRY_FILE_PATH, .run/traces.jsonl)")
    p.add_argument("--limit", type=int, default=20, help="how many traces to list")
    p.add_argument("--span", default="", metavar="TEXT",
                   help="only traces with a span whose name or service contains TEXT (e.g. registry.promote)")
    p.add_argument("--width", type=int, default=100, help="width of the name column plus 40")
    p.set_defaults(func=_trace)


def _trace(args: argparse.Namespace) -> int:
    from mlops_tools.traceview import find_trace, latest, load_spans, render, summary

    files = args.file or [TelemetrySettings().file_path]
    spans = load_spans(files)
    if not spans:
        print(f"mlops trace: no spans in {', '.join(map(str, files))} — run the services with "
              "MLOPS_TELEMETRY_EXPORTER=file (the demo does)", file=sys.stderr)
        return 1
    if not args.trace_id:
        print(summary(spans, args.limit, args.span))
        return 0
    trace_id = latest(spans, args.span) if args.trace_id == "last" else find_trace(spans, args.trace_id)
    if trace_id is None:
        print(f"mlops trace: no single trace matches {args.trace_id!r}", file=sys.stderr)
        return 1
    print(render(spans, trace_id, args.width))
    return 0
