"""What the registry's tests share: real ONNX models, trained once per session, that the gate can score, and
ModelCandidate messages carrying a holdout for them."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable

import numpy as np
import pytest
from mlops.contracts import models_pb2

NAMES = ("x0_last", "x1_last", "x2_last", "x0_mean_60s", "x1_mean_60s", "events_30s")


@pytest.fixture(scope="session")
def onnx_model_factory() -> Callable[..., bytes]:
    """`make(threshold, seed=0)`: ONNX bytes of a logistic regression of `x0 + x1 > threshold` on NAMES."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    made: dict[tuple[float, int], bytes] = {}

    def make(threshold: float, seed: int = 0) -> bytes:
        if (threshold, seed) not in made:
            rng = np.random.default_rng(seed)
            X = rng.uniform(0, 10, (1500, len(NAMES))).astype(np.float32)  # noqa: N806
            m = LogisticRegression(max_iter=500).fit(X, (X[:, 0] + X[:, 1] > threshold).astype(np.int64))
            made[(threshold, seed)] = to_onnx(
                m, initial_types=[("input", FloatTensorType([None, len(NAMES)]))],
                options={id(m): {"zipmap": False}}, target_opset=17).SerializeToString()
        return made[(threshold, seed)]

    return make


@pytest.fixture(scope="session")
def candidate_factory() -> Callable[..., models_pb2.ModelCandidate]:
    """`make(onnx_bytes, threshold, name="sea")`: a ModelCandidate for the artifact, with a 300-row holdout
    labelled by `x0 + x1 > threshold`."""

    def make(data: bytes, threshold: float, name: str = "sea") -> models_pb2.ModelCandidate:
        rng = np.random.default_rng(3)
        X = rng.uniform(0, 10, (300, len(NAMES))).astype(np.float32)  # noqa: N806
        y = (X[:, 0] + X[:, 1] > threshold).astype(np.float64)
        return models_pb2.ModelCandidate(
            model_name=name, candidate_id=uuid.uuid4().hex, artifact_sha256=hashlib.sha256(data).hexdigest(),
            artifact_size=len(data), framework="sklearn.LogisticRegression", metrics={"auc": 0.9},
            feature_names=list(NAMES), lineage=models_pb2.Lineage(seed=1, row_count=1500, retrain_reason="test"),
            holdout=models_pb2.Holdout(feature_names=list(NAMES), rows=len(y),
                                       features_f32=X.astype("<f4").tobytes(), labels=list(y)))

    return make
