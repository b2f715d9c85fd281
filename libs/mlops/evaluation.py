"""One place that scores predictions by task, so the trainer, the registry's gate and the monitor agree.

A model's output follows its task (`mlops.definitions.Task`):
- binary: probabilities `[N, 2]` (positive class second), label 0/1;
- multiclass: probabilities `[N, K]` in the order of the model's declared `classes`, label one of `classes`;
- regression: predictions `[N]` (or `[N, 1]`), label a real number.

`scores(task, y, output, classes)` returns every metric of the task (`definitions.METRICS_FOR`); a metric that is
undefined on the rows (AUC with one class present) is NaN, which the gate treats as "cannot judge".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mlops.definitions.model import METRICS_FOR, Task

__all__ = ["ONNX_OUTPUT", "better", "point_predictions", "scores"]

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
