"""Per-prediction explanations, on request (the v2 request parameter `explain`; off by default): the top feature
contributions of each row, computed with the served artifact itself.

Method — occlusion against a baseline: a row's contribution of feature j is m(x) − m(x with x_j replaced by the
training mean of j), where m is the model's margin (binary: the log-odds of class 1; multiclass: the log
probability of the row's predicted class; regression: the prediction). The means travel in the artifact's ONNX
metadata (`mlops.feature_means`, written by the trainer). For a model additive in its inputs (a linear model) this
is exact — the contributions are w_j·(x_j − mean_j) and sum to m(x) − m(mean); for a tree ensemble it is the
honest generic answer (exact TreeSHAP needs the trees, which ONNX does not expose this way): each value says how
much the margin moves when that one feature is set to its average, interactions are not split between features.

Cost: one extra batch of N·k rows through the model for N rows of k features (k + 1 times the model work of the
request), run directly on the session, outside the adaptive batcher. A model without training means in its
metadata (a bring-your-own artifact) cannot be explained: the request is refused, naming why.
"""

from __future__ import annotations

import json
import weakref
from typing import TYPE_CHECKING

import numpy as np
from mlops.definitions import Task
from mlops.evaluation import FEATURE_MEANS_KEY

from services.inference.core.domain import Tensor
from services.inference.core.outputs import Binding, served_output
from services.inference.errors import InvalidInput

if TYPE_CHECKING:
    from services.inference.core.models import ModelVersion

__all__ = ["CONTRIBUTIONS_OUTPUT", "EXPLAIN_OUTPUTS", "EXPLAIN_PARAM", "FEATURE_MEANS_KEY", "FEATURES_OUTPUT",
           "contributions", "explain_outputs", "margin", "requested_top"]

EXPLAIN_PARAM = "explain"  # true (the top 5), or how many contributions per row
FEATURES_OUTPUT = "explain_features"  # BYTES [N, top]: feature names, largest |contribution| first
CONTRIBUTIONS_OUTPUT = "explain_contributions"  # FP32 [N, top]: their contributions to the margin
EXPLAIN_OUTPUTS = (FEATURES_OUTPUT, CONTRIBUTIONS_OUTPUT)
_DEFAULT_TOP = 5
_EPS = 1e-7
# per loaded session: the means read once from its metadata (None: it has none)
_means: weakref.WeakKeyDictionary[object, np.ndarray | None] = weakref.WeakKeyDictionary()


def requested_top(parameters: dict[str, object]) -> int:
    """How many contributions per row the request asks for (0: none). Refuses values that are not a bool or a
    positive integer, naming the parameter."""
    value = parameters.get(EXPLAIN_PARAM)
    if value is None or value is False or value == "false":
        return 0
    if value is True or value == "true":
        return _DEFAULT_TOP
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and value.isdigit() and int(value) > 0:
        return int(value)
    raise InvalidInput(f"parameter {EXPLAIN_PARAM!r} must be true or a positive number of contributions per row, "
                       f"got {value!r}")


def margin(task: Task, output: np.ndarray, target: np.ndarray | None = None) -> np.ndarray:
    """The margin per row: log-odds of class 1, log probability of class `target[i]`, or the value."""
    out = np.asarray(output, dtype=np.float64)
    if task is Task.REGRESSION:
        return out.reshape(-1)
    p = np.clip(out, _EPS, 1 - _EPS)
    if task is Task.BINARY:
        return np.log(p[:, 1]) - np.log(p[:, 0])
    assert target is not None
    return np.log(p[np.arange(len(p)), target])


def contributions(binding: Binding, model: ModelVersion, x: np.ndarray, means: np.ndarray) -> np.ndarray:
    """[N, k]: m(x_i) − m(x_i with feature j set to its mean), in one run of N·(k + 1) rows."""
    n, k = x.shape
    occluded = np.repeat(x[:, None, :], k + 1, axis=1)  # [n, k+1, k]; slot 0 is the row itself
    idx = np.arange(k)
    occluded[:, idx + 1, idx] = means[idx]
    out = served_output(binding, model.run(np.ascontiguousarray(occluded.reshape(n * (k + 1), k),
                                                                 dtype=np.float32)))
    task = binding.spec.task
    target = None
    if task is Task.MULTICLASS:  # the class each row is predicted, explained in all its occlusions
        target = np.repeat(np.argmax(out.reshape(n, k + 1, -1)[:, 0, :], axis=1), k + 1)
    m = margin(task, out, target).reshape(n, k + 1)
    return m[:, :1] - m[:, 1:]


def _baseline(model: ModelVersion) -> np.ndarray:
    if model.session not in _means:
        raw = model.session.get_modelmeta().custom_metadata_map.get(FEATURE_MEANS_KEY)
        _means[model.session] = np.asarray(json.loads(raw), dtype=np.float32) if raw else None
    means = _means[model.session]
    if means is None or len(means) != model.n_features:
        raise InvalidInput(f"parameter {EXPLAIN_PARAM!r}: {model.name} version {model.version} carries no training "
                           f"means in its ONNX metadata ({FEATURE_MEANS_KEY}); it cannot be explained")
    return means


def explain_outputs(parameters: dict[str, object], model: ModelVersion, binding: Binding,
                    x: np.ndarray) -> list[Tensor]:
    """The explanation tensors the request asks for (none when `explain` is absent or false)."""
    top = requested_top(parameters)
    if not top:
        return []
    contrib = contributions(binding, model, np.asarray(x, dtype=np.float32), _baseline(model))
    top = min(top, contrib.shape[1])
    order = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :top]
    names = np.asarray(binding.spec.feature_names, dtype=object)[order]
    values = np.take_along_axis(contrib, order, axis=1).astype(np.float32)
    n = len(x)
    return [Tensor(FEATURES_OUTPUT, "BYTES", (n, top), [str(s).encode() for s in names.reshape(-1)]),
            Tensor(CONTRIBUTIONS_OUTPUT, "FP32", (n, top), values)]
