"""The explainability report the trainer computes on the holdout with the ONNX model: permutation importance ranks
a planted informative feature first, partial dependence follows the concept, calibration for classifiers, and the
training means travel in the ONNX metadata and with the candidate."""

from __future__ import annotations

import json

import numpy as np
import onnx
from mlops.definitions import Task
from mlops.evaluation import FEATURE_MEANS_KEY
from mlops.explainability import explainability_to_proto
from test_trainer_core import SMALL, Data, regression, sea

from services.trainer.core import TrainConfig, train_model


def planted(n: int = 1500, seed: int = 1) -> Data:
    """Six noise columns and, in the fifth place, the one that decides the label."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, (n, 6)).astype(np.float32)  # noqa: N806
    y = (X[:, 4] > 0.2).astype(np.float64)
    names = tuple(f"v.f{i}" for i in range(6))
    return Data(X, y, np.arange(n, dtype=np.int64) * 10, feature_names=names)


def test_importance_ranks_the_planted_informative_feature_first() -> None:
    data = planted()
    model = train_model(data, SMALL, data.feature_names)
    report = model.explainability
    assert report is not None and report.metric == "auc" and report.rows == 300
    first, second = report.importances[:2]
    assert first.feature == "v.f4" and first.mean > 0.3, report.importances
    assert second.mean < 0.05 * first.mean  # the noise columns barely matter
    assert report.dependence[0].feature == "v.f4"
    curve = report.dependence[0]
    assert curve.average[0] < 0.2 < 0.8 < curve.average[-1]  # P(class 1) climbs across the threshold
    c = report.calibration
    assert c is not None and sum(c.counts) == 300 and len(c.prob_pred) == len(c.prob_true) == len(c.counts)


def test_a_regression_report_measures_mae_and_has_no_calibration() -> None:
    data = regression(600)
    model = train_model(data, TrainConfig(task=Task.REGRESSION, params={"max_iter": 30}, min_rows=50, metric="mae"),
                        data.feature_names)
    report = model.explainability
    assert report is not None and report.metric == "mae" and report.calibration is None
    assert [i.feature for i in report.importances[:2]] == ["v.a", "v.b"]


def test_the_training_means_are_in_the_onnx_metadata_and_in_the_candidate() -> None:
    data = sea(800)
    model = train_model(data, SMALL, data.feature_names)
    meta = {p.key: p.value for p in onnx.load_from_string(model.onnx_bytes).metadata_props}
    means = json.loads(meta[FEATURE_MEANS_KEY])
    train_rows = data.X[np.argsort(data.label_times_ms)][: model.train_rows]
    assert np.allclose(means, train_rows.mean(axis=0), atol=1e-4)
    assert model.explainability.feature_means == dict(zip(data.feature_names, means, strict=True))
    message = explainability_to_proto(model.explainability)
    assert message.importances[0].feature == model.explainability.importances[0].feature
    assert message.ByteSize() < 4000  # small enough to travel with every candidate


def test_a_report_that_cannot_be_computed_leaves_the_candidate_without_one(caplog) -> None:
    from services.trainer.core.report import explain_or_none

    x = np.zeros((10, 2), np.float32)
    assert explain_or_none(b"not onnx", x, np.zeros(10), Task.REGRESSION, "mae", ("v.a", "v.b"), [0.0, 0.0]) is None
    assert "explainability report failed" in caplog.text
