"""The model card's figures, drawn from the numbers a version carries (its explainability report and the gate's
slice report), so any registry rebuilt from registry.log draws them again: PNG bytes via matplotlib's Agg backend
(no display)."""

from __future__ import annotations

import io
from dataclasses import dataclass

from mlops.evaluation import Explainability

from services.registry.core.slices import SliceReport

__all__ = ["Figure", "figures"]


@dataclass(frozen=True)
class Figure:
    name: str  # the file name the card's Markdown references
    title: str
    png: bytes


def figures(report: Explainability | None, slices: SliceReport | None) -> list[Figure]:
    """Every figure the card references, in card order (none for what the version does not carry)."""
    import matplotlib

    matplotlib.use("Agg")
    out = []
    if report is not None and report.importances:
        out.append(Figure("importance.png", "Permutation importance", _importance(report)))
    if report is not None and report.dependence:
        out.append(Figure("partial_dependence.png", "Partial dependence", _dependence(report)))
    if report is not None and report.calibration is not None:
        out.append(Figure("calibration.png", "Reliability (calibration) curve", _calibration(report)))
    if slices is not None and slices.rows:
        out.append(Figure("slices.png", f"{slices.metric} per slice", _slices(slices)))
    return out


def _png(fig: object) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()  # type: ignore[attr-defined]
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return buf.getvalue()


def _importance(r: Explainability) -> bytes:
    import matplotlib.pyplot as plt

    items = list(r.importances[:15])[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(items) + 1.2))
    ax.barh([i.feature for i in items], [i.mean for i in items], xerr=[i.std for i in items], color="#4878a8")
    ax.set_xlabel(f"drop of {r.metric} when shuffled ({r.rows} holdout rows)")
    ax.axvline(0, color="black", linewidth=0.6)
    return _png(fig)


def _dependence(r: Explainability) -> bytes:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(r.dependence), figsize=(3.2 * len(r.dependence), 2.8), squeeze=False)
    for ax, d in zip(axes[0], r.dependence, strict=True):
        ax.plot(d.grid, d.average, marker="o", markersize=3)
        ax.set_xlabel(d.feature, fontsize=8)
    axes[0][0].set_ylabel("mean model output")
    return _png(fig)


def _calibration(r: Explainability) -> bytes:
    import matplotlib.pyplot as plt

    c = r.calibration
    assert c is not None
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    ax.plot(c.prob_pred, c.prob_true, marker="o", label="model")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed frequency")
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def _slices(s: SliceReport) -> bytes:
    import matplotlib.pyplot as plt
    import numpy as np

    rows = list(s.rows)
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(rows) + 1.2))
    y = np.arange(len(rows))[::-1]
    ax.errorbar([r.metric for r in rows], y, xerr=_err(rows, False), fmt="o", label="this version", capsize=3)
    champ = [r for r in rows if r.champion is not None]
    if champ:
        ax.errorbar([r.champion for r in champ], [y[i] - 0.25 for i, r in enumerate(rows) if r.champion is not None],
                    xerr=_err(champ, True), fmt="s", label=f"champion v{s.champion_version}", capsize=3)
    ax.set_yticks(y, [f"{r.name} (n={r.rows})" for r in rows], fontsize=8)
    ax.set_xlabel(f"{s.metric} with 95% interval ({'higher' if s.higher_is_better else 'lower'} is better)")
    ax.legend(fontsize=8)
    return _png(fig)


def _err(rows: list, champion: bool) -> list[list[float]]:
    import math

    def half(value: float | None, bound: float | None) -> float:
        if value is None or bound is None or not math.isfinite(bound):
            return 0.0
        return abs(value - bound)

    if champion:
        return [[half(r.champion, r.champion_low) for r in rows], [half(r.champion, r.champion_high) for r in rows]]
    return [[half(r.metric, r.low) for r in rows], [half(r.metric, r.high) for r in rows]]
