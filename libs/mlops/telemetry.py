"""Telemetry for every service: OpenTelemetry tracing, W3C context in Kafka headers, Prometheus, JSON logs."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from mlops.errors import MlopsError
from mlops.settings import TelemetrySettings

__all__ = [
    "JsonFormatter",
    "MESSAGING_OPERATIONS",
    "JsonLinesSpanExporter",
    "UnknownExporter",
    "UnknownMessagingOperation",
    "context_headers",
    "current_trace_ids",
    "extract_context",
    "inject_headers",
    "link_to_ids",
    "messaging_attributes",
    "messaging_span_name",
    "otlp_json",
    "process_span",
    "setup_logging",
    "setup_tracing",
    "span_link",
    "start_ops_server",
    "traceparent_of_current",
    "tracer",
]

_EXPORTERS = ("none", "console", "otlp-grpc", "otlp-http", "file")

_setup_lock = threading.Lock()
_configured_service: str | None = None


class UnknownExporter(MlopsError, ValueError):
    def __init__(self, exporter: str):
        super().__init__(f"MLOPS_TELEMETRY_EXPORTER: unknown exporter {exporter!r} (one of: {' | '.join(_EXPORTERS)})")
        self.exporter = exporter


class JsonLinesSpanExporter(SpanExporter):
    """The offline fallback: appends each exported batch as one OTLP/JSON `ExportTraceServiceRequest` per line (the
    standard JSON mapping, as the OpenTelemetry Collector's file exporter writes it), so `mlops trace --file` reads
    it and any OTLP/HTTP receiver takes a line as it is. Safe across processes: one short append per batch."""

    def __init__(self, path: Path):
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        line = otlp_json(spans) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def otlp_json(spans: Sequence[ReadableSpan]) -> str:
    """Finished spans as one OTLP/JSON ExportTraceServiceRequest (hex ids, integer enums, camelCase), one line."""
    from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans

    return json.dumps(encode_spans(spans).to_dict(), separators=(",", ":"))


def _exporter(settings: TelemetrySettings) -> SpanExporter | None:
    kind = settings.exporter.lower()
    if kind == "none":
        return None
    if kind == "console":
        return ConsoleSpanExporter(out=sys.stderr)
    if kind == "file":
        return JsonLinesSpanExporter(settings.file_path)
    if kind == "otlp-grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=settings.otlp_traces_endpoint())
    if kind == "otlp-http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter(endpoint=settings.otlp_traces_endpoint())
    raise UnknownExporter(settings.exporter)


def setup_tracing(
    service_name: str, settings: TelemetrySettings | None = None, exporter: SpanExporter | None = None
) -> TracerProvider:
    """Install the global tracer provider once per process. `exporter` overrides the settings (tests pass an
    in-memory exporter; it is exported synchronously so a test sees spans at once)."""
    global _configured_service
    settings = settings or TelemetrySettings()
    with _setup_lock:
        current = trace.get_tracer_provider()
        if _configured_service is not None and isinstance(current, TracerProvider):
            if exporter is not None:
                current.add_span_processor(SimpleSpanProcessor(exporter))
            return current
        provider = TracerProvider(
            resource=Resource.create({"service.name": service_name, "service.namespace": "mlops"}),
            sampler=ParentBased(TraceIdRatioBased(settings.sampling_ratio)),
        )
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            configured = _exporter(settings)
            if configured is not None:
                provider.add_span_processor(BatchSpanProcessor(
                    configured, max_export_batch_size=settings.export_batch_spans,
                    schedule_delay_millis=settings.export_interval_ms))
        trace.set_tracer_provider(provider)
        _configured_service = service_name
        return provider


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


# --- W3C trace context in Kafka headers ------------------------------------------------------------------------


def inject_headers(headers: dict[str, str] | None = None, context: Context | None = None) -> dict[str, str]:
    """Add `traceparent` (and `tracestate`) of the current (or given) context to a header dict."""
    carrier: dict[str, str] = dict(headers or {})
    # fast path on the produce hot path: with no active span there is nothing to propagate
    if trace.get_current_span(context).get_span_context().is_valid:
        propagate.inject(carrier, context=context)
    return carrier


def extract_context(headers: Mapping[str, str | bytes] | Iterable[tuple[str, str | bytes]] | None) -> Context:
    """The trace context carried by Kafka headers (raw confluent-kafka header lists are accepted)."""
    if headers is None:
        return Context()
    items = headers.items() if isinstance(headers, Mapping) else headers
    carrier = {k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else (v or "")) for k, v in items}
    return propagate.extract(carrier)


def span_link(headers: Mapping[str, str | bytes] | None) -> trace.Link | None:
    """A span link to the context in `headers` (for batch consumers that fold many traces into one span)."""
    ctx = trace.get_current_span(extract_context(headers)).get_span_context()
    return trace.Link(ctx) if ctx.is_valid else None


def link_to_ids(trace_id: str, span_id: str) -> trace.Link | None:
    """A span link to a context carried in a message body as hex ids (RetrainRequest / ModelCandidate trace_id and
    span_id); None when they are missing or malformed."""
    try:
        ctx = trace.SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=True,
                                trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
    except (TypeError, ValueError):
        return None
    return trace.Link(ctx) if ctx.is_valid else None


def traceparent_of_current(context: Context | None = None) -> str:
    """The W3C traceparent of the current (or given context's) span ("" when there is none), e.g. to store beside
    data it wrote."""
    return inject_headers(context=context).get("traceparent", "")


def context_headers(ctx: trace.SpanContext) -> dict[str, str]:
    """The W3C headers `inject_headers` writes for span context `ctx`, without attaching it as the current context
    (a thread that sends records of many requests: attach, inject and detach per record cost more than the send)."""
    if not ctx.is_valid:
        return {}
    headers = {"traceparent": f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"}
    if ctx.trace_state:
        headers["tracestate"] = ctx.trace_state.to_header()
    return headers


def current_trace_ids() -> tuple[str, str]:
    """(trace_id, span_id) of the current span as hex, or ("", "") when there is none."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return "", ""
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


# --- span names and attributes per the OpenTelemetry semantic conventions ---------------------------------------

# messaging.operation.type values (`publish` is the deprecated name of `send`)
MESSAGING_OPERATIONS = ("create", "send", "receive", "process", "settle")


class UnknownMessagingOperation(MlopsError, ValueError):
    def __init__(self, operation: str):
        super().__init__(f"messaging operation {operation!r} is not one of {' | '.join(MESSAGING_OPERATIONS)} "
                         "(OpenTelemetry messaging conventions; `publish` is now `send`)")
        self.operation = operation


def _operation(operation: str) -> str:
    if operation not in MESSAGING_OPERATIONS:
        raise UnknownMessagingOperation(operation)
    return operation


def messaging_span_name(operation: str, destination: str) -> str:
    """`{operation} {destination}`, the messaging conventions' span name (`send model.promoted`, `process raw.x`)."""
    return f"{_operation(operation)} {destination}"


def messaging_attributes(operation: str, topic: str, partition: int | None = None, offset: int | None = None,
                         key: bytes | str | None = None, group: str | None = None) -> dict[str, Any]:
    """OpenTelemetry messaging semantic-convention attributes for a Kafka span (`operation`: send, receive,
    process, …); partition, offset, key and consumer group where known."""
    op = _operation(operation)
    attrs: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": op,
        "messaging.operation.name": op,
        "messaging.destination.name": topic,
    }
    if partition is not None:
        attrs["messaging.destination.partition.id"] = str(partition)
    if offset is not None:
        attrs["messaging.kafka.offset"] = offset
    if key is not None:
        attrs["messaging.kafka.message.key"] = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    if group is not None:
        attrs["messaging.consumer.group.name"] = group
    return attrs


def process_span(t: trace.Tracer, record: Any, group: str | None = None,
                 attributes: Mapping[str, Any] | None = None) -> Any:
    """The `process <topic>` CONSUMER span of one bus record (its topic, partition, offset, key and headers),
    continuing the producer's trace, as the current span (a context manager)."""
    attrs = messaging_attributes("process", record.topic, record.partition, record.offset, record.key, group)
    return t.start_as_current_span(messaging_span_name("process", record.topic), kind=trace.SpanKind.CONSUMER,
                                   context=extract_context(record.headers), attributes=attrs | dict(attributes or {}))


# --- structured logs ------------------------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line with the trace id of the active span, so logs join traces."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        trace_id, span_id = current_trace_ids()
        if trace_id:
            payload["trace_id"], payload["span_id"] = trace_id, span_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update(fields)
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def setup_logging(settings: TelemetrySettings | None = None) -> None:
    """Structured logs on stderr. Pass data as `log.info("msg", extra={"fields": {...}})`."""
    settings = settings or TelemetrySettings()
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())


# --- the ops endpoint: /metrics, /healthz, /readyz on one port per service ---------------------------------------


def start_ops_server(port: int, ready: Callable[[], bool] = lambda: True, addr: str = "0.0.0.0") -> int:
    """Serve Prometheus `/metrics`, liveness `/healthz` (the process answers) and readiness `/readyz`
    (`ready()` is true: e.g. connected and assigned) on `port` (0 picks a free one). Returns the bound port."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._reply(200, b"ok\n")
            elif path == "/readyz":
                ok = _safe(ready)
                self._reply(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
            else:
                self._reply(404, b"not found: try /metrics, /healthz, /readyz\n")

        def _reply(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # keep scrapes out of the service log
            return None

    server = ThreadingHTTPServer((addr, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="ops-http", daemon=True).start()
    return int(server.server_address[1])


def _safe(fn: Callable[[], bool]) -> bool:
    try:
        return bool(fn())
    except Exception:
        return False
