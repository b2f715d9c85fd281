"""Read traces back from Jaeger's HTTP query API (`/api/traces/{id}`, `/api/traces?service=…`, `/api/services`) as
`traceview.Span`s, for `mlops trace` and anything else that shows traces (the console)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping

from mlops.errors import MlopsError

from mlops_tools.traceview import Span, unique

__all__ = ["JaegerQuery", "TraceStoreError", "parse_jaeger"]

# tags the OTLP → Jaeger translation adds for what OTLP carries in fields; read back into Span fields
_FIELD_TAGS = frozenset({"span.kind", "otel.status_code", "otel.status_description", "error", "otel.scope.name",
                         "otel.scope.version", "internal.span.format", "w3c.tracestate"})


class TraceStoreError(MlopsError):
    """Jaeger could not be asked (not running, or it refused the query); the message says which URL and why."""


def _tags(items: Iterable[Mapping] | None) -> dict[str, object]:
    return {t["key"]: t.get("value") for t in items or []}


def _id(value: str, width: int) -> str:
    # Jaeger prints a 128-bit id whose high half is zero with 16 digits
    return value.lower().zfill(width)


def parse_jaeger(payload: Mapping) -> list[Span]:
    """The spans of a Jaeger query-API answer (`{"data": [trace, …]}`): CHILD_OF gives the parent, FOLLOWS_FROM
    the span links (how OTLP links arrive), `span.kind` / `otel.status_code` tags the kind and status."""
    out = []
    for tr in payload.get("data") or []:
        processes = tr.get("processes") or {}
        for raw in tr.get("spans") or []:
            tags = _tags(raw.get("tags"))
            refs = raw.get("references") or []
            trace_id = _id(raw["traceID"], 32)
            parent = next((_id(r["spanID"], 16) for r in refs
                           if r.get("refType") == "CHILD_OF" and _id(r["traceID"], 32) == trace_id), None)
            failed = tags.get("otel.status_code") == "ERROR" or tags.get("error") is True
            events = []
            for entry in raw.get("logs") or []:
                fields = _tags(entry.get("fields"))
                events.append((str(fields.pop("event", "")), fields))
            out.append(Span(
                trace_id=trace_id, span_id=_id(raw["spanID"], 16), parent_id=parent, name=raw["operationName"],
                service=str((processes.get(raw.get("processID")) or {}).get("serviceName", "?")),
                kind=str(tags.get("span.kind") or "internal").upper(),
                start_us=int(raw["startTime"]), end_us=int(raw["startTime"]) + int(raw.get("duration") or 0),
                status="ERROR" if failed else str(tags.get("otel.status_code") or "UNSET"),
                attributes={k: v for k, v in tags.items() if k not in _FIELD_TAGS},
                links=[(_id(r["traceID"], 32), _id(r["spanID"], 16)) for r in refs
                       if r.get("refType") == "FOLLOWS_FROM"],
                status_message=str(tags.get("otel.status_description") or ""),
                events=events,
            ))
    return out


class JaegerQuery:
    """A client of Jaeger's query API at `base_url` (e.g. http://127.0.0.1:16686)."""

    def __init__(self, base_url: str, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: Mapping[str, object] | None = None) -> dict:
        url = f"{self.base_url}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as reply:
                return json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return {"data": []}
            raise TraceStoreError(f"Jaeger query {url} answered {exc.code}: {exc.read()[:300]!r}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise TraceStoreError(f"Jaeger's query API at {self.base_url} is not reachable ({exc}); start it with "
                                  "`mlops stack up --ops`") from None

    def reachable(self) -> bool:
        try:
            self.services()
        except TraceStoreError:
            return False
        return True

    def services(self) -> list[str]:
        """Services that have reported spans (Jaeger's own excluded)."""
        return sorted(s for s in self._get("/api/services").get("data") or [] if s != "jaeger")

    def trace(self, trace_id: str, follow_links: int = 8) -> list[Span]:
        """The spans of one trace (empty when Jaeger has none), plus those of up to `follow_links` traces its span
        links point into, so the view can name the linked spans."""
        spans = parse_jaeger(self._get(f"/api/traces/{trace_id.lower()}"))
        linked = sorted({t for s in spans for t, _ in s.links if t != trace_id.lower()})
        for other in linked[:follow_links]:
            spans += parse_jaeger(self._get(f"/api/traces/{other}"))
        return unique(spans)

    def search(self, service: str | None = None, operation: str | None = None,
               tags: Mapping[str, str] | None = None, limit: int = 20, lookback_s: float = 3600.0) -> list[Span]:
        """Recent traces (whole traces) of `service` (every service when None) with a span named `operation` and
        carrying `tags`, newest first as Jaeger returns them, at most `limit` per service."""
        end_us = int(time.time() * 1_000_000)
        params: dict[str, object] = {"limit": limit, "start": end_us - int(lookback_s * 1_000_000), "end": end_us}
        if operation:
            params["operation"] = operation
        if tags:
            params["tags"] = json.dumps(dict(tags))
        spans: list[Span] = []
        for name in [service] if service else self.services():
            spans += parse_jaeger(self._get("/api/traces", {**params, "service": name}))
        return unique(spans)
