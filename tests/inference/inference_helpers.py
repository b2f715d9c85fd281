"""Helpers shared by the inference tests (a module with a unique name: every test folder has its own conftest)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from mlops.bus import Bus
from mlops.definitions import Definitions, Revision, latest, load, plan
from mlops.definitions.store import publish, read_revisions
from testkit import wait_until  # noqa: F401  (re-exported: the inference tests import it from here)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SEA_FILE = EXAMPLES / "sea" / "definitions.yaml"
DELIVERY_FILE = EXAMPLES / "delivery" / "definitions.yaml"
SEA = load(SEA_FILE)
DELIVERY = load(DELIVERY_FILE)
SEA_FEATURES = SEA.model("sea").features  # declared refs, model-input order
K = len(SEA_FEATURES)
SEA_COLUMNS = SEA.feature_names(SEA.feature_view("entity_activity"))  # the view's columns


def revision(definitions: Definitions, current: Revision | None = None, by: str = "test") -> Revision:
    """The next revision applying `definitions` over `current`."""
    planned = plan(current, definitions, by).revision
    assert planned is not None
    return planned


def publish_definitions(bus: Bus, definitions: Definitions = SEA, current: Revision | None = None) -> Revision:
    """Apply `definitions` on `bus` as `mlops apply` does and return the revision in force afterwards (the session
    fixture may have applied the SEA example already: then nothing new is published)."""
    current = current or latest(read_revisions(bus, client_id="test-apply", timeout=10))
    planned = plan(current, definitions, "test").revision
    if planned is None:
        assert current is not None
        return current
    publish(bus, planned, client_id="test-apply")
    return planned


def make_onnx(seed: int = 0, flip: bool = False, k: int = K) -> bytes:
    """A logistic regression on k features exported like the trainer (input "input", no ZipMap)."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, size=(200, k)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 10).astype(np.int64)
    model = LogisticRegression(max_iter=200).fit(x, 1 - y if flip else y)
    onx = to_onnx(model, initial_types=[("input", FloatTensorType([None, k]))],
                  options={id(model): {"zipmap": False}}, target_opset=17)
    return onx.SerializeToString()


def make_regression_onnx(k: int, seed: int = 0) -> bytes:
    """A HistGradientBoostingRegressor on k features (handles NaN), exported like the trainer: output "variable"."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, size=(300, k)).astype(np.float32)
    y = 20 + 3 * x[:, 0] - 2 * x[:, 1]
    model = HistGradientBoostingRegressor(max_iter=20).fit(x, y)
    with warnings.catch_warnings():  # skl2onnx 1.20's tree attributes under protobuf 6.33 (see the trainer)
        warnings.filterwarnings("ignore", message=".*Expected an int, got a boolean.*", category=DeprecationWarning)
        onx = to_onnx(model, initial_types=[("input", FloatTensorType([None, k]))], target_opset=17)
    return onx.SerializeToString()
