"""Batch scoring (`mlops score`) on the serving code: rows name their entity (→ the online join of
`features.assemble`) or carry the model's features by their declared names; either way the matrix goes through the
same onnxruntime session code (`ModelVersion.run`) and the same task outputs as a request would."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from mlops.definitions import Task
from mlops.online_store import OnlineStore

from services.inference.core.catalog import ModelSpec
from services.inference.core.features import assemble
from services.inference.core.models import ModelVersion
from services.inference.core.outputs import scores_and_labels, served_output
from services.inference.errors import InvalidInput, NoOnlineStore

__all__ = ["BY_ENTITY", "BY_FEATURES", "Scored", "input_mode", "output_columns", "parse_features", "score"]

BY_ENTITY, BY_FEATURES = "entity", "features"


@dataclass(frozen=True)
class Scored:
    x: np.ndarray  # the model inputs used, float32 [n, k]
    output: np.ndarray  # the served output, [n, K] or [n, 1]
    scores: list[float]
    labels: list[float]


def input_mode(spec: ModelSpec, columns: Sequence[str]) -> str:
    """BY_ENTITY when the rows carry the entity's id field, else BY_FEATURES when they carry every declared
    feature; InvalidInput naming what is missing otherwise."""
    if spec.id_field in columns:
        return BY_ENTITY
    missing = [f for f in spec.feature_names if f not in columns]
    if missing:
        raise InvalidInput(f"rows need the entity's id field {spec.id_field!r} (online features) or every feature "
                           f"of model {spec.name} by its declared name; missing {missing[:5]}"
                           + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    return BY_FEATURES


def _number(value: object, row: int, column: str) -> float:
    if value is None or value == "":
        return math.nan  # an empty cell: no value (the model's own missing-value handling)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInput(f"row {row}, column {column!r}: {str(value)[:40]!r} is not a number") from None


def parse_features(spec: ModelSpec, columns: Mapping[str, Sequence[object]], first_row: int = 0) -> np.ndarray:
    """The model input from columns named by the declared features (rows numbered from `first_row` in errors)."""
    n = len(next(iter(columns.values()))) if columns else 0
    x = np.empty((n, spec.k), dtype=np.float32)
    for j, name in enumerate(spec.feature_names):
        x[:, j] = [_number(v, first_row + i, name) for i, v in enumerate(columns[name])]
    return x


async def score(spec: ModelSpec, model: ModelVersion, *, entity_ids: Sequence[str] | None = None,
                x: np.ndarray | None = None, store: OnlineStore | None = None) -> Scored:
    """Score rows given by entity id (through `store`) or as a feature matrix `x`."""
    binding = model.bound(spec)
    if x is None:
        if store is None:
            raise NoOnlineStore()
        x = (await assemble(store, spec, list(entity_ids or ()))).x
    output = served_output(binding, model.run(x))
    scores, labels = scores_and_labels(spec.task, output, spec.classes)
    return Scored(x, output, scores, labels)


def output_columns(spec: ModelSpec) -> list[str]:
    """The columns batch scoring adds to each row: the served output, then the score and the predicted label."""
    if spec.task is Task.REGRESSION:
        served = ["prediction"]
    else:
        served = [f"probability_{c}" for c in (spec.classes if spec.task is Task.MULTICLASS else (0, 1))]
    return [*served, "score", "predicted_label"]
