"""`mlops trace [ID]`: show one trace as a timed span tree (or list recent traces), read from Jaeger's query API
(the stack's, `mlops stack up --ops`), or offline from an OTLP/JSON-lines span file (MLOPS_TELEMETRY_EXPORTER=file)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from mlops.settings import TelemetrySettings

__all__ = ["register"]

_TRACE_ID = re.compile(r"[0-9a-f]{32}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trace", help="show a trace as a timed span tree (no ID: list recent traces)")
    p.add_argument("trace_id", nargs="?",
                   help="trace id (a unique prefix of a recent one will do), a traceparent or span id, or 'last'")
    p.add_argument("--jaeger", metavar="URL",
                   help="Jaeger query API (default: the stack's, http://127.0.0.1:16686, MLOPS_STACK_JAEGER_*)")
    p.add_argument("--file", type=Path, action="append",
                   help="read OTLP/JSON-lines span file(s) instead of Jaeger (the offline fallback; default when "
                        "Jaeger is down: MLOPS_TELEMETRY_FILE_PATH, .run/traces.jsonl)")
    p.add_argument("--service", help="search Jaeger for this service's traces only")
    p.add_argument("--operation", help="search Jaeger for traces with a span of this name (with --service)")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                   help="search Jaeger for traces with a span carrying this attribute (repeatable)")
    p.add_argument("--lookback", type=float, default=3600.0, metavar="SECONDS", help="how far back to search")
    p.add_argument("--limit", type=int, default=20, help="how many traces to list (per service from Jaeger)")
    p.add_argument("--span", default="", metavar="TEXT",
                   help="only traces with a span whose name or service contains TEXT (e.g. model.promoted)")
    p.add_argument("--width", type=int, default=100, help="width of the name column plus 40")
    p.set_defaults(func=_trace)


def _full_id(text: str) -> str | None:
    """The trace id in a full id or a W3C traceparent; None for a prefix, a span id or 'last'."""
    text = text.strip().lower()
    parts = text.split("-")
    candidate = parts[1] if len(parts) == 4 else text
    return candidate if _TRACE_ID.fullmatch(candidate) else None


def _from_jaeger(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from mlops_tools.tracestore import JaegerQuery

    query = JaegerQuery(args.jaeger)
    if not query.reachable():
        return None
    full = _full_id(args.trace_id) if args.trace_id else None
    if full:
        return query.trace(full)
    tags = dict(t.split("=", 1) for t in args.tag if "=" in t)
    return query.search(args.service, args.operation, tags, args.limit, args.lookback)


def _trace(args: argparse.Namespace) -> int:
    from mlops_tools.traceview import find_trace, latest, load_spans, render, summary

    if args.jaeger is None:
        from mlops_tools.stack.jaeger import query_url

        args.jaeger = query_url()
    bad = [t for t in args.tag if "=" not in t]
    if bad:
        print(f"mlops trace: --tag wants KEY=VALUE (got {bad[0]!r})", file=sys.stderr)
        return 2
    spans = None if args.file else _from_jaeger(args)
    if spans is None:
        files = args.file or [TelemetrySettings().file_path]
        if not args.file:
            print(f"mlops trace: Jaeger at {args.jaeger} is not reachable (mlops stack up --ops); reading "
                  f"{', '.join(map(str, files))}", file=sys.stderr)
        spans = load_spans(files)
        if not spans:
            print(f"mlops trace: no spans in {', '.join(map(str, files))} — start Jaeger with `mlops stack up --ops` "
                  "and export OTLP to it, or run the services with MLOPS_TELEMETRY_EXPORTER=file", file=sys.stderr)
            return 1
    elif not spans:
        print(f"mlops trace: Jaeger at {args.jaeger} has no {'such trace' if args.trace_id else 'traces'} "
              f"(searched the last {args.lookback:g} s)", file=sys.stderr)
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
