"""Helpers shared by the inference tests (a module with a unique name: every test folder has its own conftest)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from mlops.schema import FEATURE_SET

K = len(FEATURE_SET.names)


def make_onnx(seed: int = 0, flip: bool = False) -> bytes:
    """A logistic regression on K features exported like the trainer (input "input", no ZipMap)."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, size=(200, K)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 10).astype(np.int64)
    model = LogisticRegression(max_iter=200).fit(x, 1 - y if flip else y)
    onx = to_onnx(model, initial_types=[("input", FloatTensorType([None, K]))],
                  options={id(model): {"zipmap": False}}, target_opset=17)
    return onx.SerializeToString()


def wait_until(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")
