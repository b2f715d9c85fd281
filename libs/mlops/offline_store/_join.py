"""What a model trains on (`TrainingSpec`, from its definition) and the point-in-time join that builds its rows."""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from mlops.contracts import common_pb2
from mlops.definitions import Definitions, Model
from mlops.definitions.model import LabelJoin
from mlops.topics import FEATURES_LOG, PREDICTIONS, TopicSpec

__all__ = [
    "JoinedRow",
    "LabelLike",
    "OffsetRange",
    "PredictionLike",
    "RequestLabelLike",
    "TrainingSet",
    "TrainingSpec",
    "VectorLike",
    "join_views",
    "point_in_time_join",
    "request_join",
]


@dataclass(frozen=True, order=True)
class OffsetRange:
    """Half-open [start_offset, end_offset) of one partition."""

    topic: str
    partition: int
    start_offset: int
    end_offset: int

    @property
    def count(self) -> int:
        return max(0, self.end_offset - self.start_offset)

    def to_proto(self) -> common_pb2.OffsetRange:
        return common_pb2.OffsetRange(
            topic=self.topic, partition=self.partition, start_offset=self.start_offset, end_offset=self.end_offset
        )

    @classmethod
    def from_proto(cls, msg: common_pb2.OffsetRange) -> OffsetRange:
        return cls(msg.topic, msg.partition, msg.start_offset, msg.end_offset)


@dataclass(frozen=True)
class TrainingSpec:
    """What one declared model trains on: its inputs `(view, column)` in model-input order, the label topic and how
    its labels read (the model, for `decode_label`, and the entity's id field for JSON labels)."""

    model: Model
    id_field: str
    inputs: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, definitions: Definitions, model_name: str) -> TrainingSpec:
        """The spec of `model_name` as `definitions` declare it; KeyError when it is not declared."""
        model = definitions.model(model_name)
        inputs = definitions.model_inputs(model)
        entity = definitions.entity(definitions.feature_view(inputs[0][0]).entity)
        return cls(model, entity.id_field, inputs)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The model's declared refs `view.column`: the training set's column names."""
        return self.model.features

    @property
    def views(self) -> tuple[str, ...]:
        """The views read, in order of first use."""
        return tuple(dict.fromkeys(v for v, _c in self.inputs))

    def columns(self, view: str) -> tuple[str, ...]:
        return tuple(c for v, c in self.inputs if v == view)

    @property
    def label_topic(self) -> TopicSpec:
        return TopicSpec(self.model.label.topic, f"labels of model {self.model.name!r}")

    @property
    def by_request(self) -> bool:
        """Labels join the prediction log by request id (`join: request_id`), not features.log by entity time."""
        return self.model.label.join is LabelJoin.REQUEST_ID

    @property
    def feature_topic(self) -> TopicSpec:
        """Where the feature values come from: `predictions` (as served) for a request-id join, else
        `features.log`. Its ranges are the training set's `feature_log_ranges`."""
        return PREDICTIONS if self.by_request else FEATURES_LOG


class VectorLike(Protocol):
    entity_id: str
    as_of_ms: int
    values: Mapping[str, float]


class LabelLike(Protocol):
    entity_id: str
    event_time_ms: int
    label: float


class PredictionLike(Protocol):
    request_id: str
    entity_id: str
    timestamp_ms: int
    inputs: Mapping[str, float]  # by declared name `view.column`


class RequestLabelLike(LabelLike, Protocol):
    request_id: str


@dataclass(frozen=True)
class JoinedRow:
    entity_id: str
    label_time_ms: int
    label: float
    values: tuple[float, ...]
    vector_as_of_ms: int  # the newest as-of time among the vectors joined (one per view); request join: served at
    order: int  # position of the label in its input (its log position): the last sort key


@dataclass
class TrainingSet:
    X: np.ndarray  # float32, n x k, columns = feature_names  # noqa: N815 (conventional name)
    y: np.ndarray  # float64
    feature_names: tuple[str, ...]
    entity_ids: list[str]
    label_times_ms: np.ndarray  # int64
    feature_log_ranges: list[OffsetRange]
    label_ranges: list[OffsetRange]
    labels_without_features: int = 0
    vectors_read: int = 0
    labels_read: int = 0
    stats: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.X.shape[0])


