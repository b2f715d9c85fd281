"""Slices of a candidate's holdout: the gate metric per value of each declared categorical / sensitive attribute
(per quantile bin of a numeric one), the challenger's beside the champion's on the same rows, and the slice checks
of the model's gate policy (`models[].gate.slices`): a loss against the champion's same slice, a floor per slice,
a gap between the best and worst slice. Plain values; the gate (`gate.py`) scores the models."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from mlops.definitions.model import SliceAttribute, SlicePolicy, Task
from mlops.evaluation import SliceScore, better, slice_scores, slice_values

__all__ = ["SliceReport", "SliceRow", "check_slices", "slice_report"]


@dataclass(frozen=True)
class SliceRow:
    """One slice: the challenger's metric and interval, and the champion's on the same rows (None: no champion)."""

    attribute: str
    value: str
    rows: int
    metric: float
    low: float
    high: float
    champion: float | None = None
    champion_low: float | None = None
    champion_high: float | None = None
    sensitive: bool = False

    @property
    def name(self) -> str:
        return f"{self.attribute}={self.value}"

    def text(self, metric: str) -> str:
        return f"{metric} {self.metric:.4f} [{self.low:.4f}, {self.high:.4f}] on {self.rows} rows"


@dataclass(frozen=True)
class SliceReport:
    """Every slice of the holdout, the metric they are scored by and the champion they are compared with."""

    metric: str
    higher_is_better: bool
    rows: tuple[SliceRow, ...]
    champion_version: str = ""
    min_rows: int = 1

    def attributes(self) -> list[str]:
        return list(dict.fromkeys(r.attribute for r in self.rows))

    def gap(self, attribute: str) -> tuple[SliceRow, SliceRow] | None:
        """(best, worst) judged slice of `attribute` (at least `min_rows` rows, a defined metric)."""
        judged = [r for r in self.rows if r.attribute == attribute and r.rows >= self.min_rows
                  and math.isfinite(r.metric)]
        if len(judged) < 2:
            return None
        ordered = sorted(judged, key=lambda r: r.metric, reverse=self.higher_is_better)
        return ordered[0], ordered[-1]


def slice_report(attributes: Sequence[SliceAttribute], policy: SlicePolicy | None, task: Task, metric: str,
                 higher_is_better: bool, feature_names: Sequence[str], X: np.ndarray, y: np.ndarray,  # noqa: N803
                 challenger: np.ndarray, champion: np.ndarray | None, champion_version: str = "",
                 classes: Sequence[int] | None = None) -> SliceReport | None:
    """Score both outputs per slice of every attribute (None when the model has none)."""
    if not attributes:
        return None
    bins = policy.bins if policy is not None else 4
    groups = {}
    for a in attributes:
        cols = [list(feature_names).index(c) for c in a.columns]
        groups[a.name] = slice_values(a, X[:, cols], bins)
    mine = slice_scores(task, metric, y, challenger, groups, classes)
    theirs: list[SliceScore | None] = list(slice_scores(task, metric, y, champion, groups, classes)) \
        if champion is not None else [None] * len(mine)
    sensitive = {a.name for a in attributes if a.sensitive}
    rows = tuple(
        SliceRow(s.attribute, s.value, s.rows, s.metric, s.low, s.high,
                 h.metric if h else None, h.low if h else None, h.high if h else None, s.attribute in sensitive)
        for s, h in zip(mine, theirs, strict=True))
    return SliceReport(metric, higher_is_better, rows, champion_version if champion is not None else "",
                       policy.min_rows if policy is not None else 1)


def check_slices(policy: SlicePolicy | None, report: SliceReport | None, task: Task) -> str | None:
    """Why the slices refuse the challenger (the worst failing slice named, with its figures), or None."""
    if policy is None or report is None:
        return None
    m, up = report.metric, report.higher_is_better
    judged = [r for r in report.rows if r.rows >= policy.min_rows and math.isfinite(r.metric)]
    failures: list[tuple[float, str]] = []  # (how far past the threshold, why)
    if policy.max_slice_loss is not None:
        for r in judged:
            if r.champion is None or not math.isfinite(r.champion):
                continue
            loss = -better(task, m, r.metric, r.champion)
            if loss > policy.max_slice_loss:
                failures.append((loss - policy.max_slice_loss, (
                    f"slice {r.name}: {r.text(m)} is worse than champion v{report.champion_version}'s "
                    f"{r.champion:.4f} [{r.champion_low:.4f}, {r.champion_high:.4f}] by {loss:.4f} > "
                    f"max_slice_loss {policy.max_slice_loss:g}")))
    if policy.slice_floor is not None:
        for r in judged:
            short = policy.slice_floor - r.metric if up else r.metric - policy.slice_floor
            if short > 0:
                failures.append((short, f"slice {r.name}: {r.text(m)} fails slice_floor "
                                        f"({m} {'>=' if up else '<='} {policy.slice_floor:g})"))
    if policy.max_slice_gap is not None:
        for attribute in report.attributes():
            pair = report.gap(attribute)
            if pair is None:
                continue
            best, worst = pair
            gap = abs(best.metric - worst.metric)
            if gap > policy.max_slice_gap:
                failures.append((gap - policy.max_slice_gap, (
                    f"slices of {attribute}: gap {gap:.4f} between best {best.name} ({best.text(m)}) and worst "
                    f"{worst.name} ({worst.text(m)}) > max_slice_gap {policy.max_slice_gap:g}")))
    if not failures:
        return None
    failures.sort(key=lambda f: f[0], reverse=True)
    more = f" (and {len(failures) - 1} more slice check(s) failing)" if len(failures) > 1 else ""
    return failures[0][1] + more
