"""Task metrics against values computed by hand (not by the function under test)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mlops.definitions import Task
from mlops.evaluation import better, point_predictions, scores


def test_binary_metrics_match_hand_computed_values() -> None:
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.6, 0.4, 0.9])  # one positive ranked below one negative: AUC 3/4
    out = scores(Task.BINARY, y, np.column_stack([1 - p1, p1]))
    expected_logloss = -(math.log(0.9) + math.log(0.4) + math.log(0.4) + math.log(0.9)) / 4
    assert out["auc"] == pytest.approx(0.75)
    assert out["accuracy"] == pytest.approx(0.5)
    assert out["logloss"] == pytest.approx(expected_logloss)


def test_auc_is_undefined_with_one_class() -> None:
    assert math.isnan(scores(Task.BINARY, np.array([1, 1]), np.array([[0.2, 0.8], [0.4, 0.6]]))["auc"])


def test_multiclass_uses_the_declared_class_order() -> None:
    classes = (10, 20, 30)
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    assert list(point_predictions(Task.MULTICLASS, proba, classes)) == [10, 20, 30, 10]
    out = scores(Task.MULTICLASS, np.array([10, 20, 30, 30]), proba, classes)
    assert out["accuracy"] == pytest.approx(0.75)
    # per-class F1: 10 -> 2/3 (one right, one false positive), 20 -> 1, 30 -> 2/3 (one right, one missed)
    assert out["macro_f1"] == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)


def test_regression_errors() -> None:
    out = scores(Task.REGRESSION, np.array([1.0, 2.0, 4.0]), np.array([[1.0], [3.0], [2.0]]))
    assert out["mae"] == pytest.approx(1.0)
    assert out["rmse"] == pytest.approx(math.sqrt(5 / 3))


def test_better_points_the_right_way() -> None:
    assert better(Task.BINARY, "auc", 0.8, 0.7) == pytest.approx(0.1)
    assert better(Task.REGRESSION, "mae", 2.0, 3.0) == pytest.approx(1.0)


def test_multiclass_logloss_reads_each_declared_class_column() -> None:
    classes = (5, 7, 2)  # declared out of sorted order on purpose
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5]])
    out = scores(Task.MULTICLASS, np.array([5, 7, 2]), proba, classes)
    assert out["logloss"] == pytest.approx(-(math.log(0.7) + math.log(0.8) + math.log(0.5)) / 3)
