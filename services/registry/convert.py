"""Protobuf ↔ domain converters: with the edge, the only modules of the registry that touch generated messages."""

from __future__ import annotations

import math

import numpy as np
from mlops.contracts import common_pb2, models_pb2
from mlops.contracts.v1 import registry_service_pb2 as api
from mlops.evaluation import Explainability
from mlops.explainability import explainability_from_proto, explainability_to_proto

from services.registry.core import (
    AuditEntry,
    CandidateInfo,
    Holdout,
    LineageInfo,
    ModelSummary,
    Promotion,
    Range,
    Verdict,
    VersionState,
)
from services.registry.core.slices import SliceReport, SliceRow
from services.registry.errors import InvalidCandidate

__all__ = [
    "AUDIT", "STATE", "audit_out", "candidate_in", "candidate_out", "event_in", "event_key", "event_out",
    "explainability_in", "lineage_in", "lineage_out", "promotion_out", "slices_in",
    "slices_out", "summary_out", "verdict_in", "verdict_out", "version_out",
]

STATE, AUDIT = "state", "audit"


def _range_in(r: common_pb2.OffsetRange) -> Range:
    return Range(r.topic, r.partition, r.start_offset, r.end_offset)


def _range_out(r: Range) -> common_pb2.OffsetRange:
    return common_pb2.OffsetRange(topic=r.topic, partition=r.partition, start_offset=r.start_offset,
                                  end_offset=r.end_offset)


def lineage_in(m: models_pb2.Lineage) -> LineageInfo:
    return LineageInfo(
        feature_log_offsets=tuple(_range_in(r) for r in m.feature_log_offsets),
        label_offsets=tuple(_range_in(r) for r in m.label_offsets), feature_set=m.feature_set,
        feature_set_version=m.feature_set_version, code_version=m.code_version, seed=m.seed,
        row_count=m.row_count, data_start_ms=m.data_start_ms, data_end_ms=m.data_end_ms,
        retrain_request_id=m.retrain_request_id, retrain_reason=m.retrain_reason,
        coalesced_request_ids=tuple(m.coalesced_request_ids), view_versions=tuple(sorted(m.view_versions.items())),
        definitions_revision=m.definitions_revision, requested_by=m.requested_by,
    )


def lineage_out(lin: LineageInfo) -> models_pb2.Lineage:
    return models_pb2.Lineage(
        feature_log_offsets=[_range_out(r) for r in lin.feature_log_offsets],
        label_offsets=[_range_out(r) for r in lin.label_offsets], feature_set=lin.feature_set,
        feature_set_version=lin.feature_set_version, code_version=lin.code_version, seed=lin.seed,
        row_count=lin.row_count, data_start_ms=lin.data_start_ms, data_end_ms=lin.data_end_ms,
        retrain_request_id=lin.retrain_request_id, retrain_reason=lin.retrain_reason,
        coalesced_request_ids=list(lin.coalesced_request_ids), view_versions=dict(lin.view_versions),
        definitions_revision=lin.definitions_revision, requested_by=lin.requested_by,
    )


def explainability_in(m: models_pb2.ModelCandidate) -> Explainability | None:
    return explainability_from_proto(m.explainability) if m.HasField("explainability") else None


def slices_in(m: models_pb2.RegistryEvent) -> SliceReport | None:
    if not m.HasField("slices"):
        return None
    r = m.slices
    rows = tuple(SliceRow(s.attribute, s.value, s.rows, s.metric, s.ci_low, s.ci_high,
                          s.champion_metric if s.has_champion else None,
                          s.champion_ci_low if s.has_champion else None,
                          s.champion_ci_high if s.has_champion else None, s.sensitive) for s in r.slices)
    return SliceReport(r.metric, r.higher_is_better, rows, r.champion_version, r.min_rows or 1)


def _nan(v: float | None) -> float:
    return math.nan if v is None else v


def slices_out(r: SliceReport | None) -> models_pb2.SliceReport | None:
    if r is None:
        return None
    return models_pb2.SliceReport(
        metric=r.metric, higher_is_better=r.higher_is_better, champion_version=r.champion_version,
        min_rows=r.min_rows, slices=[models_pb2.SliceMetric(
            attribute=s.attribute, value=s.value, rows=s.rows, metric=s.metric, ci_low=s.low, ci_high=s.high,
            has_champion=s.champion is not None, champion_metric=_nan(s.champion),
            champion_ci_low=_nan(s.champion_low), champion_ci_high=_nan(s.champion_high), sensitive=s.sensitive)
            for s in r.rows])


