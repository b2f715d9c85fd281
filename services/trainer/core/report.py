"""The explainability report of a version, computed on its holdout with the ONNX artifact itself (so a trained
and a bring-your-own model are explained the same way): scikit-learn's permutation importance (the drop of the
gate metric when a column is shuffled), partial dependence of the top features, and for classifiers a reliability
(calibration) curve. Numbers only — small enough to travel with the candidate; the registry draws the figures.

The training means of the inputs go with it and into the ONNX metadata (`FEATURE_MEANS_KEY`): inference explains
a single prediction against them (`services.inference.core.explain`).
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from mlops.definitions import Task
from mlops.definitions.model import METRICS_FOR
from mlops.evaluation import FEATURE_MEANS_KEY, ONNX_OUTPUT, Calibration, Dependence, Explainability, Importance, scores

log = logging.getLogger("mlops.trainer")

__all__ = ["explain_or_none", "explain_model", "training_means", "with_feature_means"]



@functools.cache
def _adapters() -> tuple[type, type]:
    """The ONNX model seen through scikit-learn's estimator interface (what sklearn.inspection needs): the
    classifier and the regressor class, built on first use (scikit-learn takes seconds to import on a busy
    machine, which the trainer's start-up should not wait for: it joins its group first)."""
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

    class _Onnx(BaseEstimator):
        def __init__(self, onnx_bytes: bytes = b"", task: str = "binary"):
            self.onnx_bytes = onnx_bytes
            self.task = task

        def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> Any:  # noqa: N803
            import onnxruntime as ort

            self.session_ = ort.InferenceSession(self.onnx_bytes, providers=["CPUExecutionProvider"])
            self.n_features_in_ = X.shape[1]
            return self

        def _out(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
            feed = {self.session_.get_inputs()[0].name: np.ascontiguousarray(X, dtype=np.float32)}
            return np.asarray(self.session_.run([ONNX_OUTPUT[Task(self.task)]], feed)[0], dtype=np.float64)

    class _OnnxClassifier(ClassifierMixin, _Onnx):
        def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> Any:  # noqa: N803
            super().fit(X, y)
            self.classes_ = np.arange(self._out(X[:1]).shape[1])
            return self

        def predict_proba(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
            return self._out(X)

        def predict(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
            return np.argmax(self._out(X), axis=1)

    class _OnnxRegressor(RegressorMixin, _Onnx):
        def predict(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
            return self._out(X).reshape(-1)

    return _OnnxClassifier, _OnnxRegressor


def with_feature_means(onnx_bytes: bytes, means: Sequence[float]) -> bytes:
    """The ONNX bytes with the training means in their metadata (deterministic: same means, same bytes)."""
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = FEATURE_MEANS_KEY, json.dumps([_finite(m) for m in means])
    return model.SerializeToString()


def training_means(X: np.ndarray) -> list[float]:  # noqa: N803
    """Per-column means of the training rows, ignoring missing values (0 for a column with none)."""
    X = np.asarray(X, dtype=np.float64)  # noqa: N806
    counts = np.sum(~np.isnan(X), axis=0)
    sums = np.nansum(X, axis=0)
    return [float(s / c) if c else 0.0 for s, c in zip(sums, counts, strict=True)]


def _finite(v: float) -> float:
    return float(v) if math.isfinite(v) else 0.0


def explain_model(onnx_bytes: bytes, X: np.ndarray, y: np.ndarray, task: Task, metric: str,  # noqa: N803
                  feature_names: Sequence[str], means: Sequence[float], classes: Sequence[int] | None = None,
                  seed: int = 42, top: int = 3, repeats: int = 5, max_rows: int = 2000) -> Explainability:
    """The report on at most the latest `max_rows` holdout rows (X, y): importance of every input by the drop of
    `metric` (seeded shuffles), partial dependence of the `top` most important, calibration for classifiers."""
    from sklearn.inspection import partial_dependence, permutation_importance

    X, y = np.asarray(X, dtype=np.float32)[-max_rows:], np.asarray(y, dtype=np.float64)[-max_rows:]  # noqa: N806
    classifier, regressor = _adapters()
    est = (regressor if task is Task.REGRESSION else classifier)(onnx_bytes, task.value).fit(X, y)
    sign = 1.0 if METRICS_FOR[task][metric] else -1.0

    def scorer(model: Any, X_: np.ndarray, y_: np.ndarray) -> float:  # noqa: N803
        value = scores(task, y_, model._out(X_), classes)[metric]
        return sign * value if math.isfinite(value) else 0.0

    result = permutation_importance(est, X, y, scoring=scorer, n_repeats=repeats, random_state=seed)
    order = np.argsort(-result.importances_mean, kind="stable")
    importances = tuple(Importance(feature_names[i], float(result.importances_mean[i]),
                                   float(result.importances_std[i])) for i in order)
    dependence = []
    for i in order[:top]:
        pd = partial_dependence(est, X, [int(i)], kind="average", grid_resolution=20, method="brute")
        avg = np.asarray(pd["average"])
        curve = avg[0] if task is not Task.MULTICLASS else avg.max(axis=0)
        dependence.append(Dependence(feature_names[i], tuple(float(g) for g in pd["grid_values"][0]),
                                     tuple(float(a) for a in curve)))
    return Explainability(metric, len(y), importances, tuple(dependence), _calibration(est._out(X), y, task, classes),
                          {n: _finite(m) for n, m in zip(feature_names, means, strict=True)})


def explain_or_none(*args: object, **kwargs: object) -> Explainability | None:
    """`explain_model`, or None (logged) when it fails: the report documents a version, it never blocks one."""
    try:
        return explain_model(*args, **kwargs)  # type: ignore[arg-type]
    except Exception as exc:
        log.warning("explainability report failed; the candidate goes without it",
                    extra={"fields": {"error": f"{type(exc).__name__}: {exc}"}})
        return None


def _calibration(out: np.ndarray, y: np.ndarray, task: Task, classes: Sequence[int] | None,
                 n_bins: int = 10) -> Calibration | None:
    """Binary: P(class 1) against the frequency of class 1; multiclass: the top class's probability against how
    often it is right. Equal-width bins; empty bins are left out."""
    from sklearn.calibration import calibration_curve

    if task is Task.REGRESSION:
        return None
    if task is Task.BINARY:
        prob, hit = out[:, 1], y
    else:
        order = np.asarray(classes if classes is not None else range(out.shape[1]), dtype=np.float64)
        prob, hit = out.max(axis=1), (order[np.argmax(out, axis=1)] == y).astype(np.float64)
    prob = np.clip(prob, 0.0, 1.0)
    if len(np.unique(hit)) < 2:
        return None
    prob_true, prob_pred = calibration_curve(hit, prob, n_bins=n_bins)
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:-1], prob), minlength=n_bins)
    return Calibration(tuple(map(float, prob_pred)), tuple(map(float, prob_true)),
                       tuple(int(c) for c in counts[counts > 0]))