class _Timeline:
    """One view's vectors of one entity, by as-of time (ties: the later in the log wins)."""

    def __init__(self) -> None:
        self.items: list[tuple[int, int, Mapping[str, float]]] = []
        self.times: list[int] = []

    def seal(self) -> None:
        self.items.sort(key=lambda t: (t[0], t[1]))
        self.times = [t[0] for t in self.items]

    def as_of(self, t: int) -> tuple[int, int, Mapping[str, float]] | None:
        idx = bisect.bisect_right(self.times, t) - 1
        return self.items[idx] if idx >= 0 else None


def join_views(
    vectors: Mapping[str, Iterable[VectorLike]], labels: Iterable[LabelLike], inputs: Sequence[tuple[str, str]]
) -> list[JoinedRow]:
    """Pure join over several views of one entity: for each label (entity, t) the latest vector of EACH view with
    `as_of_ms <= t`; a label that lacks one of the views at that time gives no row. `vectors[view]` in log order.
    Rows sorted by (label time, entity, label order); values in `inputs` order."""
    timelines: dict[str, dict[str, _Timeline]] = {}
    for view, items in vectors.items():
        per_entity = timelines.setdefault(view, {})
        for i, v in enumerate(items):
            per_entity.setdefault(v.entity_id, _Timeline()).items.append((int(v.as_of_ms), i, v.values))
        for timeline in per_entity.values():
            timeline.seal()
    views = tuple(dict.fromkeys(v for v, _c in inputs))
    rows: list[JoinedRow] = []
    for order, lab in enumerate(labels):
        t = int(lab.event_time_ms)
        found: dict[str, tuple[int, int, Mapping[str, float]]] = {}
        for view in views:
            timeline = timelines.get(view, {}).get(lab.entity_id)
            hit = timeline.as_of(t) if timeline is not None else None
            if hit is None:
                break
            found[view] = hit
        else:
            values = tuple(float(found[v][2].get(c, math.nan)) for v, c in inputs)
            as_of = max(hit[0] for hit in found.values())
            rows.append(JoinedRow(lab.entity_id, t, float(lab.label), values, as_of, order))
    rows.sort(key=lambda r: (r.label_time_ms, r.entity_id, r.order))
    return rows


def point_in_time_join(
    vectors: Iterable[VectorLike], labels: Iterable[LabelLike], feature_names: Sequence[str]
) -> list[JoinedRow]:
    """`join_views` for one view: `vectors` in log order (per entity, which Kafka keeps by key). A label with no
    vector at or before its time gives no row."""
    return join_views({"": vectors}, labels, [("", n) for n in feature_names])


_ROW_OF_BATCH = re.compile(r"^(.+)/\d+$")  # inference names row i of a batch request `rid/i`


def request_join(
    predictions: Iterable[PredictionLike], labels: Iterable[RequestLabelLike], feature_names: Sequence[str]
) -> list[JoinedRow]:
    """Pure join of labels with the predictions they answer, on (request id, entity id): the features exactly as
    served. `predictions` of one model, in log order (a repeated (request, entity): the later wins); a prediction
    `rid/i` (row i of a batch request) also answers a label naming `rid`, unless one is named `rid` exactly. A label
    without a matching prediction gives no row; a declared input the prediction lacks is NaN. Rows sorted by
    (label time, entity, label order); values in `feature_names` order; `vector_as_of_ms` is the prediction time."""
    exact: dict[tuple[str, str], PredictionLike] = {}
    of_batch: dict[tuple[str, str], PredictionLike] = {}
    for p in predictions:
        exact[(p.request_id, p.entity_id)] = p
        if (m := _ROW_OF_BATCH.match(p.request_id)) is not None:
            of_batch[(m.group(1), p.entity_id)] = p
    rows: list[JoinedRow] = []
    for order, lab in enumerate(labels):
        if not lab.request_id:
            continue
        key = (lab.request_id, lab.entity_id)
        hit = exact.get(key) or of_batch.get(key)
        if hit is None:
            continue
        values = tuple(float(hit.inputs.get(n, math.nan)) for n in feature_names)
        rows.append(JoinedRow(lab.entity_id, int(lab.event_time_ms), float(lab.label), values,
                              int(hit.timestamp_ms), order))
    rows.sort(key=lambda r: (r.label_time_ms, r.entity_id, r.order))
    return rows
