"""Unit tests of the trainer's core and coalescing: no broker."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import pytest
from mlops.schema import FEATURE_SET

from services.trainer.core import (
    RetrainAsk,
    TrainConfig,
    coalesce,
    onnx_probabilities,
    time_ordered_split,
    train_model,
)
from services.trainer.errors import FeatureMismatch, InsufficientData, SingleClass

NAMES = FEATURE_SET.names


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


SMALL = TrainConfig(max_iter=20, min_rows=50)


def test_same_data_and_seed_give_byte_identical_onnx() -> None:
    data = sea(2000)
    a, b = train_model(data, SMALL, NAMES), train_model(data, SMALL, NAMES)
    assert a.onnx_bytes == b.onnx_bytes and a.sha256 == b.sha256
    c = train_model(data, TrainConfig(max_iter=20, min_rows=50, seed=7), NAMES)
    assert c.params["random_state"] == "7"


def test_exported_model_is_onnx_with_label_and_probabilities_and_matches_sklearn() -> None:
    data = sea(3000)
    m = train_model(data, SMALL, NAMES)
    graph = onnx.load_from_string(m.onnx_bytes).graph
    assert [i.name for i in graph.input] == ["input"]
    assert [o.name for o in graph.output] == ["label", "probabilities"]
    assert m.parity_max_diff <= SMALL.parity_tolerance
    p = onnx_probabilities(m.onnx_bytes, m.holdout_X)
    assert p.shape == (len(m.holdout_y),)
    assert m.metrics["accuracy"] > 0.9 and m.metrics["auc"] > 0.95
    assert set(m.metrics) >= {"accuracy", "auc", "logloss", "train_rows", "holdout_rows"}
    assert b"pickle" not in m.onnx_bytes.lower()


def test_holdout_is_the_latest_rows_by_label_time() -> None:
    times = np.array([50, 10, 40, 20, 30, 60, 0, 70, 80, 90])
    train, hold = time_ordered_split(times, 0.3)
    assert sorted(times[hold]) == [70, 80, 90]
    assert times[train].max() < times[hold].min()


def test_holdout_rows_carried_are_capped_to_the_latest() -> None:
    data = sea(2000)
    m = train_model(data, TrainConfig(max_iter=5, min_rows=50, holdout_max_rows=100), NAMES)
    assert m.holdout_rows == 400 and len(m.holdout_y) == 100
    np.testing.assert_array_equal(m.holdout_X, data.X[-100:])


def test_too_few_rows_single_class_and_wrong_columns_fail_clearly() -> None:
    with pytest.raises(InsufficientData, match="not enough labelled rows"):
        train_model(sea(30), SMALL, NAMES)
    one_class = sea(500)
    one_class.y[:] = 1.0
    with pytest.raises(SingleClass, match="only one class"):
        train_model(one_class, SMALL, NAMES)
    with pytest.raises(FeatureMismatch, match="differ from the feature set"):
        train_model(sea(500), SMALL, ("a", "b"))


def test_a_burst_of_requests_for_one_model_is_one_job_under_the_latest_request() -> None:
    asks = [RetrainAsk("sea", f"r{i}", reason=f"drift {i}", requested_at_ms=100 + i) for i in range(5)]
    asks.append(RetrainAsk("other", "o1", requested_at_ms=1))
    asks.append(RetrainAsk("sea", "s7", requested_at_ms=2, seed=7))
    jobs = coalesce(asks, default_model="sea", default_seed=42)
    assert [(j.model_name, j.seed) for j in jobs] == [("sea", 42), ("other", 42), ("sea", 7)]
    assert jobs[0].primary.request_id == "r4" and jobs[0].request_ids == ("r0", "r1", "r2", "r3", "r4")
    assert coalesce([RetrainAsk("", "x")], "fallback", 1)[0].model_name == "fallback"
