"""The definitions model: what a team declares about its data and models, as validated data.

One document holds entities, sources (a raw topic and its typed fields), feature views (aggregations of a source's
fields over windows, per entity) and models (task, features, label, algorithm, gate, drift and serving policies).
Every reference between them is checked here, so a document that validates can be applied as it is; each error
names the path of the field at fault (`models[0].features[2]: ...`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AGGREGATIONS_FOR",
    "Aggregation",
    "Algorithm",
    "DriftPolicy",
    "Entity",
    "Feature",
    "FeatureView",
    "FieldType",
    "GatePolicy",
    "LabelJoin",
    "LabelSpec",
    "METRICS_FOR",
    "MissingEntity",
    "Model",
    "RolloutMode",
    "RolloutPolicy",
    "ServingPolicy",
    "SliceAttribute",
    "SlicePolicy",
    "Source",
    "SourceField",
    "Task",
    "TrainingWindow",
    "UnknownCategory",
    "Window",
    "WindowKind",
]

NAME = r"^[a-z][a-z0-9_]{0,62}$"
FEATURE_NAME = r"^[A-Za-z][A-Za-z0-9_.=-]{0,126}$"
Name = Annotated[str, Field(pattern=NAME, description="lower-case letters, digits and '_', starting with a letter")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Entity(_Strict):
    """What features are computed per, and what inference looks them up by."""

    name: Name
    id_field: str = Field("entity_id", min_length=1, description="The raw record's field holding the entity id.")
    description: str = ""


class FieldType(StrEnum):
    FLOAT = "float"
    INT = "int"
    BOOL = "bool"
    CATEGORICAL = "categorical"
    TIMESTAMP = "timestamp"


class UnknownCategory(StrEnum):
    """What ingest does with a categorical value outside the declared vocabulary."""

    REJECT = "reject"  # dead-letter the record, naming the field
    OTHER = "other"  # keep it as the reserved value `__other__`
    MISSING = "missing"  # treat the field as absent (refused if the field is required)


class SourceField(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")]
    type: FieldType
    required: bool = True
    minimum: float | None = Field(None, description="Smallest accepted value (numeric fields).")
    maximum: float | None = Field(None, description="Largest accepted value (numeric fields).")
    vocabulary: tuple[str, ...] | None = Field(None, description="Known values (categorical fields).")
    unknown: UnknownCategory = Field(UnknownCategory.REJECT, description="Handling of values outside the vocabulary.")
    sensitive: bool = Field(False, description="A protected or sensitive attribute (e.g. age band, region): every "
                                                "model reading a feature of it reports and gates metrics per slice "
                                                "of it (`models[].gate.slices`).")
    description: str = ""

    @property
    def numeric(self) -> bool:
        return self.type in (FieldType.FLOAT, FieldType.INT, FieldType.BOOL)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.minimum is not None or self.maximum is not None) and self.type not in (FieldType.FLOAT, FieldType.INT):
            raise ValueError(f"minimum/maximum apply to float and int fields, not {self.type.value}")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"minimum {self.minimum} is above maximum {self.maximum}")
        if self.vocabulary is not None:
            if self.type is not FieldType.CATEGORICAL:
                raise ValueError(f"vocabulary applies to categorical fields, not {self.type.value}")
            if not self.vocabulary or len(set(self.vocabulary)) != len(self.vocabulary):
                raise ValueError("vocabulary must list distinct values")
        if self.unknown is not UnknownCategory.REJECT and self.vocabulary is None:
            raise ValueError("unknown: needs a vocabulary to tell unknown values from known ones")
        if self.unknown is UnknownCategory.MISSING and self.required:
            raise ValueError("unknown: missing needs an optional field (required: false)")
        return self


class Source(_Strict):
    """A raw topic producers write to, and the typed fields of its records."""

    name: Name
    topic: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    entity: Name
    event_time_field: str = Field("event_time", description="Epoch milliseconds or an ISO-8601 string.")
    schema_version: int = Field(1, ge=1, description="What producers stamp in `schema_version`.")
    fields: tuple[SourceField, ...] = Field(min_length=1)
    description: str = ""

    def field(self, name: str) -> SourceField | None:
        return next((f for f in self.fields if f.name == name), None)

    @model_validator(mode="after")
    def _unique_fields(self) -> Self:
        _unique([f.name for f in self.fields], "field")
        return self


class WindowKind(StrEnum):
    TUMBLING = "tumbling"  # fixed, non-overlapping buckets of `size_s`
    HOPPING = "hopping"  # buckets of `size_s` starting every `step_s`; the newest complete-or-current one is served
    SLIDING = "sliding"  # the last `size_s` seconds before each event


class Window(_Strict):
    kind: WindowKind
    size_s: float = Field(gt=0, le=30 * 24 * 3600)
    step_s: float | None = Field(None, gt=0, description="Hopping windows only: how often a window starts.")

    @model_validator(mode="after")
    def _step(self) -> Self:
        if self.kind is WindowKind.HOPPING:
            if self.step_s is None:
                raise ValueError("a hopping window needs step_s")
            if self.step_s > self.size_s:
                raise ValueError(f"step_s {self.step_s} is larger than size_s {self.size_s}")
        elif self.step_s is not None:
            raise ValueError(f"step_s applies to hopping windows, not {self.kind.value}")
        return self


class Aggregation(StrEnum):
    LAST = "last"
    COUNT = "count"
    SUM = "sum"
    MEAN = "mean"
    MIN = "min"
    MAX = "max"
    STD = "std"
    DISTINCT_COUNT = "distinct_count"
    ONE_HOT = "one_hot"


_NUMERIC_AGGREGATIONS = frozenset(Aggregation) - {Aggregation.DISTINCT_COUNT, Aggregation.ONE_HOT}
AGGREGATIONS_FOR: dict[FieldType, frozenset[Aggregation]] = {
    FieldType.FLOAT: _NUMERIC_AGGREGATIONS,
    FieldType.INT: _NUMERIC_AGGREGATIONS | {Aggregation.DISTINCT_COUNT},
    FieldType.BOOL: _NUMERIC_AGGREGATIONS,
    FieldType.TIMESTAMP: frozenset({Aggregation.LAST, Aggregation.COUNT, Aggregation.MIN, Aggregation.MAX}),
    FieldType.CATEGORICAL: frozenset(
        {Aggregation.LAST, Aggregation.COUNT, Aggregation.DISTINCT_COUNT, Aggregation.ONE_HOT}
    ),
}


class Feature(_Strict):
    """One model input: `aggregation` of a source field, over `window` (none: over the entity's whole history)."""

    name: Annotated[str, Field(pattern=FEATURE_NAME)]
    field: str
    aggregation: Aggregation
    window: Window | None = None
    description: str = ""


class FeatureView(_Strict):
    """Features of one entity computed from one source; served online (with a TTL) and logged for training."""

    name: Name
    entity: Name
    source: Name
    ttl_s: int = Field(24 * 3600, gt=0, description="How long an entity's online view lives after its last event.")
    features: tuple[Feature, ...] = Field(min_length=1)
    description: str = ""

    @model_validator(mode="after")
    def _unique_features(self) -> Self:
        _unique([f.name for f in self.features], "feature")
        return self


class Task(StrEnum):
    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"


# the first metric of each task is its default; `True` when higher is better
METRICS_FOR: dict[Task, dict[str, bool]] = {
    Task.BINARY: {"auc": True, "logloss": False, "accuracy": True},
    Task.MULTICLASS: {"accuracy": True, "macro_f1": True, "logloss": False},
    Task.REGRESSION: {"rmse": False, "mae": False},
}


class LabelJoin(StrEnum):
    ENTITY_TIME = "entity_time"  # the label of an entity at an event time joins the features as of that time
    REQUEST_ID = "request_id"  # the label names the prediction request it answers


class LabelSpec(_Strict):
    """Where a model's ground truth arrives: `Label` protobufs, or JSON records holding the entity's id field,
    `event_time_field` (the time the label is about), `field` (the value) and optionally `request_id`."""

    topic: str = Field("labels", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    field: str = Field("label", min_length=1)
    event_time_field: str = Field("event_time", min_length=1)
    join: LabelJoin = LabelJoin.ENTITY_TIME


class Algorithm(_Strict):
    name: Literal["hist_gradient_boosting"] = "hist_gradient_boosting"
    params: dict[str, float | int | str | bool | None] = Field(
        default_factory=dict, description="Passed to scikit-learn's estimator (e.g. max_iter, learning_rate)."
    )


class TrainingWindow(_Strict):
    max_rows: int | None = Field(None, gt=0, description="Train on at most the latest rows.")
    min_rows: int = Field(200, gt=0, description="Fewer labelled rows than this: no training.")
    holdout_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = Field(42, description="Training seed: same data offsets and seed give the same ONNX bytes.")


class SlicePolicy(_Strict):
    """The gate's checks per slice of the holdout: each value of a categorical attribute, each quantile bin of a
    numeric one. Thresholds are in the gate metric's units and follow its direction (a loss is always "worse")."""

    attributes: tuple[str, ...] = Field(
        (), description="`view.feature` names of model inputs to slice by (a one_hot feature by its name, e.g. "
                        "`orders.channel`); inputs of `sensitive: true` source fields are always sliced.")
    bins: int = Field(4, ge=2, le=20, description="Quantile bins of a numeric attribute (edges from the holdout).")
    min_rows: int = Field(30, ge=1, description="A slice with fewer holdout rows is reported but not judged.")
    max_slice_loss: float | None = Field(
        None, ge=0, description="No slice may be worse than the champion's same slice by more than this.")
    slice_floor: float | None = Field(
        None, description="Every slice must reach this (a minimum when higher is better, a maximum otherwise).")
    max_slice_gap: float | None = Field(None, ge=0, description="Largest allowed gap between best and worst slice.")

    @model_validator(mode="after")
    def _finite(self) -> Self:
        _unique(list(self.attributes), "slice attribute")
        if self.slice_floor is not None and not math.isfinite(self.slice_floor):
            raise ValueError("slice_floor must be a finite number")
        return self


class GatePolicy(_Strict):
    metric: str | None = Field(None, description="The task's metric; none: the task's default.")
    margin: float = Field(0.0, ge=0, description="How much better than the champion a challenger must be.")
    floor: float | None = Field(None, description="A challenger worse than this is refused even with no champion.")
    slices: SlicePolicy | None = Field(None, description="Checks per slice of the holdout (bias and segment "
                                                         "regressions); none: slices of sensitive fields are "
                                                         "reported, not judged.")


@dataclass(frozen=True)
class SliceAttribute:
    """One attribute a model's holdout is sliced by, resolved against the definitions (`Definitions.slices`):
    `columns` are model-input names; a categorical attribute reads a one-hot group (one column per value) or a
    vocabulary index (one column; -1 is `__other__`), a numeric one is cut into quantile bins."""

    name: str  # `view.feature`
    columns: tuple[str, ...]
    values: tuple[str, ...] | None  # categorical: the value of each one-hot column / vocabulary index
    one_hot: bool = False
    sensitive: bool = False

    @property
    def categorical(self) -> bool:
        return self.values is not None


class DriftPolicy(_Strict):
    signals: tuple[Literal["error", "score", "features"], ...] = ("error", "score", "features")
    alpha: float = Field(1e-4, gt=0, lt=1, description="Significance of each data-drift test.")
    cooldown_s: float = Field(60.0, ge=0)


class RolloutMode(StrEnum):
    OFFLINE = "offline"  # the offline gate decides; a passing challenger takes all traffic at once
    SHADOW = "shadow"  # a passing challenger is mirrored a share of requests (answers logged, never returned)
    CANARY = "canary"  # a passing challenger answers a share of requests, sticky by entity id


class RolloutPolicy(_Strict):
    """How a challenger that passed the offline gate reaches clients, and the live evidence that decides it: the
    monitor compares challenger and champion on the same joined labels with a sequential test; the registry
    promotes, retires or (after a promotion) rolls back on its verdict."""

    mode: RolloutMode = RolloutMode.OFFLINE
    fraction: float | None = Field(None, gt=0, le=1, description="Share of requests mirrored (shadow, default 1) "
                                                                  "or answered (canary, default 0.1).")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Confidence of the live test's decisions.")
    min_improvement: float = Field(0.0, ge=0, description="How much better (gate metric units) the challenger "
                                                          "must be on live labels to be promoted.")
    min_labels: int = Field(100, ge=1, description="No live verdict on fewer joined labels than this.")
    max_labels: int = Field(5000, ge=1, description="Undecided after this many joined labels: the challenger "
                                                    "is retired (no evidence it is better).")
    rollback_margin: float | None = Field(
        0.02, ge=0, description="After a promotion the previous champion keeps shadowing; the new one is rolled "
                                "back when worse than it by more than this on live labels (none: no guard).")
    guard_labels: int = Field(1000, ge=1, description="Joined labels the post-promotion guard watches.")

    @property
    def traffic_fraction(self) -> float:
        if self.fraction is not None:
            return self.fraction
        return 0.1 if self.mode is RolloutMode.CANARY else 1.0

    @model_validator(mode="after")
    def _labels_ordered(self) -> Self:
        if self.max_labels < self.min_labels:
            raise ValueError("rollout.max_labels must be at least rollout.min_labels")
        return self


class MissingEntity(StrEnum):
    ERROR = "error"  # NOT_FOUND for a request naming an entity with no online view
    DEFAULTS = "defaults"  # serve with the feature defaults (NaN: the model's own missing-value handling)


class ServingPolicy(_Strict):
    entity_join: bool = Field(True, description="Look features up by entity id in the online view.")
    missing_entity: MissingEntity = MissingEntity.ERROR


class Model(_Strict):
    name: Name
    task: Task
    features: tuple[str, ...] = Field(min_length=1, description="`view.feature` names, in model-input order.")
    classes: tuple[int, ...] | None = Field(None, description="Multiclass: the label values, in output order.")
    label: LabelSpec = Field(default_factory=LabelSpec)
    algorithm: Algorithm = Field(default_factory=Algorithm)
    training: TrainingWindow = Field(default_factory=TrainingWindow)
    gate: GatePolicy = Field(default_factory=GatePolicy)
    drift: DriftPolicy = Field(default_factory=DriftPolicy)
    serving: ServingPolicy = Field(default_factory=ServingPolicy)
    rollout: RolloutPolicy = Field(default_factory=RolloutPolicy)
    description: str = ""

    @property
    def metric(self) -> str:
        return self.gate.metric or next(iter(METRICS_FOR[self.task]))

    @property
    def higher_is_better(self) -> bool:
        return METRICS_FOR[self.task][self.metric]

    @model_validator(mode="after")
    def _task_consistent(self) -> Self:
        _unique(list(self.features), "feature")
        if self.gate.metric is not None and self.gate.metric not in METRICS_FOR[self.task]:
            raise ValueError(
                f"gate.metric {self.gate.metric!r} does not fit task {self.task.value}; "
                f"one of {sorted(METRICS_FOR[self.task])}"
            )
        if self.task is Task.MULTICLASS:
            if self.classes is None or len(self.classes) < 3 or len(set(self.classes)) != len(self.classes):
                raise ValueError("a multiclass model needs `classes`: three or more distinct label values")
        elif self.classes is not None:
            raise ValueError(f"classes apply to multiclass models, not {self.task.value}")
        if self.gate.floor is not None and not math.isfinite(self.gate.floor):
            raise ValueError("gate.floor must be a finite number")
        return self


def _unique(names: list[str], kind: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"duplicate {kind} name {name!r}")
        seen.add(name)
