"""Training one declared model: a training set in, a verified ONNX model with its metrics out, for every task.

Deterministic by construction: rows are split by label time with a stable sort, the booster gets a fixed seed and
no random early-stopping split unless the model asks for one (then seeded too), and skl2onnx's output for a given
model is byte-stable, so the same rows and seed give the same ONNX bytes (and sha256). Nothing is pickled: the only
artifact is the ONNX protobuf.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from mlops.definitions import Model, Task
from mlops.definitions.model import METRICS_FOR
from mlops.evaluation import ONNX_OUTPUT, scores

from services.trainer.core.report import Explainability, explain_or_none, training_means, with_feature_means
from services.trainer.errors import (
    BadParams,
    ExportMismatch,
    FeatureMismatch,
    InsufficientData,
    MissingClasses,
    ShapeMismatch,
    SingleClass,
    UnknownParams,
)
from services.trainer.settings import TrainerSettings

__all__ = [
    "ONNX_INPUT",
    "Progress",
    "TrainConfig",
    "TrainedModel",
    "TrainingSetLike",
    "export_onnx",
    "onnx_output",
    "prepare",
    "time_ordered_split",
    "train_config",
    "train_model",
]

Progress = Callable[[str, float], None]
ONNX_INPUT = "input"
# ours, not the model's to set: the seed is `training.seed` (reproducibility is recorded in the lineage)
_RESERVED = {"random_state": "set training.seed instead"}


class TrainingSetLike(Protocol):
    """What mlops.offline_store.TrainingSet provides (structural: the core imports nothing that reaches a broker)."""

    X: np.ndarray
    y: np.ndarray
    feature_names: Sequence[str]
    entity_ids: Sequence[str]
    label_times_ms: np.ndarray
    feature_log_ranges: Sequence[Any]
    label_ranges: Sequence[Any]


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training depends on: the model's task and declared algorithm/training, the trainer's own
    export settings."""

    name: str = "model"
    task: Task = Task.BINARY
    classes: tuple[int, ...] | None = None  # multiclass: the label values in output order
    params: Mapping[str, Any] = field(default_factory=dict)  # the model's algorithm.params
    seed: int = 42
    holdout_fraction: float = 0.2
    min_rows: int = 200
    max_rows: int = 0  # train on at most the latest N rows by label time (0: every row)
    holdout_max_rows: int = 5000
    parity_tolerance: float = 1e-4
    onnx_opset: int = 17
    metric: str = ""  # the gate metric the explainability report measures importance by ("": the task's default)

    @property
    def gate_metric(self) -> str:
        return self.metric or next(iter(METRICS_FOR[self.task]))

    @property
    def estimator_name(self) -> str:
        return "HistGradientBoostingRegressor" if self.task is Task.REGRESSION else "HistGradientBoostingClassifier"

    def estimator(self) -> Any:
        """The unfitted estimator with the declared params (unknown ones refused, naming them)."""
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cls = HistGradientBoostingRegressor if self.task is Task.REGRESSION else HistGradientBoostingClassifier
        known = set(cls().get_params())
        unknown = set(self.params) - known
        if unknown:
            raise UnknownParams(self.name, self.estimator_name, unknown)
        reserved = set(self.params) & set(_RESERVED)
        if reserved:
            raise UnknownParams(self.name, self.estimator_name, reserved, "; ".join(_RESERVED[r] for r in reserved))
        # early stopping would draw a random validation split: off unless declared (and then seeded)
        params = {"max_iter": 100, "learning_rate": 0.1, "early_stopping": False} | dict(self.params)
        return cls(**params, random_state=self.seed)


def train_config(model: Model, settings: TrainerSettings, seed: int | None = None) -> TrainConfig:
    """The training of `model` as declared, with `seed` (a request's own) in place of the declared one."""
    t = model.training
    return TrainConfig(
        name=model.name, task=model.task, classes=model.classes, params=dict(model.algorithm.params),
        seed=t.seed if seed is None else seed, holdout_fraction=t.holdout_fraction, min_rows=t.min_rows,
        max_rows=t.max_rows or 0, holdout_max_rows=settings.holdout_max_rows,
        parity_tolerance=settings.parity_tolerance, onnx_opset=settings.onnx_opset, metric=model.metric,
    )


