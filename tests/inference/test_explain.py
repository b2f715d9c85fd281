"""Per-prediction explanations (`explain` request parameter): occlusion contributions against the training means
carried in the ONNX metadata, checked against independent computations — exact for a linear model (w·(x − mean),
summing to the margin's distance from the baseline), and a scikit-learn tree ensemble re-run by hand — and the
data plane's hook (off by default, shapes, ordering, clear refusals)."""

from __future__ import annotations

import json
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx
import pytest
from inference_helpers import DELIVERY, SEA, SEA_FEATURES, K, revision
from mlops.evaluation import FEATURE_MEANS_KEY

from services.inference.core import (
    Batcher,
    BatchPolicy,
    DataPlane,
    InferRequest,
    ModelRepository,
    ModelVersion,
    Tensor,
    build_catalog,
)
from services.inference.core.explain import contributions, margin
from services.inference.errors import InvalidInput
from services.inference.settings import InferenceSettings

SEA_CATALOG = build_catalog(revision(SEA))
DELIVERY_FEATURES = DELIVERY.model("delivery_time").features


def with_means(data: bytes, means: np.ndarray) -> bytes:
    model = onnx.load_from_string(data)
    entry = model.metadata_props.add()
    entry.key, entry.value = FEATURE_MEANS_KEY, json.dumps([float(m) for m in means])
    return model.SerializeToString()


def export(model: object, k: int) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    options = {id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Expected an int, got a boolean.*", category=DeprecationWarning)
        return to_onnx(model, initial_types=[("input", FloatTensorType([None, k]))], options=options,
                       target_opset=17).SerializeToString()


@pytest.fixture(scope="module")
def logistic():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, (400, K)).astype(np.float32)
    # noisy labels keep the weights moderate: float32 probabilities near 0 or 1 would blur the log-odds
    logit = 0.6 * (x[:, 0] + 0.5 * x[:, 1] - 0.3 * x[:, 2] - 6)
    y = (rng.random(400) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    model = LogisticRegression(max_iter=1000).fit(x, y)
    means = x.mean(axis=0)
    return model, means, ModelVersion.load("sea", "1", with_means(export(model, K), means), SEA_FEATURES)


def test_linear_contributions_are_w_times_x_minus_mean_and_sum_to_the_margin(logistic) -> None:
    model, means, version = logistic
    binding = version.bound(SEA_CATALOG.models["sea"])
    x = np.random.default_rng(1).uniform(0, 10, (20, K)).astype(np.float32)
    got = contributions(binding, version, x, means)
    expected = model.coef_[0] * (x.astype(np.float64) - means)  # independent: the model's own weights
    assert np.abs(expected).max() > 1.0  # contributions large enough to mean something
    assert np.allclose(got, expected, atol=1e-3)
    margin_x = model.decision_function(x)
    margin_mean = model.decision_function(means.reshape(1, -1))[0]
    assert np.allclose(got.sum(axis=1), margin_x - margin_mean, atol=1e-3 * K)


def test_tree_ensemble_contributions_match_an_occlusion_computed_with_scikit_learn() -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    k = len(DELIVERY_FEATURES)
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 10, (500, k)).astype(np.float32)
    model = HistGradientBoostingRegressor(max_iter=30, random_state=0).fit(x, 20 + 3 * x[:, 0] - 2 * x[:, 1])
    means = x.mean(axis=0)
    version = ModelVersion.load("delivery_time", "1", with_means(export(model, k), means), DELIVERY_FEATURES)
    binding = version.bound(build_catalog(revision(DELIVERY)).models["delivery_time"])
    rows = x[:15]
    got = contributions(binding, version, rows, means)
    expected = np.empty_like(got)
    for j in range(k):  # the same definition, computed row by row with the scikit-learn model
        occluded = rows.copy()
        occluded[:, j] = means[j]
        expected[:, j] = model.predict(rows) - model.predict(occluded)
    assert np.allclose(got, expected, atol=1e-3)
    assert np.abs(got[:, 2:]).max() < 0.1  # inputs the concept does not use contribute (almost) nothing
    assert np.abs(got[:, 0]).mean() > np.abs(got[:, 1]).mean() > 1.0


def test_margin_is_log_odds_for_binary_and_log_probability_for_multiclass() -> None:
    from mlops.definitions import Task

    p = np.array([[0.2, 0.8], [0.5, 0.5]])
    assert np.allclose(margin(Task.BINARY, p), [np.log(4.0), 0.0])
    q = np.array([[0.1, 0.7, 0.2]])
    assert np.allclose(margin(Task.MULTICLASS, q, np.array([1])), [np.log(0.7)])


async def test_the_dataplane_returns_top_contributions_only_when_asked(logistic) -> None:
    _model, _means, version = logistic
    repo = ModelRepository()
    repo.promote(version)
    x = np.random.default_rng(4).uniform(0, 10, (3, K)).astype(np.float32)
    with ThreadPoolExecutor(1) as ex:
        batcher = Batcher(ex, BatchPolicy())
        dp = DataPlane(InferenceSettings(), repo, batcher, catalog=SEA_CATALOG)
        plain = await dp.infer(InferRequest("sea", inputs=[Tensor("input", "FP32", (3, K), x)]))
        assert [t.name for t in plain.outputs] == ["probabilities"]  # off by default
        r = await dp.infer(InferRequest("sea", inputs=[Tensor("input", "FP32", (3, K), x)],
                                        parameters={"explain": 2}))
        assert [t.name for t in r.outputs] == ["probabilities", "explain_features", "explain_contributions"]
        names, values = r.outputs[1], r.outputs[2]
        assert names.shape == values.shape == (3, 2) and len(names.data) == 6
        full = contributions(version.bound(SEA_CATALOG.models["sea"]), version, x, _means)
        for i in range(3):
            top = np.argsort(-np.abs(full[i]))[:2]
            assert [n.decode() for n in names.data[2 * i:2 * i + 2]] == [SEA_FEATURES[j] for j in top]
            assert np.allclose(values.data[i], full[i, top], atol=1e-5)
        with pytest.raises(InvalidInput, match="parameter 'explain' must be true or a positive number"):
            await dp.infer(InferRequest("sea", inputs=[Tensor("input", "FP32", (3, K), x)],
                                        parameters={"explain": -1}))
        await batcher.close()


async def test_a_version_without_training_means_cannot_be_explained(logistic) -> None:
    model, _means, _version = logistic
    repo = ModelRepository()
    repo.promote(ModelVersion.load("sea", "2", export(model, K), SEA_FEATURES))
    x = np.ones((1, K), np.float32)
    with ThreadPoolExecutor(1) as ex:
        batcher = Batcher(ex, BatchPolicy())
        dp = DataPlane(InferenceSettings(), repo, batcher, catalog=SEA_CATALOG)
        with pytest.raises(InvalidInput, match="sea version 2 carries no training means"):
            await dp.infer(InferRequest("sea", inputs=[Tensor("input", "FP32", (1, K), x)],
                                        parameters={"explain": True}))
        await batcher.close()
