"""The trainer's transport-free core: retrain requests coalesced into jobs; a training set in, a verified ONNX model
with its metrics out.

Deterministic by construction: rows are split by label time with a stable sort, the booster gets a fixed seed and
no random early-stopping split, and skl2onnx's output for a given model is byte-stable, so the same rows and seed
give the same ONNX bytes (and sha256). Nothing is pickled: the only artifact is the ONNX protobuf.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from services.trainer.errors import (
    ExportMismatch,
    FeatureMismatch,
    InsufficientData,
    ShapeMismatch,
    SingleClass,
    TrainerError,
)
from services.trainer.settings import TrainerSettings

log = logging.getLogger("mlops.trainer")

Progress = Callable[[str, float], None]
FRAMEWORK = "sklearn.HistGradientBoostingClassifier"
ONNX_INPUT = "input"


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
class RetrainAsk:
    """One retrain request, decoupled from its protobuf."""

    model_name: str
    request_id: str
    reason: str = ""
    detector: str = ""
    requested_at_ms: int = 0
    requested_by: str = ""
    seed: int | None = None


@dataclass(frozen=True)
class RetrainJob:
    """One training that answers every request in `request_ids`; `primary` is the latest of them."""

    model_name: str
    seed: int
    primary: RetrainAsk
    request_ids: tuple[str, ...]


def coalesce(asks: Sequence[RetrainAsk], default_model: str, default_seed: int) -> list[RetrainJob]:
    """Group requests by (model, seed) in order of first appearance; each group trains once, recorded under its
    latest request (by request time, then arrival) with every request id kept for lineage."""
    groups: dict[tuple[str, int], list[RetrainAsk]] = {}
    for ask in asks:
        key = (ask.model_name or default_model, default_seed if ask.seed is None else ask.seed)
        groups.setdefault(key, []).append(ask)
    jobs = []
    for (model, seed), members in groups.items():
        latest = max(enumerate(members), key=lambda im: (im[1].requested_at_ms, im[0]))[1]
        ids = tuple(dict.fromkeys(m.request_id for m in members if m.request_id))
        jobs.append(RetrainJob(model, seed, latest, ids))
    return jobs


def failure_reason(exc: Exception) -> str:
    """What a TrainingFailed says: our own errors carry a complete message; anything else is named by type."""
    return str(exc) if isinstance(exc, TrainerError) else f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 42
    holdout_fraction: float = 0.2
    holdout_max_rows: int = 5000
    min_rows: int = 200
    max_iter: int = 100
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    max_depth: int | None = None
    l2_regularization: float = 0.0
    parity_tolerance: float = 1e-4
    onnx_opset: int = 17
    max_rows: int = 0  # train on at most the latest N rows by label time (0: every row)

    def estimator_params(self) -> dict[str, Any]:
        return {
            "max_iter": self.max_iter,
            "learning_rate": self.learning_rate,
            "max_leaf_nodes": self.max_leaf_nodes,
            "max_depth": self.max_depth,
            "l2_regularization": self.l2_regularization,
            "early_stopping": False,  # early stopping draws a random validation split: keep training exact
            "random_state": self.seed,
        }


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


def train_config(settings: TrainerSettings, seed: int | None = None) -> TrainConfig:
    """The training parameters of `settings`, with `seed` (a request's own) in place of the default one."""
    return TrainConfig(
        seed=settings.seed if seed is None else seed, holdout_fraction=settings.holdout_fraction,
        holdout_max_rows=settings.holdout_max_rows, min_rows=settings.min_rows, max_iter=settings.max_iter,
        learning_rate=settings.learning_rate, max_leaf_nodes=settings.max_leaf_nodes, max_depth=settings.max_depth,
        l2_regularization=settings.l2_regularization, parity_tolerance=settings.parity_tolerance,
        onnx_opset=settings.onnx_opset, max_rows=settings.max_rows,
    )


def _noop(_stage: str, _fraction: float) -> None:
    return None


def time_ordered_split(label_times_ms: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (train, holdout): the holdout is the last `fraction` of rows by label time (stable on ties)."""
    order = np.argsort(np.asarray(label_times_ms, dtype=np.int64), kind="stable")
    n_hold = max(1, int(round(len(order) * fraction)))
    return order[:-n_hold], order[-n_hold:]


def evaluate(proba_pos: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """accuracy (threshold 0.5), ROC AUC and log loss of positive-class probabilities against 0/1 labels."""
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    y = np.asarray(y, dtype=np.float64)
    p = np.clip(np.asarray(proba_pos, dtype=np.float64), 1e-15, 1 - 1e-15)
    out = {
        "accuracy": float(accuracy_score(y, (p >= 0.5).astype(np.float64))),
        "logloss": float(log_loss(y, p, labels=[0.0, 1.0])),
    }
    out["auc"] = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")
    return out


def export_onnx(model: Any, n_features: int, opset: int) -> bytes:
    """skl2onnx export: input "input" float32 [None, k]; outputs `label` and `probabilities` (no ZipMap)."""
    import warnings

    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    with warnings.catch_warnings():
        # skl2onnx 1.20 passes booleans as ints for tree attributes: a DeprecationWarning under protobuf 6.33, an
        # error under protobuf 7 — the reason protobuf is pinned to 6.33 (README, "Dependency pins")
        warnings.filterwarnings("ignore", message=".*Expected an int, got a boolean.*",
                                category=DeprecationWarning)
        onx = to_onnx(
            model,
            initial_types=[(ONNX_INPUT, FloatTensorType([None, n_features]))],
            options={id(model): {"zipmap": False}},
            target_opset=opset,
        )
    return onx.SerializeToString()


def onnx_probabilities(onnx_bytes: bytes, X: np.ndarray) -> np.ndarray:
    """Positive-class probabilities of an exported model on X, with onnxruntime on CPU."""
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    out = sess.run(["probabilities"], {ONNX_INPUT: np.ascontiguousarray(X, dtype=np.float32)})[0]
    return np.asarray(out)[:, 1]


def train_model(
    data: TrainingSetLike, config: TrainConfig, expected_features: Sequence[str] | None = None,
    progress: Progress = _noop,
) -> TrainedModel:
    """Split by time, fit with the fixed seed, export ONNX, check onnxruntime parity, evaluate on the holdout."""
    import time

    from sklearn.ensemble import HistGradientBoostingClassifier

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    names = tuple(data.feature_names)
    if expected_features is not None and tuple(expected_features) != names:
        raise FeatureMismatch(tuple(expected_features), names)
    X = np.ascontiguousarray(data.X, dtype=np.float32)
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
    progress("split", 0.05)
    train_idx, hold_idx = time_ordered_split(times, config.holdout_fraction)
    for where, idx in (("training", train_idx), ("holdout", hold_idx)):
        classes = np.unique(y[idx])
        if len(classes) < 2:
            raise SingleClass(where, float(classes[0]) if len(classes) else float("nan"))
    X_tr, y_tr = X[train_idx], y[train_idx].astype(np.int64)
    X_ho, y_ho = X[hold_idx], y[hold_idx]

    progress("fit", 0.1)
    t = time.perf_counter()
    model = HistGradientBoostingClassifier(**config.estimator_params()).fit(X_tr, y_tr)
    timings["fit"] = time.perf_counter() - t

    progress("export", 0.7)
    t = time.perf_counter()
    onnx_bytes = export_onnx(model, len(names), config.onnx_opset)
    timings["export"] = time.perf_counter() - t

    progress("verify", 0.8)
    t = time.perf_counter()
    p_onnx = onnx_probabilities(onnx_bytes, X_ho)
    p_skl = model.predict_proba(X_ho)[:, 1]
    max_diff = float(np.max(np.abs(p_onnx - p_skl))) if len(p_skl) else 0.0
    if not max_diff <= config.parity_tolerance:
        raise ExportMismatch(max_diff, config.parity_tolerance)
    timings["verify"] = time.perf_counter() - t

    progress("evaluate", 0.9)
    metrics = evaluate(p_onnx, y_ho)
    metrics |= {"train_rows": float(len(train_idx)), "holdout_rows": float(len(hold_idx)),
                "onnx_parity_max_diff": max_diff}
    keep = hold_idx[-config.holdout_max_rows:]  # the latest rows when the holdout is capped
    timings["total"] = time.perf_counter() - t0
    progress("trained", 0.92)
    params = {k: ("None" if v is None else repr(v) if isinstance(v, float) else str(v))
              for k, v in sorted(config.estimator_params().items())}
    params |= {"holdout_fraction": repr(config.holdout_fraction), "onnx_opset": str(config.onnx_opset)}
    if config.max_rows:
        params["max_rows"] = str(config.max_rows)
    return TrainedModel(
        onnx_bytes=onnx_bytes,
        sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        framework=FRAMEWORK,
        params=params,
        metrics=metrics,
        feature_names=names,
        holdout_X=np.ascontiguousarray(X[keep], dtype=np.float32),
        holdout_y=y[keep],
        train_rows=len(train_idx),
        holdout_rows=len(hold_idx),
        data_start_ms=int(times.min()),
        data_end_ms=int(times.max()),
        parity_max_diff=max_diff,
        timings_s=timings,
    )