@dataclass(frozen=True)
class TrainedModel:
    onnx_bytes: bytes
    sha256: str
    framework: str
    params: dict[str, str]
    metrics: dict[str, float]
    feature_names: tuple[str, ...]
    holdout_X: np.ndarray  # float32, the rows that travel with the candidate (latest by label time)
    holdout_y: np.ndarray  # float64
    train_rows: int
    holdout_rows: int
    data_start_ms: int
    data_end_ms: int
    parity_max_diff: float
    timings_s: dict[str, float] = field(default_factory=dict)
    explainability: Explainability | None = None  # computed on the holdout with the ONNX model


def _noop(_stage: str, _fraction: float) -> None:
    return None


def time_ordered_split(label_times_ms: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (train, holdout): the holdout is the last `fraction` of rows by label time (stable on ties)."""
    order = np.argsort(np.asarray(label_times_ms, dtype=np.int64), kind="stable")
    n_hold = max(1, int(round(len(order) * fraction)))
    return order[:-n_hold], order[-n_hold:]


@dataclass(frozen=True)
class Prepared:
    """A training set checked and windowed: X (float32), y, label times, and the time-ordered split."""

    X: np.ndarray  # noqa: N815
    y: np.ndarray
    times: np.ndarray
    train_idx: np.ndarray
    hold_idx: np.ndarray


def prepare(data: TrainingSetLike, config: TrainConfig, expected_features: Sequence[str]) -> Prepared:
    """Check the columns and shapes, keep the latest `max_rows`, refuse fewer than `min_rows`, split by time."""
    names = tuple(data.feature_names)
    if tuple(expected_features) != names:
        raise FeatureMismatch(tuple(expected_features), names)
    X = np.ascontiguousarray(data.X, dtype=np.float32)  # noqa: N806
    y = np.asarray(data.y, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != len(names) or len(y) != X.shape[0]:
        raise ShapeMismatch(X.shape, y.shape, len(names))
    times = np.asarray(data.label_times_ms, dtype=np.int64)
    if config.max_rows and len(y) > config.max_rows:
        # a sliding window: only the latest rows by label time, so a retrain after a concept drift learns the
        # current concept instead of being outvoted by the history
        recent = np.sort(np.argsort(times, kind="stable")[-config.max_rows:])
        X, y, times = X[recent], y[recent], times[recent]  # noqa: N806
    if len(y) < config.min_rows:
        raise InsufficientData(len(y), config.min_rows)
    train_idx, hold_idx = time_ordered_split(times, config.holdout_fraction)
    return Prepared(X, y, times, train_idx, hold_idx)


def _check_labels(config: TrainConfig, p: Prepared) -> np.ndarray:
    """The training targets the estimator is fitted on; refuses rows that cannot make a model of the task."""
    y_tr = p.y[p.train_idx]
    if config.task is Task.BINARY:
        for where, idx in (("training", p.train_idx), ("holdout", p.hold_idx)):
            present = np.unique(p.y[idx])
            if len(present) < 2:
                raise SingleClass(where, float(present[0]) if len(present) else float("nan"))
        return y_tr.astype(np.int64)
    if config.task is Task.MULTICLASS:
        declared = list(config.classes or ())
        missing = set(declared) - {int(v) for v in np.unique(y_tr)}
        if missing:
            raise MissingClasses("training", missing, declared)
        # fitted on class POSITIONS, so the probabilities come out in the declared order (see _declare_classes)
        position = {c: i for i, c in enumerate(declared)}
        return np.array([position[int(v)] for v in y_tr], dtype=np.int64)
    return y_tr


def export_onnx(model: Any, n_features: int, opset: int, task: Task) -> bytes:
    """skl2onnx export: input "input" float32 [None, k]; classifiers output `label` and `probabilities` (no
    ZipMap), regressors `variable` [None, 1]."""
    import warnings

    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    options = {} if task is Task.REGRESSION else {id(model): {"zipmap": False}}
    with warnings.catch_warnings():
        # skl2onnx 1.20 passes booleans as ints for tree attributes: a DeprecationWarning under protobuf 6.33, an
        # error under protobuf 7 — the reason protobuf is pinned to 6.33 (README, "Dependency pins")
        warnings.filterwarnings("ignore", message=".*Expected an int, got a boolean.*",
                                category=DeprecationWarning)
        onx = to_onnx(model, initial_types=[(ONNX_INPUT, FloatTensorType([None, n_features]))], options=options,
                      target_opset=opset)
    return onx.SerializeToString()


def onnx_output(onnx_bytes: bytes, X: np.ndarray, task: Task) -> np.ndarray:  # noqa: N803
    """The task's output (`mlops.evaluation.ONNX_OUTPUT`) of an ONNX model on X, with onnxruntime on CPU; the
    model's one input is fed whatever its name."""
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: np.ascontiguousarray(X, dtype=np.float32)}
    return np.asarray(sess.run([ONNX_OUTPUT[task]], feed)[0])


