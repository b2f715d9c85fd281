"""The console's web app (Starlette + Jinja2 templates): one handler per page, each gathering what it shows from
the upstreams; an upstream that fails leaves a notice on the page ("Prometheus not reachable at ...") and the
rest of the page as it is. Promote and rollback go through the registry's gRPC API (so they land in its audit
trail) and only with actions enabled and the admin token."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any, TypeVar

from mlops.bus import Bus, Record
from mlops.errors import MlopsError
from mlops.security import ClientSecuritySettings
from mlops.topics import EVENTS_DLQ, PREDICTIONS, RETRAIN_REQUESTED
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from services.console import convert
from services.console.core import (
    authorize,
    bar_chart,
    console_actor,
    fmt_duration,
    fmt_number,
    line_chart,
    summarize,
    waterfall,
)
from services.console.edge.upstreams import Jaeger, Prometheus, RecentRecords, RegistryGateway
from services.console.errors import ActionRefused, ConsoleError
from services.console.metrics import ACTIONS, PAGES
from services.console.settings import ConsoleSettings

__all__ = ["Console", "HEALTH_QUERIES", "build_app"]

log = logging.getLogger("mlops.console")
T = TypeVar("T")
TEMPLATES = Path(__file__).with_name("templates")
_TRACE_ID = re.compile(r"^[0-9a-fA-F]{16,32}$")

# The charts of the health page: (title, PromQL, legend labels)
HEALTH_QUERIES = (
    ("Services up (1) or down (0)", "up", ("job",)),
    ("Inference requests/s by status", "sum by (code) (rate(mlops_inference_requests_total[1m]))", ("code",)),
    ("Inference p99 latency (s)",
     "histogram_quantile(0.99, sum by (le) (rate(mlops_inference_request_seconds_bucket[5m])))", ()),
    ("Ingest records/s in, out and dead-lettered",
     'label_replace(sum(rate(mlops_ingest_records_in_total[1m])), "flow", "in", "", "") or '
     'label_replace(sum(rate(mlops_ingest_records_out_total[1m])), "flow", "out", "", "") or '
     'label_replace(sum(rate(mlops_ingest_records_dlq_total[1m])), "flow", "dlq", "", "")', ("flow",)),
    ("Consumer lag (records) by group", "sum by (group) (mlops_consumer_lag_records)", ("group",)),
)
DRIFT_QUERY = "mlops_monitor_drift_statistic"


@dataclass
class Console:
    """What the pages read from, made once per process."""

    settings: ConsoleSettings
    registry: RegistryGateway
    records: RecentRecords
    prometheus: Prometheus
    jaeger: Jaeger

    @classmethod
    def create(cls, settings: ConsoleSettings, bus: Bus) -> Console:
        t = settings.upstream_timeout_s
        client = ClientSecuritySettings()
        if settings.registry_token.get_secret_value():
            client = client.model_copy(update={"token": settings.registry_token})
        return cls(settings, RegistryGateway(settings.registry_address, t, client),
                   RecentRecords(bus, settings.kafka_timeout_s), Prometheus(str(settings.prometheus_url), t),
                   Jaeger(str(settings.jaeger_url), t))

    async def close(self) -> None:
        self.registry.close()
        await self.prometheus.close()
        await self.jaeger.close()


class Page:
    """One page being built: what it shows and the notices of upstreams that failed."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    async def get(self, call: Awaitable[T], default: T) -> T:
        try:
            return await call
        except ConsoleError as exc:
            self.problems.append(str(exc))
            return default

    def decoded(self, records: list[Record], convert_one: Callable[[Record], T]) -> list[T]:
        """Each record converted; one that does not decode is named in a notice, not a failed page."""
        out = []
        for record in records:
            try:
                out.append(convert_one(record))
            except MlopsError as exc:
                self.problems.append(f"skipped a record: {exc}")
        return out


