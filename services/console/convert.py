"""Everything the console reads → the core's plain values: the registry's protobuf answers, Kafka records of
`events.dlq`, `retrain.requested` and `predictions`, and the JSON of Prometheus's and Jaeger's HTTP APIs."""

from __future__ import annotations

import re
from typing import Any

from mlops.bus import Record
from mlops.contracts import decode, events_pb2, models_pb2
from mlops.contracts.v1 import registry_service_pb2 as api

from services.console.core import (
    AuditEntry,
    DeadLetter,
    Lineage,
    ModelDetail,
    ModelRow,
    OffsetRange,
    Prediction,
    RetrainRequest,
    Series,
    Span,
    Trace,
    Version,
)

__all__ = ["alerts", "dead_letter", "model_detail", "model_rows", "prediction", "retrain_request", "series",
           "trace", "trace_id_of"]

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_PREVIEW = 300


def trace_id_of(traceparent: str | None) -> str:
    """The trace id of a W3C traceparent header ("" when absent, malformed or all zeros)."""
    m = _TRACEPARENT.match((traceparent or "").strip().lower())
    return m.group(1) if m and m.group(1) != "0" * 32 else ""


# --- the registry -------------------------------------------------------------------------------------------------
def model_rows(resp: api.ListModelsResponse) -> list[ModelRow]:
    return [ModelRow(m.name, m.champion_version, m.latest_version, m.version_count, m.updated_at_ms,
                     f"v{m.challenger_version} {m.challenger_role} {m.challenger_fraction:.0%}"
                     if m.challenger_version else "") for m in resp.models]


def _evidence(a: api.AuditEntry) -> str:
    """A live verdict's figures in one line ("" for an entry without one)."""
    if not a.HasField("evidence"):
        return ""
    e = a.evidence
    return (f"{e.phase} verdict {e.verdict}: {e.metric} v{e.challenger_version} {e.challenger_metric:.4f} vs "
            f"v{e.champion_version} {e.champion_metric:.4f}, difference {e.difference:+.4f} "
            f"[{e.ci_low:+.4f}, {e.ci_high:+.4f}] on {e.labelled_rows} labelled rows ({e.test})")


def _ranges(items: Any) -> tuple[OffsetRange, ...]:
    return tuple(OffsetRange(r.topic, r.partition, r.start_offset, r.end_offset) for r in items)


def _lineage(lin: models_pb2.Lineage) -> Lineage:
    return Lineage(_ranges(lin.feature_log_offsets), _ranges(lin.label_offsets), dict(lin.view_versions),
                   lin.definitions_revision, lin.code_version, lin.seed, lin.row_count, lin.data_start_ms,
                   lin.data_end_ms, lin.retrain_request_id, lin.retrain_reason, lin.requested_by)


def model_detail(resp: api.GetModelResponse) -> ModelDetail:
    versions = tuple(Version(
        v.version, v.status, v.artifact_sha256, v.framework, dict(v.metrics), dict(v.gate_metrics),
        dict(v.champion_metrics), v.champion_version_at_gate, v.gate_decision, v.gate_reason,
        tuple(v.feature_names), _lineage(v.lineage), v.registered_at_ms,
        f"{v.role} {v.traffic_fraction:.0%}" if v.role else "") for v in resp.versions)
    audit = tuple(AuditEntry(a.sequence, a.version, a.action, a.actor, a.why, a.at_ms, a.status, _evidence(a))
                  for a in resp.audit)
    return ModelDetail(resp.name, resp.champion_version, versions, audit)


# --- Kafka records ----------------------------------------------------------------------------------------------
def _preview(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return text if len(text) <= _PREVIEW else text[:_PREVIEW] + f"… ({len(raw)} bytes)"


def dead_letter(record: Record) -> DeadLetter:
    msg = decode(events_pb2.DeadLetter, record.value, record.where)
    src = msg.source
    trace = trace_id_of(record.header("traceparent")) or trace_id_of(msg.original_headers.get("traceparent"))
    return DeadLetter(f"{record.topic}/{record.partition}@{record.offset}", msg.failed_at_ms or record.timestamp_ms,
                      msg.reason, msg.field, msg.error_type,
                      f"{src.topic}/{src.partition}@{src.offset}" if src.topic else "", msg.service,
                      _preview(msg.original_key), _preview(msg.original_value), trace)


def retrain_request(record: Record) -> RetrainRequest:
    m = decode(models_pb2.RetrainRequest, record.value, record.where)
    return RetrainRequest(m.model_name, m.request_id, m.reason, m.detector, m.statistic, m.feature, m.value,
                          m.requested_at_ms or record.timestamp_ms, m.requested_by,
                          m.trace_id or trace_id_of(record.header("traceparent")))


def prediction(record: Record) -> Prediction:
    m = decode(models_pb2.PredictionRecord, record.value, record.where)
    return Prediction(m.request_id, m.entity_id, m.model_name, m.model_version, m.score, m.predicted_label,
                      m.latency_us, m.timestamp_ms or record.timestamp_ms,
                      m.trace_id or trace_id_of(record.header("traceparent")))


# --- Prometheus's HTTP API ----------------------------------------------------------------------------------------
def series(body: dict[str, Any]) -> list[Series]:
    """A /api/v1/query (vector: one point each) or /api/v1/query_range (matrix) answer → Series."""
    data = body.get("data") or {}
    out = []
    for r in data.get("result") or []:
        raw = r.get("values") or ([r["value"]] if "value" in r else [])
        out.append(Series(dict(r.get("metric") or {}), tuple((float(t), float(v)) for t, v in raw)))
    return out


def alerts(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A /api/v1/alerts answer → one dict per alert: name, state, labels, summary, active since, value."""
    out = []
    for a in (body.get("data") or {}).get("alerts") or []:
        labels = dict(a.get("labels") or {})
        notes = a.get("annotations") or {}
        out.append({"name": labels.pop("alertname", "?"), "state": a.get("state", ""), "labels": labels,
                    "summary": notes.get("summary") or notes.get("description") or "",
                    "active_at": a.get("activeAt", ""), "value": a.get("value", "")})
    return out


# --- Jaeger's query API -------------------------------------------------------------------------------------------
def _tags(items: list[dict[str, Any]] | None) -> dict[str, str]:
    return {t.get("key", ""): str(t.get("value", "")) for t in items or []}


def trace(data: dict[str, Any]) -> Trace:
    """One element of Jaeger's /api/traces `data` → Trace (services from `processes`; an error is the `error` tag
    or an OpenTelemetry ERROR status)."""
    processes = {k: p.get("serviceName", "?") for k, p in (data.get("processes") or {}).items()}
    spans = []
    for s in data.get("spans") or []:
        tags = _tags(s.get("tags"))
        parent = next((r.get("spanID", "") for r in s.get("references") or [] if r.get("refType") == "CHILD_OF"), "")
        error = tags.get("error", "").lower() == "true" or tags.get("otel.status_code") == "ERROR"
        spans.append(Span(s.get("spanID", ""), parent, s.get("operationName", ""),
                          processes.get(s.get("processID", ""), "?"), int(s.get("startTime", 0)),
                          int(s.get("duration", 0)), error, tags))
    return Trace(data.get("traceID", ""), tuple(spans))
