"""Outputs by task: which ONNX output a declared model serves, checked once per (loaded version, declaration), and
each row's score and predicted label for the prediction record (`mlops.evaluation` conventions):
binary → `probabilities` [N, 2], score P(class 1); multiclass → `probabilities` [N, K] in the declared classes'
order, score the top probability, label that class; regression → `predictions` [N, 1], score = label = the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from mlops.definitions import Task
from mlops.evaluation import point_predictions

from services.inference.core.catalog import ModelSpec
from services.inference.errors import ModelMismatch

if TYPE_CHECKING:
    from services.inference.core.models import ModelVersion

__all__ = ["Binding", "bind", "score_arrays", "scores_and_labels", "served_output"]


@dataclass(frozen=True, slots=True)
class Binding:
    """A loaded version checked against its declaration: where the served output is among `ModelVersion.run`'s."""

    spec: ModelSpec
    output_index: int


def bind(model: ModelVersion, spec: ModelSpec) -> Binding:
    """Raises ModelMismatch when the version cannot serve `spec` (input width, missing or misshapen output)."""
    where = f"{model.name}:{model.version}"
    k = model.input.shape[1]
    if k > 0 and k != spec.k:
        raise ModelMismatch(where, f"its input has {k} columns; the declaration has {spec.k} features")
    names = [o.name for o in model.outputs]
    wanted = spec.output.onnx_name
    if wanted not in names:
        raise ModelMismatch(where, f"a {spec.task.value} model needs ONNX output {wanted!r}; it has {names}")
    shape = model.outputs[names.index(wanted)].shape
    width = shape[1] if len(shape) == 2 else (1 if len(shape) == 1 else -2)
    if width == -2 or (width > 0 and width != spec.output.width):
        raise ModelMismatch(where, f"output {wanted!r} has shape {list(shape)}; the declaration needs "
                                   f"[N, {spec.output.width}]")
    return Binding(spec, names.index(wanted))


def served_output(binding: Binding, outs: list[np.ndarray]) -> np.ndarray:
    """The served tensor of one run: probabilities [n, K] or predictions [n, 1], float32."""
    out = outs[binding.output_index]
    if binding.spec.task is Task.REGRESSION and out.ndim == 1:
        out = out.reshape(-1, 1)
    return out if out.dtype == np.float32 else out.astype(np.float32)


def score_arrays(task: Task, output: np.ndarray, classes: tuple[int, ...] | None) -> tuple[np.ndarray, np.ndarray]:
    """Per row, as arrays: the headline score and the predicted label, by task."""
    if task is Task.REGRESSION:
        values = np.asarray(output).reshape(-1)
        return values, values
    if task is Task.BINARY:  # point_predictions' rule without its float64 copy (this runs per served request)
        scores = output[:, 1]
        return scores, (scores >= 0.5).astype(output.dtype)
    return output.max(axis=1), np.asarray(point_predictions(task, output, classes))


def scores_and_labels(task: Task, output: np.ndarray, classes: tuple[int, ...] | None) -> tuple[
        list[float], list[float]]:
    """Per row: the headline score and the predicted label, by task."""
    scores, labels = score_arrays(task, np.asarray(output, dtype=np.float64), classes)
    return scores.tolist(), labels.tolist()