def _ms(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z" if ms else ""


def build_app(console: Console) -> Starlette:
    s = console.settings
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.globals.update(ms=_ms, num=fmt_number, dur=fmt_duration, actions=s.actions_enabled,
                                 prometheus_url=str(s.prometheus_url), jaeger_url=str(s.jaeger_url),
                                 registry_address=s.registry_address)

    def render(request: Request, template: str, page: Page, status: int = 200, **ctx: Any) -> HTMLResponse:
        PAGES.labels(template.removesuffix(".html"), str(status)).inc()
        return templates.TemplateResponse(request, template, {"problems": page.problems, **ctx}, status_code=status)

    async def retrain_requests(page: Page, n: int) -> list[Any]:
        records = await page.get(console.records.recent(RETRAIN_REQUESTED, n), [])
        return page.decoded(records, convert.retrain_request)

    async def models(request: Request) -> Response:
        page = Page()
        rows = await page.get(console.registry.models(), [])
        return render(request, "models.html", page, models=rows)

    async def model(request: Request) -> Response:
        page = Page()
        name = request.path_params["name"]
        detail, card, retrains = await asyncio.gather(
            page.get(console.registry.model(name), None), page.get(console.registry.card(name), ""),
            retrain_requests(page, s.recent_records))
        if detail is None:
            missing = not page.problems or any("NOT_FOUND" in p for p in page.problems)
            return render(request, "model.html", page, 404 if missing else 503, name=name, detail=None)
        # a version's trace: the retrain request it answered carries the drift evidence's trace id
        traces = {r.request_id: r.trace_id for r in retrains if r.trace_id}
        # the gate's metric: the one the latest decision's reason names (each model declares its own)
        latest = detail.versions[-1] if detail.versions else None
        named = [k for k in (latest.gate_metrics if latest else {}) if f" {k} " in f" {latest.reason} "]
        metric = named[0] if named else next((k for v in detail.versions for k in v.gate_metrics), "")
        chart = bar_chart([(f"v{v.version}", v.gate_metrics[metric]) for v in detail.versions
                           if metric in v.gate_metrics], title=f"{name}: gate {metric} per version",
                          highlight=f"v{detail.champion}") if metric else ""
        return render(request, "model.html", page, name=name, detail=detail, card=card, traces=traces, chart=chart,
                      metric=metric, message=request.query_params.get("message", ""),
                      error=request.query_params.get("error", ""))

    async def act(request: Request) -> Response:
        name, action = request.path_params["name"], request.path_params["action"]
        if action not in ("promote", "rollback"):
            return HTMLResponse(f"unknown action {escape(action)!r}", status_code=404)
        form = await request.form()
        token = request.headers.get("x-admin-token") or str(form.get("token", ""))
        reason = str(form.get("reason", "")).strip() or f"{action} from the console"
        try:
            authorize(s.actions_enabled, s.admin_token.get_secret_value(), token)
            actor = console_actor(str(form.get("actor", "")))
            if action == "promote":
                version = str(form.get("version", "")).strip()
                seq = await console.registry.promote(name, version, actor, reason)
                message = f"v{version} promoted by {actor} (audit #{seq})"
            else:
                version, seq = await console.registry.rollback(name, actor, reason)
                message = f"rolled back to v{version} by {actor} (audit #{seq})"
        except ActionRefused as exc:
            ACTIONS.labels(action, "refused").inc()
            PAGES.labels("action", "403").inc()
            return HTMLResponse(f"<!doctype html><title>refused</title><p class=error>{escape(str(exc))}</p>"
                                f'<p><a href="/models/{escape(name)}">back to {escape(name)}</a></p>', status_code=403)
        except ConsoleError as exc:  # the registry refused (e.g. nothing to roll back to) or is not reachable
            ACTIONS.labels(action, "failed").inc()
            return RedirectResponse(request.url_for("model", name=name).include_query_params(error=str(exc)), 303)
        ACTIONS.labels(action, "done").inc()
        log.info("console action", extra={"fields": {"action": action, "model": name, "actor": actor,
                                                     "reason": reason}})
        return RedirectResponse(request.url_for("model", name=name).include_query_params(message=message), 303)

    async def drift(request: Request) -> Response:
        page = Page()
        series, retrains, rows = await asyncio.gather(
            page.get(console.prometheus.query_range(DRIFT_QUERY, s.chart_minutes), []),
            retrain_requests(page, s.recent_records), page.get(console.registry.models(), []))
        details = await asyncio.gather(*(page.get(console.registry.model(m.name), None) for m in rows))
        by_model: dict[str, list[Any]] = {}
        for one in series:
            by_model.setdefault(one.labels.get("model", "?"), []).append(one)
        charts = {m: line_chart(ss, title=f"drift statistics of {m}", label_keys=("feature", "statistic"))
                  for m, ss in sorted(by_model.items())}
        decisions = sorted(((d.name, v) for d in details if d for v in d.versions if v.decision),
                           key=lambda dv: dv[1].registered_ms, reverse=True)
        return render(request, "drift.html", page, charts=charts, retrains=retrains, decisions=decisions,
                      minutes=s.chart_minutes)

    async def health(request: Request) -> Response:
        page = Page()
        up, alerts, *ranges = await asyncio.gather(
            page.get(console.prometheus.query("up"), []), page.get(console.prometheus.alerts(), []),
            *(page.get(console.prometheus.query_range(q, s.chart_minutes), []) for _, q, _ in HEALTH_QUERIES))
        charts = [(title, line_chart(r, title=title, label_keys=keys))
                  for (title, _, keys), r in zip(HEALTH_QUERIES, ranges, strict=True)]
        targets = sorted((x.labels.get("job", ""), x.labels.get("instance", ""), x.points[-1][1] if x.points else 0)
                          for x in up)
        return render(request, "health.html", page, targets=targets, alerts=alerts, charts=charts,
                      minutes=s.chart_minutes)

    async def traces(request: Request) -> Response:
        page = Page()
        q = request.query_params
        wanted = q.get("id", "").strip()
        if wanted:
            return RedirectResponse(request.url_for("trace", trace_id=wanted), 303)
        services = await page.get(console.jaeger.services(), [])
        service = q.get("service") or (services[0] if services else "")
        limit = min(max(int(q["limit"]) if q.get("limit", "").isdigit() else 20, 1), 200)
        found = await page.get(console.jaeger.search(service, limit, s.chart_minutes), []) if service else []
        summaries = sorted((summarize(t) for t in found), key=lambda t: t.start_us, reverse=True)
        return render(request, "traces.html", page, services=services, service=service, limit=limit,
                      summaries=summaries)

    async def trace(request: Request) -> Response:
        page = Page()
        trace_id = request.path_params["trace_id"].strip().lower()
        if not _TRACE_ID.match(trace_id):
            return render(request, "trace.html", page, 400, trace_id=trace_id, rows=[], summary=None,
                          invalid=True)
        found = await page.get(console.jaeger.trace(trace_id), None)
        rows = waterfall(found) if found else []
        return render(request, "trace.html", page, 200 if found or page.problems else 404, trace_id=trace_id,
                      rows=rows, summary=summarize(found) if found else None, invalid=False)

    async def dead_letters(request: Request) -> Response:
        page = Page()
        records = await page.get(console.records.recent(EVENTS_DLQ, s.recent_records), [])
        letters = page.decoded(records, convert.dead_letter)
        reasons: dict[str, int] = {}
        for d in letters:
            reasons[d.error_type or "?"] = reasons.get(d.error_type or "?", 0) + 1
        chart = bar_chart(sorted(reasons.items(), key=lambda kv: -kv[1]), title="dead letters by error type") \
            if reasons else ""
        return render(request, "dead_letters.html", page, letters=letters, chart=chart)

    async def predictions(request: Request) -> Response:
        page = Page()
        records = await page.get(console.records.recent(PREDICTIONS, s.recent_records), [])
        return render(request, "predictions.html", page, predictions=page.decoded(records, convert.prediction))

    async def home(request: Request) -> Response:
        return RedirectResponse("/models", 303)

    routes = [
        Route("/", home), Route("/models", models), Route("/models/{name}", model, name="model"),
        Route("/models/{name}/{action}", act, methods=["POST"]),
        Route("/drift", drift), Route("/health", health), Route("/traces", traces),
        Route("/traces/{trace_id}", trace, name="trace"), Route("/dead-letters", dead_letters),
        Route("/predictions", predictions),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await console.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.console = console
    return app

