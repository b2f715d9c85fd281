"""The monitor's domain objects: plain values, no protobuf (services.monitor.convert maps the contracts onto them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class Prediction:
    request_id: str
    entity_id: str
    model_name: str
    model_version: str
    inputs: Mapping[str, float]
    score: float
    predicted_label: float
    timestamp_ms: int
    features_as_of_ms: int = 0
    trace_id: str = ""
    span_id: str = ""
    role: str = ""  # who served the row: "" / champion, or a second version's role (shadow, canary, guard)

    @property
    def join_time_ms(self) -> int:
        """The time a label's event time is compared with: the features' as-of time, else the serve time."""
        return self.features_as_of_ms or self.timestamp_ms


@dataclass(eq=False, slots=True)
class PredictionBlock:
    """The rows of one logged request (or its share of a partition) as columns: what they have in common once, the
    rest as arrays (`x` [rows, len(feature_names)], `scores`, `predicted_labels`) and per-row lists (`request_ids`,
    `entity_ids`, `as_of_ms`). `row(i)` is the `Prediction` the per-row path would see, made only when needed."""

    model_name: str
    model_version: str
    timestamp_ms: int
    feature_names: tuple[str, ...]
    x: np.ndarray
    scores: np.ndarray
    predicted_labels: np.ndarray
    request_ids: Sequence[str]
    entity_ids: Sequence[str]
    as_of_ms: Sequence[int]
    trace_id: str = ""
    span_id: str = ""
    role: str = ""
    join_times_ms: list[int] = field(init=False)  # what a label's event time is compared with, per row

    def __post_init__(self) -> None:
        t = self.timestamp_ms
        self.join_times_ms = [a or t for a in self.as_of_ms]

    @property
    def rows(self) -> int:
        return len(self.x)

    def row(self, i: int) -> Prediction:
        return Prediction(
            request_id=self.request_ids[i], entity_id=self.entity_ids[i], model_name=self.model_name,
            model_version=self.model_version, inputs=dict(zip(self.feature_names, self.x[i].tolist(), strict=True)),
            score=float(self.scores[i]), predicted_label=float(self.predicted_labels[i]),
            timestamp_ms=self.timestamp_ms, features_as_of_ms=self.as_of_ms[i], trace_id=self.trace_id,
            span_id=self.span_id, role=self.role)


@dataclass(frozen=True, slots=True)
class LabelEvent:
    entity_id: str
    event_time_ms: int
    label: float
    request_id: str = ""
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class Detection:
    """One detector firing (or one window statistic over its threshold) for one stream of one model version."""

    model_name: str
    model_version: str
    kind: str  # data | prediction | concept
    detector: str  # ADWIN, KSWIN, PageHinkley, PSI, KS
    statistic: str  # mean, psi, ks, score_mean, error_rate
    feature: str  # feature name, "score", or "" for the error stream
    value: float
    window_start_ms: int
    at_ms: int
    strong: bool = False  # enough on its own to ask for a retrain (confirmed concept drift)
    counts: bool = True  # tested within the false-alarm budget; False: reported only (PSI, online detectors)
    # the error stream's estimate of when the new concept began, in the labels' event time — the time the trainer
    # selects rows by (0: none; the data streams run on serve time, which the labels' rows cannot be compared to)
    change_point_ms: int = 0


@dataclass(frozen=True, slots=True)
class RetrainDecision:
    model_name: str
    model_version: str
    request_id: str
    reason: str
    detector: str
    statistic: str
    feature: str
    value: float
    window_start_ms: int
    window_end_ms: int
    evidence: tuple[Detection, ...] = ()
    evidence_traces: tuple[tuple[str, str], ...] = field(default=())  # (trace_id, span_id) of predictions
    change_point_ms: int = 0  # estimated start of the new concept (labels' event time): train on labels after it
    attempt: int = 1  # requests for this model version so far, this one included
