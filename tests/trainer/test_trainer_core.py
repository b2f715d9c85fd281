"""Unit tests of the trainer's core and coalescing: every task, declared params, no broker."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import onnx
import pytest
from mlops.definitions import Task
from trainer_helpers import SEA_FEATURES

from services.trainer.core import (
    RetrainAsk,
    TrainConfig,
    coalesce,
    onnx_output,
    time_ordered_split,
    train_model,
)
from services.trainer.errors import (
    BadParams,
    ExportMismatch,
    FeatureMismatch,
    InsufficientData,
    MissingClasses,
    SingleClass,
    UnknownParams,
)

NAMES = SEA_FEATURES


@dataclass
class Data:
    X: np.ndarray
    y: np.ndarray
    label_times_ms: np.ndarray
    feature_names: tuple[str, ...] = NAMES
    entity_ids: list[str] = field(default_factory=list)
    feature_log_ranges: list = field(default_factory=list)
    label_ranges: list = field(default_factory=list)


def sea(n: int, threshold: float = 8.0, seed: int = 0) -> Data:
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 10, (n, len(NAMES))).astype(np.float32)  # noqa: N806
    y = (X[:, 0] + X[:, 1] > threshold).astype(np.float64)
    return Data(X, y, np.arange(n, dtype=np.int64) * 10 + 1_700_000_000_000)


def regression(n: int, seed: int = 0) -> Data:
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 10, (n, 4)).astype(np.float32)  # noqa: N806
    y = 15 + 30 * X[:, 0] + 2 * X[:, 1] + rng.normal(0, 1, n)
    return Data(X, y, np.arange(n, dtype=np.int64) * 10, feature_names=("v.a", "v.b", "v.c", "v.d"))


SMALL = TrainConfig(params={"max_iter": 20}, min_rows=50)


def test_same_data_and_seed_give_byte_identical_onnx() -> None:
    data = sea(2000)
    a, b = train_model(data, SMALL, NAMES), train_model(data, SMALL, NAMES)
    assert a.onnx_bytes == b.onnx_bytes and a.sha256 == b.sha256
    c = train_model(data, TrainConfig(params={"max_iter": 20}, min_rows=50, seed=7), NAMES)
    assert c.params["random_state"] == "7"


def test_binary_model_is_onnx_with_label_and_probabilities_and_matches_sklearn() -> None:
    data = sea(3000)
    m = train_model(data, SMALL, NAMES)
    graph = onnx.load_from_string(m.onnx_bytes).graph
    assert [i.name for i in graph.input] == ["input"]
    assert [o.name for o in graph.output] == ["label", "probabilities"]
    assert m.framework == "sklearn.HistGradientBoostingClassifier"
    p = onnx_output(m.onnx_bytes, m.holdout_X, Task.BINARY)
    assert p.shape == (len(m.holdout_y), 2)
    # independently of train_model's own parity check: the same estimator fitted here on the same (time-ordered)
    # training rows gives the probabilities the exported ONNX gives on the holdout
    from sklearn.ensemble import HistGradientBoostingClassifier

    n_train = len(data.y) - m.holdout_rows  # label times increase with the row: the holdout is the tail
    mine = HistGradientBoostingClassifier(max_iter=20, learning_rate=0.1, early_stopping=False, random_state=42)
    mine.fit(data.X[:n_train], data.y[:n_train].astype(np.int64))
    assert np.array_equal(m.holdout_X, data.X[n_train:])
    assert np.max(np.abs(mine.predict_proba(m.holdout_X) - p)) < 1e-4
    assert m.metrics["accuracy"] > 0.9 and m.metrics["auc"] > 0.95
    assert set(m.metrics) >= {"accuracy", "auc", "logloss", "train_rows", "holdout_rows"}
    assert m.params["max_iter"] == "20" and m.params["task"] == "binary"
    assert b"pickle" not in m.onnx_bytes.lower()


def test_regression_model_outputs_variable_scores_mae_and_is_reproducible() -> None:
    data = regression(1500)
    config = TrainConfig(name="delivery_time", task=Task.REGRESSION, params={"max_iter": 60}, min_rows=50)
    m = train_model(data, config, data.feature_names)
    assert m.framework == "sklearn.HistGradientBoostingRegressor"
    graph = onnx.load_from_string(m.onnx_bytes).graph
    assert [o.name for o in graph.output] == ["variable"]
    assert set(m.metrics) >= {"rmse", "mae"} and m.metrics["mae"] < 5.0  # the target spans ~15..340
    # the export check is live: a tolerance no export can meet is refused, naming the difference
    with pytest.raises(ExportMismatch):
        train_model(data, dataclasses.replace(config, parity_tolerance=-1.0), data.feature_names)
    again = train_model(data, config, data.feature_names)
    assert again.sha256 == m.sha256  # same rows + seed → the same bytes
    other = train_model(data, TrainConfig(name="d", task=Task.REGRESSION, params={"max_iter": 60}, min_rows=50,
                                          seed=3, holdout_fraction=0.3), data.feature_names)
    assert other.sha256 != m.sha256


def test_multiclass_probabilities_follow_the_declared_class_order() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 10, (1200, 3)).astype(np.float32)  # noqa: N806
    y = np.where(X[:, 0] > 6, 7, np.where(X[:, 1] > 5, 2, 5)).astype(np.float64)
    data = Data(X, y, np.arange(1200, dtype=np.int64), feature_names=("v.a", "v.b", "v.c"))
    config = TrainConfig(name="mc", task=Task.MULTICLASS, classes=(5, 7, 2), params={"max_iter": 30}, min_rows=50)
    m = train_model(data, config, data.feature_names)
    out = onnx_output(m.onnx_bytes, m.holdout_X, Task.MULTICLASS)
    assert out.shape == (len(m.holdout_y), 3) and m.metrics["accuracy"] > 0.95
    # column k is the probability of classes[k]: the argmax names the true class
    assert np.mean(np.array([5, 7, 2])[out.argmax(axis=1)] == m.holdout_y) > 0.95
    with pytest.raises(MissingClasses, match=r"no label of the declared classes \[9\]"):
        train_model(data, TrainConfig(name="mc", task=Task.MULTICLASS, classes=(5, 7, 2, 9), min_rows=50),
                    data.feature_names)


def test_declared_params_are_checked_by_name_and_by_the_estimator() -> None:
    data = sea(300)
    with pytest.raises(UnknownParams, match=r"\['max_iters', 'trees'\] are not parameters of "
                                            r"HistGradientBoostingClassifier"):
        train_model(data, TrainConfig(name="sea", params={"max_iters": 5, "trees": 3}, min_rows=50), NAMES)
    with pytest.raises(UnknownParams, match="set training.seed instead"):
        train_model(data, TrainConfig(name="sea", params={"random_state": 1}, min_rows=50), NAMES)
    with pytest.raises(BadParams, match="learning_rate"):
        train_model(data, TrainConfig(name="sea", params={"learning_rate": -1.0}, min_rows=50), NAMES)


def test_holdout_is_the_latest_rows_by_label_time() -> None:
    times = np.array([50, 10, 40, 20, 30, 60, 0, 70, 80, 90])
    train, hold = time_ordered_split(times, 0.3)
    assert sorted(times[hold]) == [70, 80, 90]
    assert times[train].max() < times[hold].min()


def test_holdout_rows_carried_are_capped_to_the_latest() -> None:
    data = sea(2000)
    m = train_model(data, TrainConfig(params={"max_iter": 5}, min_rows=50, holdout_max_rows=100), NAMES)
    assert m.holdout_rows == 400 and len(m.holdout_y) == 100
    np.testing.assert_array_equal(m.holdout_X, data.X[-100:])


def test_too_few_rows_single_class_and_wrong_columns_fail_clearly() -> None:
    with pytest.raises(InsufficientData, match="not enough labelled rows"):
        train_model(sea(30), SMALL, NAMES)
    one_class = sea(500)
    one_class.y[:] = 1.0
    with pytest.raises(SingleClass, match="only one class"):
        train_model(one_class, SMALL, NAMES)
    with pytest.raises(FeatureMismatch, match="differ from the model's features"):
        train_model(sea(500), SMALL, ("a", "b"))


def test_a_burst_of_requests_for_one_model_is_one_job_under_the_latest_request() -> None:
    asks = [RetrainAsk("sea", f"r{i}", reason=f"drift {i}", requested_at_ms=100 + i) for i in range(5)]
    asks.append(RetrainAsk("other", "o1", requested_at_ms=1))
    asks.append(RetrainAsk("sea", "s7", requested_at_ms=2, seed=7))
    asks.append(RetrainAsk("sea", "b1", requested_at_ms=3, artifact_sha256="ab" * 32))
    asks.append(RetrainAsk("sea", "b2", requested_at_ms=4, artifact_sha256="ab" * 32))
    jobs = coalesce(asks, default_model="sea")
    assert [(j.model_name, j.seed, j.byo) for j in jobs] == [("sea", None, False), ("other", None, False),
                                                              ("sea", 7, False), ("sea", None, True)]
    assert jobs[0].primary.request_id == "r4" and jobs[0].request_ids == ("r0", "r1", "r2", "r3", "r4")
    assert jobs[3].request_ids == ("b1", "b2")  # the same bytes registered twice: one check
    assert coalesce([RetrainAsk("", "x")], "fallback")[0].model_name == "fallback"