def _sklearn_output(model: Any, X: np.ndarray, task: Task) -> np.ndarray:  # noqa: N803
    return model.predict(X).reshape(-1, 1) if task is Task.REGRESSION else model.predict_proba(X)


def _parity(onnx_out: np.ndarray, skl_out: np.ndarray, task: Task) -> float:
    """Largest difference between the two outputs; relative to the values' scale for a regression (float32
    rounding grows with the magnitude of what is predicted)."""
    if not len(skl_out):
        return 0.0
    diff = float(np.max(np.abs(onnx_out.reshape(skl_out.shape) - skl_out)))
    return diff / max(1.0, float(np.max(np.abs(skl_out)))) if task is Task.REGRESSION else diff


def _params(config: TrainConfig, estimator: Any) -> dict[str, str]:
    params = {k: ("None" if v is None else repr(v) if isinstance(v, float) else str(v))
              for k, v in sorted(estimator.get_params().items())}
    params |= {"task": config.task.value, "holdout_fraction": repr(config.holdout_fraction),
               "onnx_opset": str(config.onnx_opset)}
    if config.max_rows:
        params["max_rows"] = str(config.max_rows)
    return params


def train_model(data: TrainingSetLike, config: TrainConfig, expected_features: Sequence[str],
                progress: Progress = _noop) -> TrainedModel:
    """Split by time, fit with the fixed seed, export ONNX, check onnxruntime parity, evaluate on the holdout."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    p = prepare(data, config, expected_features)
    progress("split", 0.05)
    y_fit = _check_labels(config, p)
    estimator = config.estimator()
    X_tr, X_ho, y_ho = p.X[p.train_idx], p.X[p.hold_idx], p.y[p.hold_idx]  # noqa: N806

    progress("fit", 0.1)
    t = time.perf_counter()
    try:
        model = estimator.fit(X_tr, y_fit)
    except ValueError as exc:  # scikit-learn's InvalidParameterError: a declared value it refuses
        raise BadParams(config.name, str(exc)) from exc
    if config.task is Task.MULTICLASS:
        model.classes_ = np.asarray(config.classes, dtype=np.int64)  # the labels the ONNX `label` output names
    timings["fit"] = time.perf_counter() - t

    progress("export", 0.7)
    t = time.perf_counter()
    onnx_bytes = export_onnx(model, X_tr.shape[1], config.onnx_opset, config.task)
    means = training_means(X_tr)
    onnx_bytes = with_feature_means(onnx_bytes, means)  # the baseline of per-prediction explanations
    timings["export"] = time.perf_counter() - t

    progress("verify", 0.8)
    t = time.perf_counter()
    out = onnx_output(onnx_bytes, X_ho, config.task)
    max_diff = _parity(out, _sklearn_output(model, X_ho, config.task), config.task)
    if not max_diff <= config.parity_tolerance:
        raise ExportMismatch(max_diff, config.parity_tolerance)
    timings["verify"] = time.perf_counter() - t

    progress("evaluate", 0.9)
    metrics = scores(config.task, y_ho, out, config.classes)
    metrics |= {"train_rows": float(len(p.train_idx)), "holdout_rows": float(len(p.hold_idx)),
                "onnx_parity_max_diff": max_diff}
    keep = p.hold_idx[-config.holdout_max_rows:]  # the latest rows when the holdout is capped
    progress("explain", 0.91)
    t = time.perf_counter()
    report = explain_or_none(onnx_bytes, X_ho, y_ho, config.task, config.gate_metric, expected_features, means,
                           config.classes, config.seed)
    timings["explain"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    progress("trained", 0.92)
    return TrainedModel(
        onnx_bytes=onnx_bytes, sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        framework=f"sklearn.{config.estimator_name}", params=_params(config, model), metrics=metrics,
        feature_names=tuple(expected_features), holdout_X=np.ascontiguousarray(p.X[keep], dtype=np.float32),
        holdout_y=p.y[keep], train_rows=len(p.train_idx), holdout_rows=len(p.hold_idx),
        data_start_ms=int(p.times.min()), data_end_ms=int(p.times.max()), parity_max_diff=max_diff,
        timings_s=timings, explainability=report,
    )
