"""Spans of the inference service: the ModelInfer server span (made here, not by the generic OTel gRPC
interceptor, whose per-call wrapping is too dear on the request path) and span links from a request to the
feature updates whose values it used."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from mlops.telemetry import extract_context, tracer
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"
# The RPC conventions' attributes, as the OTel gRPC interceptor sets them (each attribute is validated on the way
# in and costs a few microseconds per request). Failures add rpc.grpc.status_code.
INFER_ATTRIBUTES = {"rpc.system": "grpc", "rpc.service": "inference.GRPCInferenceService", "rpc.method": "ModelInfer"}
# One request may join thousands of entities: link to at most this many distinct feature updates.
MAX_FEATURE_LINKS = 32
_TRACE_HEADERS = frozenset({"traceparent", "tracestate", "baggage"})
_W3C = TraceContextTextMapPropagator()
_tracer = tracer("mlops.inference")


@contextmanager
def infer_span(metadata: Sequence[tuple[str, str | bytes]] | None, name: str = INFER_METHOD,
               attributes: dict[str, str] | None = None) -> Iterator[trace.Span]:
    """The server span of one ModelInfer call, current while the block runs, child of the caller's W3C trace
    context when the metadata has one (`name` and `attributes`: REST's instead of gRPC's). Exceptions are not
    recorded: the servicer sets the status it answers with.
    (start_span + attach by hand: start_as_current_span's nested context managers cost as much as the span.)"""
    carried = [(k, v) for k, v in metadata or () if k in _TRACE_HEADERS]
    span = _tracer.start_span(name, context=extract_context(carried) if carried else None,
                              kind=trace.SpanKind.SERVER, attributes=attributes or INFER_ATTRIBUTES)
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield span
    finally:
        otel_context.detach(token)
        span.end()


def parse_traceparent(traceparent: str) -> trace.SpanContext | None:
    """The (remote) span context of a W3C `traceparent` value; None when it is empty or malformed."""
    if not traceparent:
        return None
    ctx = trace.get_current_span(_W3C.extract({"traceparent": traceparent})).get_span_context()
    return ctx if ctx.is_valid else None


def feature_links(features: Iterable[Any]) -> list[trace.Link]:
    """One link per distinct feature-update context carried by `features` (`traceparent`, a field newer online
    stores fill; older ones lack it and give no links), at most MAX_FEATURE_LINKS."""
    links: list[trace.Link] = []
    seen: set[str] = set()
    for f in features:
        tp = getattr(f, "traceparent", "") if f is not None else ""
        if not tp or tp in seen:
            continue
        seen.add(tp)
        ctx = parse_traceparent(tp)
        if ctx is not None:
            links.append(trace.Link(ctx, {"mlops.link": "feature_update", "mlops.entity_id": f.entity_id}))
            if len(links) >= MAX_FEATURE_LINKS:
                break
    return links


def link_feature_updates(features: Iterable[Any]) -> int:
    """Link the current span (the request's) to the spans that wrote `features`; returns how many were added."""
    span = trace.get_current_span()
    if not span.is_recording():
        return 0
    links = feature_links(features)
    for link in links:
        span.add_link(link.context, link.attributes)
    return len(links)


def span_context() -> trace.SpanContext:
    """The current span's context (a mirrored request's rows are logged off the request, under its trace)."""
    return trace.get_current_span().get_span_context()
