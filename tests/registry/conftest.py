"""What the registry's tests share: real ONNX models of each task, trained once per session, that the gate can
score, and ModelCandidate messages carrying a holdout for them."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from mlops.contracts import models_pb2
from registry_helpers import DELIVERY, NAMES, VIEW, delivery_minutes, onnx_of, segment_of


@pytest.fixture(scope="session")
def onnx_model_factory() -> Callable[..., bytes]:
    """`make(threshold, seed=0, task="binary")`: ONNX bytes of a scikit-learn model of a concept:
    binary (NAMES) `x0 + x1 > threshold`; multiclass (NAMES) `segment_of(X, threshold)`; regression (DELIVERY)
    `delivery_minutes(X, weight=threshold)`."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    made: dict[tuple[float, int, str], bytes] = {}

    def make(threshold: float, seed: int = 0, task: str = "binary") -> bytes:
        key = (threshold, seed, task)
        if key not in made:
            rng = np.random.default_rng(seed)
            width = len(DELIVERY) if task == "regression" else len(NAMES)
            X = rng.uniform(0, 10, (1500, width)).astype(np.float32)  # noqa: N806
            if task == "regression":
                model: Any = LinearRegression().fit(X, delivery_minutes(X, threshold))
            elif task == "multiclass":
                model = LogisticRegression(max_iter=1000).fit(X, segment_of(X, threshold))
            else:
                model = LogisticRegression(max_iter=500).fit(X, (X[:, 0] + X[:, 1] > threshold).astype(np.int64))
            made[key] = onnx_of(model, width)
        return made[key]

    return make


@pytest.fixture(scope="session")
def candidate_factory() -> Callable[..., models_pb2.ModelCandidate]:
    """`make(onnx_bytes, threshold, name="sea")`: a ModelCandidate for the artifact, with a 300-row holdout
    labelled by the binary concept `x0 + x1 > threshold` on the SEA model's declared features."""

    def make(data: bytes, threshold: float, name: str = "sea") -> models_pb2.ModelCandidate:
        rng = np.random.default_rng(3)
        X = rng.uniform(0, 10, (300, len(NAMES))).astype(np.float32)  # noqa: N806
        y = (X[:, 0] + X[:, 1] > threshold).astype(np.float64)
        return models_pb2.ModelCandidate(
            model_name=name, candidate_id=uuid.uuid4().hex, artifact_sha256=hashlib.sha256(data).hexdigest(),
            artifact_size=len(data), framework="sklearn.LogisticRegression", metrics={"auc": 0.9},
            feature_names=list(NAMES),
            lineage=models_pb2.Lineage(seed=1, row_count=1500, retrain_reason="test", feature_set=VIEW,
                                       feature_set_version=1),
            holdout=models_pb2.Holdout(feature_names=list(NAMES), rows=len(y),
                                       features_f32=X.astype("<f4").tobytes(), labels=list(y)))

    return make
