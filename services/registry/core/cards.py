"""Readable views of a version: the Markdown model card (with its explainability and slice reports, whose figures
`figures.py` draws and the Markdown references by file name) and a field-by-field diff of two versions."""

from __future__ import annotations

import datetime as dt
import math

from mlops.definitions.model import Model
from mlops.evaluation import Explainability

from services.registry.core.gate import GatePolicy
from services.registry.core.slices import SliceReport
from services.registry.core.state import AuditEntry, CandidateInfo, VersionState

__all__ = ["diff", "diff_text", "flatten", "model_card"]


def _ts(ms: int) -> str:
    if not ms:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _fmt(v: float) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _views(c: CandidateInfo) -> str:
    """The feature view(s) and version(s) the version was trained on: every view of the lineage (or of the
    trainer's `view_versions` param, `view:version,...`), else the lineage's one view."""
    listed = [(view, str(version)) for view, version in c.lineage.view_versions]
    param = c.params.get("view_versions", "")
    listed = listed or [(v, n) for v, _, n in (p.partition(":") for p in param.split(",") if p)]
    if listed:
        return "feature views " + ", ".join(f"{view} v{version}" for view, version in listed)
    return f"feature view {c.lineage.feature_set or '-'} v{c.lineage.feature_set_version}"


def _declared(c: CandidateInfo, model: Model | None, revision: int) -> list[str]:
    """What the definitions in force declare for the model: task, features, label, gate policy."""
    lines = ["", f"## Declared (definitions revision {revision or '-'} in force)", ""]
    if model is None:
        return lines + ["- The model is not declared in the definitions in force."]
    policy = GatePolicy.of(model, revision)
    same = tuple(c.feature_names) == model.features
    lines += [f"- **Task:** {model.task.value}" + (f", classes {list(model.classes)}" if model.classes else ""),
              f"- **Features:** {len(model.features)} declared inputs"
              + (", the same as this version's" if same else ": " + ", ".join(f"`{f}`" for f in model.features)),
              f"- **Label:** field `{model.label.field}` on topic `{model.label.topic}` (joined by "
              f"{model.label.join.value}, time field `{model.label.event_time_field}`)",
              f"- **Gate policy:** {policy.metric} ({'higher' if policy.higher_is_better else 'lower'} is better), "
              f"margin {policy.margin:g}, floor "
              + ("none" if policy.floor is None else f"{'>=' if policy.higher_is_better else '<='} {policy.floor:g}")]
    r = model.rollout
    lines.append(f"- **Rollout:** {r.mode.value}" + ("" if r.mode.value == "offline" else
                 f" ({r.traffic_fraction:.0%} of requests; live test at confidence {r.confidence:g}, "
                 f"min improvement {r.min_improvement:g}, {r.min_labels}–{r.max_labels} labels)")
                 + ("" if r.rollback_margin is None else
                    f"; after a live promotion the previous champion guards it (rollback margin "
                    f"{r.rollback_margin:g}, {r.guard_labels} labels)"))
    if model.description:
        lines.append(f"- **Description:** {model.description}")
    return lines


def model_card(v: VersionState, champion: VersionState | None, audit: list[AuditEntry], model: Model | None = None,
               revision: int = 0) -> str:
    """The version's card; `model` is its declaration in definitions revision `revision` (the one in force)."""
    c, lin = v.candidate, v.candidate.lineage
    lines = [
        f"# Model card: {v.model_name} v{v.version}",
        "",
        f"- **Status:** {v.status}" + (" (serving)" if champion and champion.version == v.version else "")
        + (f", on live traffic as {v.role} ({v.traffic_fraction:.0%} of requests)" if v.role else ""),
        f"- **Artifact:** ONNX, sha256 `{c.sha256}` ({c.size} bytes), framework {c.framework or '-'}",
        f"- **Registered:** {_ts(v.registered_at_ms)}; candidate id `{c.candidate_id}`",
        f"- **Trained on:** definitions revision "
        f"{lin.definitions_revision or c.params.get('definitions_revision') or '-'}, "
        f"{_views(c)}",
        f"- **Gate:** {v.gate_decision or '-'}: {v.gate_reason or '-'}",
    ]
    lines += _declared(c, model, revision)
    lines += [
        "",
        "## Why it was trained",
        "",
    ]
    if c.byo:  # not trained here: who brought it is the reason it exists
        lines.append(f"- Bring-your-own ONNX model registered by {c.registered_by}")
    if lin.retrain_request_id or not c.byo:
        lines.append(f"- Retrain request `{lin.retrain_request_id or '-'}`: {lin.retrain_reason or '-'}")
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
    lines += _explainability(c.explainability)
    lines += _slices(v.slices, model)
    history = [a for a in audit if a.version == v.version]
    if history:
        lines += ["", "## History", "", "| seq | when | action | actor | why |", "|---|---|---|---|---|"]
        lines += [f"| {a.sequence} | {_ts(a.at_ms)} | {a.action} | {a.actor} | {a.why} |" for a in history]
    lines += _live(v, audit)
    return "\n".join(lines) + "\n"


