"""Plain values the console's pages show: no protobuf, no HTTP. `convert` builds them from the registry's
messages, Kafka records and the Prometheus and Jaeger JSON answers."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["AuditEntry", "DeadLetter", "Lineage", "ModelDetail", "ModelRow", "OffsetRange", "Prediction",
           "RetrainRequest", "Series", "Span", "Trace", "TraceSummary", "Version"]


@dataclass(frozen=True)
class ModelRow:
    name: str
    champion: str
    latest: str
    versions: int
    updated_ms: int
    challenger: str = ""  # the second version on live traffic, e.g. "v2 shadow 100%" ("" when none)


@dataclass(frozen=True)
class OffsetRange:
    topic: str
    partition: int
    start: int
    end: int

    @property
    def records(self) -> int:
        return max(0, self.end - self.start)


@dataclass(frozen=True)
class Lineage:
    feature_log: tuple[OffsetRange, ...] = ()
    labels: tuple[OffsetRange, ...] = ()
    view_versions: dict[str, int] = field(default_factory=dict)
    definitions_revision: int = 0
    code_version: str = ""
    seed: int = 0
    rows: int = 0
    data_start_ms: int = 0
    data_end_ms: int = 0
    retrain_request_id: str = ""
    retrain_reason: str = ""
    requested_by: str = ""


@dataclass(frozen=True)
class Version:
    version: str
    status: str
    sha256: str
    framework: str
    metrics: dict[str, float]
    gate_metrics: dict[str, float]
    champion_metrics: dict[str, float]
    champion_at_gate: str
    decision: str
    reason: str
    features: tuple[str, ...]
    lineage: Lineage
    registered_ms: int
    live: str = ""  # its role on live traffic with its share, e.g. "shadow 100%" ("" when none)


@dataclass(frozen=True)
class AuditEntry:
    sequence: int
    version: str
    action: str
    actor: str
    why: str
    at_ms: int
    status: str
    evidence: str = ""  # the live verdict a decision of the monitor acted on, in one line


@dataclass(frozen=True)
class ModelDetail:
    name: str
    champion: str
    versions: tuple[Version, ...]
    audit: tuple[AuditEntry, ...]


@dataclass(frozen=True)
class DeadLetter:
    position: str  # where the dead letter itself is: topic/partition@offset
    timestamp_ms: int
    reason: str
    field: str
    error_type: str
    source: str  # where the rejected record was: topic/partition@offset
    service: str
    key: str
    value_preview: str
    trace_id: str


@dataclass(frozen=True)
class RetrainRequest:
    model: str
    request_id: str
    reason: str
    detector: str
    statistic: str
    feature: str
    value: float
    requested_ms: int
    requested_by: str
    trace_id: str


@dataclass(frozen=True)
class Prediction:
    request_id: str
    entity_id: str
    model: str
    version: str
    score: float
    label: float
    latency_us: int
    timestamp_ms: int
    trace_id: str


@dataclass(frozen=True)
class Series:
    """One time series of a Prometheus answer: its labels and (unix seconds, value) points."""

    labels: dict[str, str]
    points: tuple[tuple[float, float], ...]

    def label(self, *keys: str) -> str:
        shown = [f"{k}={self.labels[k]}" for k in keys if k in self.labels] if keys else \
            [f"{k}={v}" for k, v in sorted(self.labels.items()) if k != "__name__"]
        return ", ".join(shown) or "value"


@dataclass(frozen=True)
class Span:
    span_id: str
    parent_id: str
    name: str
    service: str
    start_us: int
    duration_us: int
    error: bool = False
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Trace:
    trace_id: str
    spans: tuple[Span, ...]


@dataclass(frozen=True)
class TraceSummary:
    trace_id: str
    root: str
    services: tuple[str, ...]
    start_us: int
    duration_us: int
    spans: int
    errors: int
