"""One place that scores predictions by task, so the trainer, the registry's gate and the monitor agree.

A model's output follows its task (`mlops.definitions.Task`):
- binary: probabilities `[N, 2]` (positive class second), label 0/1;
- multiclass: probabilities `[N, K]` in the order of the model's declared `classes`, label one of `classes`;
- regression: predictions `[N]` (or `[N, 1]`), label a real number.

`scores(task, y, output, classes)` returns every metric of the task (`definitions.METRICS_FOR`); a metric that is
undefined on the rows (AUC with one class present) is NaN, which the gate treats as "cannot judge".

`slice_scores` gives one metric per slice of the rows (each value of a categorical attribute, each quantile bin of a
numeric one; `slice_values` cuts them) with its row count and a 95 % confidence interval: Wilson's score interval
for accuracy, a seeded percentile bootstrap otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mlops.definitions.model import METRICS_FOR, SliceAttribute, Task

__all__ = [
    "FEATURE_MEANS_KEY", "ONNX_OUTPUT", "Calibration", "Dependence", "Explainability", "Importance", "SliceScore",
    "better", "interval", "point_predictions", "scores", "slice_scores", "slice_values",
]

# the ONNX output each task's score reads (skl2onnx names for scikit-learn's classifiers and regressors)
ONNX_OUTPUT: dict[Task, str] = {Task.BINARY: "probabilities", Task.MULTICLASS: "probabilities",
                                Task.REGRESSION: "variable"}


def point_predictions(task: Task, output: np.ndarray, classes: Sequence[int] | None = None) -> np.ndarray:
    """The predicted label per row: the positive class at p >= 0.5, the most probable class, or the value."""
    output = np.asarray(output, dtype=np.float64)
    if task is Task.BINARY:
        return (output[:, 1] >= 0.5).astype(np.float64)
    if task is Task.MULTICLASS:
        order = np.asarray(classes if classes is not None else range(output.shape[1]), dtype=np.float64)
        return order[np.argmax(output, axis=1)]
    return output.reshape(-1)


def scores(task: Task, y: np.ndarray, output: np.ndarray, classes: Sequence[int] | None = None) -> dict[str, float]:
    """Every metric of `task` for labels `y` and model output `output` (see the module docstring)."""
    from sklearn.metrics import accuracy_score, f1_score, log_loss, mean_absolute_error, roc_auc_score

    y = np.asarray(y, dtype=np.float64)
    if len(y) == 0:
        return {name: math.nan for name in METRICS_FOR[task]}
    if task is Task.REGRESSION:
        pred = point_predictions(task, output)
        return {"rmse": float(np.sqrt(np.mean((pred - y) ** 2))), "mae": float(mean_absolute_error(y, pred))}
    proba = np.clip(np.asarray(output, dtype=np.float64), 1e-15, 1 - 1e-15)
    pred = point_predictions(task, proba, classes)
    if task is Task.BINARY:
        p = proba[:, 1]
        return {
            "auc": float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else math.nan,
            "logloss": float(log_loss(y, p, labels=[0.0, 1.0])),
            "accuracy": float(accuracy_score(y, pred)),
        }
    labels = list(classes) if classes is not None else list(range(proba.shape[1]))
    order = np.argsort(labels)  # log_loss reads probability columns in sorted label order
    proba = proba / proba.sum(axis=1, keepdims=True)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "logloss": float(log_loss(y, proba[:, order], labels=[labels[i] for i in order])),
    }


def better(task: Task, metric: str, challenger: float, champion: float) -> float:
    """How much better `challenger` is than `champion` on `metric` (positive: better), whichever way it points."""
    return challenger - champion if METRICS_FOR[task][metric] else champion - challenger


# --- the explainability report's numbers (computed by the trainer, drawn by the registry's model card) ----------


@dataclass(frozen=True)
class Importance:
    feature: str
    mean: float  # mean drop of the metric (in "higher is better" terms) over the repeats
    std: float


@dataclass(frozen=True)
class Dependence:
    feature: str
    grid: tuple[float, ...]
    average: tuple[float, ...]  # mean output (P(class 1), the top class's probability, or the value) at each point


@dataclass(frozen=True)
class Calibration:
    prob_pred: tuple[float, ...]  # mean predicted probability per bin (non-empty bins only)
    prob_true: tuple[float, ...]  # observed frequency per bin
    counts: tuple[int, ...]


@dataclass(frozen=True)
class Explainability:
    """What drives a version, on its holdout: permutation importance by the drop of `metric`, partial dependence
    of the top features, a calibration curve (classifiers), and the training means of its inputs."""

    metric: str
    rows: int
    importances: tuple[Importance, ...] = ()  # most important first
    dependence: tuple[Dependence, ...] = ()
    calibration: Calibration | None = None
    feature_means: dict[str, float] = field(default_factory=dict)


# the ONNX metadata entry holding a trained version's input means (JSON list, input order): written by the trainer,
# read by inference as the baseline of per-prediction explanations
FEATURE_MEANS_KEY = "mlops.feature_means"
MISSING = "missing"
_Z95 = 1.959963984540054
_BOOTSTRAP = 200


@dataclass(frozen=True)
class SliceScore:
    """The metric on one slice of the rows, with its row count and 95 % confidence interval."""

    attribute: str
    value: str
    rows: int
    metric: float
    low: float
    high: float


def slice_values(attribute: SliceAttribute, columns: np.ndarray, bins: int = 4) -> np.ndarray:
    """The slice each row falls in (strings), from the attribute's input `columns` [n, len(attribute.columns)]:
    the one-hot column set to 1, the vocabulary value of an index, or a quantile bin `[lo, hi)` of a numeric value
    (edges from these rows); "missing" for NaN, "__other__" for an unknown category."""
    cols = np.asarray(columns, dtype=np.float64).reshape(len(columns), -1)
    out = np.full(len(cols), MISSING, dtype=object)
    if attribute.values is not None and attribute.one_hot:
        hot = np.nan_to_num(cols, nan=0.0) > 0.5
        known = hot.any(axis=1)
        out[known] = np.asarray(attribute.values, dtype=object)[np.argmax(hot[known], axis=1)]
        out[~known & ~np.isnan(cols).all(axis=1)] = "__other__"
        return out
    x = cols[:, 0]
    present = ~np.isnan(x)
    if attribute.values is not None:
        idx = np.where(present, x, -1).astype(np.int64)
        valid = present & (idx >= 0) & (idx < len(attribute.values))
        out[valid] = np.asarray(attribute.values, dtype=object)[idx[valid]]
        out[present & ~valid] = "__other__"
        return out
    if not present.any():
        return out
    edges = np.unique(np.quantile(x[present], np.linspace(0, 1, bins + 1)))
    if len(edges) == 1:
        out[present] = f"= {edges[0]:.4g}"
        return out
    which = np.clip(np.searchsorted(edges, x[present], side="right") - 1, 0, len(edges) - 2)
    last = len(edges) - 2
    names = [f"[{edges[i]:.4g}, {edges[i + 1]:.4g}{']' if i == last else ')'}" for i in range(len(edges) - 1)]
    out[present] = np.asarray(names, dtype=object)[which]
    return out


def _metric_batch(task: Task, metric: str, y: np.ndarray, output: np.ndarray, idx: np.ndarray,
                  classes: Sequence[int] | None) -> np.ndarray:
    """`metric` on each bootstrap resample (rows `idx` [B, n]), vectorised for the common metrics."""
    yy = y[idx]
    if task is Task.REGRESSION:
        err = point_predictions(task, output)[idx] - yy
        return np.sqrt(np.mean(err ** 2, axis=1)) if metric == "rmse" else np.mean(np.abs(err), axis=1)
    proba = np.clip(np.asarray(output, dtype=np.float64), 1e-15, 1 - 1e-15)
    if metric == "accuracy":
        return np.mean(point_predictions(task, proba, classes)[idx] == yy, axis=1)
    if task is Task.BINARY and metric == "logloss":
        p = proba[:, 1][idx]
        return -np.mean(yy * np.log(p) + (1 - yy) * np.log(1 - p), axis=1)
    if task is Task.BINARY and metric == "auc":
        p = proba[:, 1][idx]
        ranks = np.argsort(np.argsort(p, axis=1, kind="stable"), axis=1) + 1.0  # ties: close enough for an interval
        pos = yy.sum(axis=1)
        neg = yy.shape[1] - pos
        with np.errstate(invalid="ignore", divide="ignore"):
            return ((ranks * yy).sum(axis=1) - pos * (pos + 1) / 2) / (pos * neg)
    return np.array([scores(task, y[i], output[i], classes)[metric] for i in idx])


def interval(task: Task, metric: str, y: np.ndarray, output: np.ndarray, classes: Sequence[int] | None = None,
             seed: int = 0) -> tuple[float, float, float]:
    """(value, low, high): the metric on the rows and its 95 % confidence interval — Wilson's score interval for
    accuracy (a proportion), else a percentile bootstrap of 200 resamples seeded by `seed` (deterministic)."""
    y = np.asarray(y, dtype=np.float64)
    output = np.asarray(output, dtype=np.float64)
    n = len(y)
    if n == 0:
        return math.nan, math.nan, math.nan
    value = scores(task, y, output, classes)[metric]
    if metric == "accuracy":
        centre = (value + _Z95 ** 2 / (2 * n)) / (1 + _Z95 ** 2 / n)
        half = _Z95 * math.sqrt(value * (1 - value) / n + _Z95 ** 2 / (4 * n * n)) / (1 + _Z95 ** 2 / n)
        return value, max(0.0, centre - half), min(1.0, centre + half)
    idx = np.random.default_rng(seed).integers(0, n, size=(_BOOTSTRAP, n))
    draws = _metric_batch(task, metric, y, output, idx, classes)
    draws = draws[np.isfinite(draws)]
    if not len(draws):
        return value, math.nan, math.nan
    return value, float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))


def _slice_order(value: str) -> tuple[int, float, str]:
    """Quantile bins `[lo, hi)` by their lower edge, before categories and "missing" by name."""
    if value.startswith("["):
        try:
            return 0, float(value[1:].partition(",")[0]), value
        except ValueError:
            pass
    return 1, 0.0, value


def slice_scores(task: Task, metric: str, y: np.ndarray, output: np.ndarray, groups: dict[str, np.ndarray],
                 classes: Sequence[int] | None = None, seed: int = 0) -> list[SliceScore]:
    """`metric` with its interval per slice: `groups[attribute]` is each row's slice of that attribute
    (`slice_values`); categories in sorted order, quantile bins in order of their edges, attributes as given."""
    y = np.asarray(y, dtype=np.float64)
    output = np.asarray(output, dtype=np.float64)
    out: list[SliceScore] = []
    for attribute, values in groups.items():
        values = np.asarray(values, dtype=object)
        for value in sorted({str(v) for v in values}, key=_slice_order):
            rows = values == value
            m, low, high = interval(task, metric, y[rows], output[rows], classes, seed)
            out.append(SliceScore(attribute, value, int(rows.sum()), m, low, high))
    return out