def _live(v: VersionState, audit: list[AuditEntry]) -> list[str]:
    """The monitor's verdicts on live traffic that involved the version (as challenger, champion or guard)."""
    verdicts = [a.evidence for a in audit if a.evidence is not None and a.command_id == a.evidence.verdict_id
                and v.version in (a.evidence.champion_version, a.evidence.challenger_version)]
    if not verdicts:
        return []
    lines = ["", "## Live evidence (joined labels on live traffic)", "",
             "| phase | verdict | champion | challenger | metric | champion value | challenger value | difference "
             "| interval | labelled rows | test |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {e.phase} | {e.verdict} | v{e.champion_version} | v{e.challenger_version} | {e.metric} | "
              f"{e.champion_metric:.4f} | {e.challenger_metric:.4f} | {e.difference:+.4f} | "
              f"[{e.ci_low:+.4f}, {e.ci_high:+.4f}] | {e.labelled_rows} | {e.test} ({e.confidence:g}) |"
              for e in verdicts if e is not None]
    return lines


def _explainability(r: Explainability | None) -> list[str]:
    """Permutation importance (table and figure), partial dependence and calibration figures."""
    lines = ["", "## Explainability (holdout)", ""]
    if r is None:
        return lines + ["- No explainability report: the version was registered before reports existed."]
    lines += [f"Permutation importance: the drop of {r.metric} when one input is shuffled (5 seeded repeats, "
              f"{r.rows} holdout rows); partial dependence of the top inputs; training means are the baseline of "
              "per-prediction explanations (`explain` request parameter).", "",
              "![Permutation importance](importance.png)", "",
              "| rank | feature | importance | std | training mean |", "|---|---|---|---|---|"]
    lines += [f"| {k} | `{i.feature}` | {i.mean:.4f} | {i.std:.4f} | {_fmt(r.feature_means.get(i.feature, math.nan))} |"
              for k, i in enumerate(r.importances, 1)]
    if r.dependence:
        lines += ["", "![Partial dependence](partial_dependence.png)"]
    if r.calibration is not None:
        c = r.calibration
        gap = sum(n * abs(t - p) for n, t, p in zip(c.counts, c.prob_true, c.prob_pred, strict=True)) / max(
            1, sum(c.counts))
        lines += ["", f"Calibration: expected calibration error {gap:.4f} over {len(c.counts)} bins.", "",
                  "![Reliability (calibration) curve](calibration.png)"]
    return lines


def _slices(s: SliceReport | None, model: Model | None) -> list[str]:
    """The gate metric per slice, beside the champion's on the same rows, and the gap per attribute."""
    lines = ["", "## Slices (holdout, scored by the registry's gate)", ""]
    if s is None:
        return lines + ["- No slices: the model declares no `gate.slices` and reads no `sensitive: true` field."]
    policy = model.gate.slices if model is not None else None
    if policy is not None:
        checks = [f"{k} {v:g}" for k, v in (("max_slice_loss", policy.max_slice_loss),
                                              ("slice_floor", policy.slice_floor),
                                              ("max_slice_gap", policy.max_slice_gap)) if v is not None]
        lines += [f"Gate checks: {', '.join(checks) or 'none (reported only)'}; slices with fewer than "
                  f"{s.min_rows} rows are not judged.", ""]
    champ = f"champion v{s.champion_version}" if s.champion_version else "champion"
    lines += ["![Slices](slices.png)", "",
              f"| attribute | slice | rows | {s.metric} | 95% interval | {champ} | its interval |",
              "|---|---|---|---|---|---|---|"]
    for r in s.rows:
        mark = " (sensitive)" if r.sensitive else ""
        ours = f"[{_fmt(r.low)}, {_fmt(r.high)}]"
        theirs = "-" if r.champion is None else f"[{_fmt(r.champion_low)}, {_fmt(r.champion_high)}]"
        lines.append(f"| `{r.attribute}`{mark} | {r.value} | {r.rows} | {_fmt(r.metric)} | {ours} | "
                     f"{'-' if r.champion is None else _fmt(r.champion)} | {theirs} |")
    lines += [""]
    for attribute in s.attributes():
        pair = s.gap(attribute)
        if pair is not None:
            best, worst = pair
            lines.append(f"- Gap on `{attribute}`: {abs(best.metric - worst.metric):.4f} between best "
                         f"{best.value} ({_fmt(best.metric)}) and worst {worst.value} ({_fmt(worst.metric)})")
    return lines


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
