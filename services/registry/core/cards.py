"""Readable views of a version: the Markdown model card and a field-by-field diff of two versions."""

from __future__ import annotations

import datetime as dt

from services.registry.core.state import AuditEntry, VersionState

__all__ = ["diff", "diff_text", "flatten", "model_card"]


def _ts(ms: int) -> str:
    if not ms:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _fmt(v: float) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def model_card(v: VersionState, champion: VersionState | None, audit: list[AuditEntry]) -> str:
    c, lin = v.candidate, v.candidate.lineage
    lines = [
        f"# Model card: {v.model_name} v{v.version}",
        "",
        f"- **Status:** {v.status}" + (" (serving)" if champion and champion.version == v.version else ""),
        f"- **Artifact:** ONNX, sha256 `{c.sha256}` ({c.size} bytes), framework {c.framework or '-'}",
        f"- **Registered:** {_ts(v.registered_at_ms)}; candidate id `{c.candidate_id}`",
        f"- **Gate:** {v.gate_decision or '-'}: {v.gate_reason or '-'}",
        "",
        "## Why it was trained",
        "",
        f"- Retrain request `{lin.retrain_request_id or '-'}`: {lin.retrain_reason or '-'}",
    ]
    if len(lin.coalesced_request_ids) > 1:
        lines.append(f"- Answers {len(lin.coalesced_request_ids)} coalesced requests: "
                     + ", ".join(f"`{r}`" for r in lin.coalesced_request_ids))
    lines += [
        "",
        "## Data window",
        "",
        f"- Rows: {lin.row_count} (holdout carried: {c.holdout_rows}, the latest by label time)",
        f"- Label time range: {_ts(lin.data_start_ms)} → {_ts(lin.data_end_ms)}",
        f"- Feature set: {lin.feature_set or '-'} v{lin.feature_set_version}",
        "",
        "| topic | partition | start offset | end offset (excl.) |",
        "|---|---|---|---|",
    ]
    for r in (*lin.feature_log_offsets, *lin.label_offsets):
        lines.append(f"| {r.topic} | {r.partition} | {r.start_offset} | {r.end_offset} |")
    lines += ["", "## Features (model-input order)", ""]
    lines += [f"{i}. `{n}`" for i, n in enumerate(c.feature_names)]
    lines += ["", "## Parameters", "", "| param | value |", "|---|---|"]
    lines += [f"| {k} | {val} |" for k, val in sorted(c.params.items())]
    lines += [f"| seed | {lin.seed} |", f"| code version | {lin.code_version or '-'} |"]
    champ_v = v.champion_version_at_gate or "-"
    lines += ["", f"## Metrics (holdout; champion at gate time: v{champ_v})", "",
              "| metric | trainer | registry gate | champion on same rows |", "|---|---|---|---|"]
    names = sorted(set(c.metrics) | set(v.gate_metrics) | set(v.champion_metrics))
    for m in names:
        lines.append(f"| {m} | {_fmt(c.metrics[m]) if m in c.metrics else '-'} | "
                     f"{_fmt(v.gate_metrics[m]) if m in v.gate_metrics else '-'} | "
                     f"{_fmt(v.champion_metrics[m]) if m in v.champion_metrics else '-'} |")
    history = [a for a in audit if a.version == v.version]
    if history:
        lines += ["", "## History", "", "| seq | when | action | actor | why |", "|---|---|---|---|---|"]
        lines += [f"| {a.sequence} | {_ts(a.at_ms)} | {a.action} | {a.actor} | {a.why} |" for a in history]
    return "\n".join(lines) + "\n"


def flatten(v: VersionState) -> dict[str, str]:
    c, lin = v.candidate, v.candidate.lineage
    out = {
        "status": v.status, "sha256": c.sha256, "size": str(c.size), "framework": c.framework,
        "feature_names": ",".join(c.feature_names), "gate_decision": v.gate_decision,
        "code_version": lin.code_version, "seed": str(lin.seed), "row_count": str(lin.row_count),
        "data_start_ms": _ts(lin.data_start_ms), "data_end_ms": _ts(lin.data_end_ms),
        "retrain_reason": lin.retrain_reason,
        "feature_log_offsets": " ".join(f"{r.partition}:[{r.start_offset},{r.end_offset})"
                                        for r in lin.feature_log_offsets),
        "label_offsets": " ".join(f"{r.partition}:[{r.start_offset},{r.end_offset})" for r in lin.label_offsets),
    }
    out |= {f"params.{k}": val for k, val in c.params.items()}
    out |= {f"metrics.{k}": _fmt(val) for k, val in c.metrics.items()}
    out |= {f"gate_metrics.{k}": _fmt(val) for k, val in v.gate_metrics.items()}
    return out


def diff(a: VersionState, b: VersionState) -> list[tuple[str, str, str]]:
    fa, fb = flatten(a), flatten(b)
    return [(k, fa.get(k, ""), fb.get(k, "")) for k in sorted(set(fa) | set(fb)) if fa.get(k, "") != fb.get(k, "")]


def diff_text(rows: list[tuple[str, str, str]], a: str, b: str) -> str:
    """The rows of `diff` as aligned text: each field, then its value in v`a` and v`b`."""
    width = max((len(f) for f, _, _ in rows), default=5)
    return "\n".join(f"{f:<{width}}  v{a}: {va}\n{'':<{width}}  v{b}: {vb}" for f, va, vb in rows) or "no differences"