def _info(m: models_pb2.ModelCandidate) -> CandidateInfo:
    return CandidateInfo(
        model_name=m.model_name, candidate_id=m.candidate_id, sha256=m.artifact_sha256, size=m.artifact_size,
        framework=m.framework, metrics=dict(m.metrics), params=dict(m.params),
        feature_names=tuple(m.feature_names),
        lineage=lineage_in(m.lineage), created_at_ms=m.created_at_ms, holdout_rows=m.holdout.rows,
        explainability=explainability_in(m),
    )


def candidate_in(m: models_pb2.ModelCandidate) -> tuple[CandidateInfo, Holdout]:
    """The candidate and its holdout; a holdout whose bytes do not fit its shape is an InvalidCandidate."""
    h = m.holdout
    names = tuple(h.feature_names) or tuple(m.feature_names)
    raw = h.features_f32
    if len(raw) % 4 or (names and len(raw) // 4 != h.rows * len(names)) or h.rows != len(h.labels):
        raise InvalidCandidate(f"holdout of {h.rows} rows x {len(names)} features does not match its "
                               f"{len(raw)} feature bytes and {len(h.labels)} labels")
    X = np.frombuffer(raw, dtype="<f4").reshape(h.rows, len(names)) if names else np.zeros((0, 0), np.float32)  # noqa: N806
    info = _info(m)
    return info, Holdout(names, X.astype(np.float32), np.asarray(h.labels, dtype=np.float64))


def candidate_out(c: CandidateInfo) -> models_pb2.ModelCandidate:
    """The candidate as stored on registry.log: without the holdout rows (only their count), which the gate has
    already used; this keeps every state record small."""
    return models_pb2.ModelCandidate(
        model_name=c.model_name, candidate_id=c.candidate_id, artifact_sha256=c.sha256, artifact_size=c.size,
        framework=c.framework, metrics=c.metrics, params=c.params, lineage=lineage_out(c.lineage),
        feature_names=list(c.feature_names), holdout=models_pb2.Holdout(rows=c.holdout_rows),
        created_at_ms=c.created_at_ms, explainability=explainability_to_proto(c.explainability),
    )


# --- registry.log -----------------------------------------------------------------------------------------------


def event_key(e: VersionState | AuditEntry) -> str:
    if isinstance(e, VersionState):
        return f"{e.model_name}/{e.version}"
    return f"{e.model_name}/audit/{e.sequence:012d}"


def event_out(e: VersionState | AuditEntry) -> models_pb2.RegistryEvent:
    if isinstance(e, VersionState):
        return models_pb2.RegistryEvent(
            record_kind=STATE, model_name=e.model_name, version=e.version, status=e.status,
            candidate=candidate_out(e.candidate), gate_decision=e.gate_decision, gate_reason=e.gate_reason,
            champion_metrics=e.champion_metrics, gate_metrics=e.gate_metrics,
            champion_version_at_gate=e.champion_version_at_gate, registered_at_ms=e.registered_at_ms,
            promoted_sequence=e.promoted_sequence, sequence=e.sequence, at_ms=e.registered_at_ms,
            gate_definitions_revision=e.gate_definitions_revision, slices=slices_out(e.slices), role=e.role,
            traffic_fraction=e.traffic_fraction,
        )
    return models_pb2.RegistryEvent(
        record_kind=AUDIT, model_name=e.model_name, version=e.version, status=e.status, actor=e.actor,
        action=e.action, why=e.why, at_ms=e.at_ms, sequence=e.sequence, command_id=e.command_id,
        previous_version=e.previous_version, evidence=verdict_out(e.evidence),
    )


def event_in(m: models_pb2.RegistryEvent) -> VersionState | AuditEntry:
    if m.record_kind == AUDIT:
        return AuditEntry(m.model_name, m.sequence, m.version, m.action, m.actor, m.why, m.at_ms, m.status,
                          m.command_id, m.previous_version, verdict_in(m.evidence) if m.HasField("evidence") else None)
    info = _info(m.candidate)
    return VersionState(
        model_name=m.model_name, version=m.version, status=m.status, candidate=info,
        gate_decision=m.gate_decision, gate_reason=m.gate_reason, gate_metrics=dict(m.gate_metrics),
        champion_metrics=dict(m.champion_metrics), champion_version_at_gate=m.champion_version_at_gate,
        registered_at_ms=m.registered_at_ms, promoted_sequence=m.promoted_sequence, sequence=m.sequence,
        gate_definitions_revision=m.gate_definitions_revision, slices=slices_in(m), role=m.role,
        traffic_fraction=m.traffic_fraction,
    )


def promotion_out(p: Promotion) -> models_pb2.ModelPromoted:
    return models_pb2.ModelPromoted(
        model_name=p.model_name, version=p.version, artifact_sha256=p.sha256, previous_version=p.previous_version,
        reason=p.reason, promoted_at_ms=p.at_ms, feature_names=list(p.feature_names), action=p.action,
        role=p.role, traffic_fraction=p.traffic_fraction,
    )


def verdict_in(m: models_pb2.ChallengerVerdict) -> Verdict:
    return Verdict(
        model_name=m.model_name, champion_version=m.champion_version, challenger_version=m.challenger_version,
        phase=m.phase, verdict=m.verdict, verdict_id=m.verdict_id, metric=m.metric,
        champion_metric=m.champion_metric, challenger_metric=m.challenger_metric, difference=m.difference,
        ci_low=m.ci_low, ci_high=m.ci_high, labelled_rows=m.labelled_rows, test=m.test, confidence=m.confidence,
        reason=m.reason, decided_at_ms=m.decided_at_ms)


def verdict_out(v: Verdict | None) -> models_pb2.ChallengerVerdict | None:
    if v is None:
        return None
    return models_pb2.ChallengerVerdict(
        model_name=v.model_name, champion_version=v.champion_version, challenger_version=v.challenger_version,
        phase=v.phase, verdict=v.verdict, verdict_id=v.verdict_id, metric=v.metric,
        champion_metric=v.champion_metric, challenger_metric=v.challenger_metric, difference=v.difference,
        ci_low=v.ci_low, ci_high=v.ci_high, labelled_rows=v.labelled_rows, test=v.test, confidence=v.confidence,
        reason=v.reason, decided_at_ms=v.decided_at_ms)


# --- the gRPC API -----------------------------------------------------------------------------------------------


def version_out(v: VersionState) -> api.ModelVersion:
    c = v.candidate
    return api.ModelVersion(
        version=v.version, status=v.status, artifact_sha256=c.sha256, artifact_size=c.size, framework=c.framework,
        metrics=c.metrics, gate_metrics=v.gate_metrics, champion_metrics=v.champion_metrics,
        champion_version_at_gate=v.champion_version_at_gate, gate_decision=v.gate_decision,
        gate_reason=v.gate_reason, candidate_id=c.candidate_id, feature_names=list(c.feature_names),
        params=c.params, lineage=lineage_out(c.lineage), registered_at_ms=v.registered_at_ms,
        promoted_sequence=v.promoted_sequence, gate_definitions_revision=v.gate_definitions_revision,
        role=v.role, traffic_fraction=v.traffic_fraction,
    )


def audit_out(a: AuditEntry) -> api.AuditEntry:
    return api.AuditEntry(sequence=a.sequence, version=a.version, action=a.action, actor=a.actor, why=a.why,
                          at_ms=a.at_ms, status=a.status, evidence=verdict_out(a.evidence))


def summary_out(s: ModelSummary) -> api.ModelSummary:
    return api.ModelSummary(
        name=s.name, champion_version=s.champion.version if s.champion else "",
        latest_version=s.latest.version if s.latest else "", version_count=s.version_count,
        champion_sha256=s.champion.candidate.sha256 if s.champion else "", updated_at_ms=s.updated_at_ms,
        challenger_version=s.challenger.version if s.challenger else "",
        challenger_role=s.challenger.role if s.challenger else "",
        challenger_fraction=s.challenger.traffic_fraction if s.challenger else 0.0)
