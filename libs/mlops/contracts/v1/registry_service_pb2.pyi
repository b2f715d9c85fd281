from mlops.contracts.v1 import models_pb2 as _models_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelSummary(_message.Message):
    __slots__ = ("name", "champion_version", "latest_version", "version_count", "champion_sha256", "updated_at_ms", "challenger_version", "challenger_role", "challenger_fraction")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CHAMPION_VERSION_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_COUNT_FIELD_NUMBER: _ClassVar[int]
    CHAMPION_SHA256_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    CHALLENGER_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHALLENGER_ROLE_FIELD_NUMBER: _ClassVar[int]
    CHALLENGER_FRACTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    champion_version: str
    latest_version: str
    version_count: int
    champion_sha256: str
    updated_at_ms: int
    challenger_version: str
    challenger_role: str
    challenger_fraction: float
    def __init__(self, name: _Optional[str] = ..., champion_version: _Optional[str] = ..., latest_version: _Optional[str] = ..., version_count: _Optional[int] = ..., champion_sha256: _Optional[str] = ..., updated_at_ms: _Optional[int] = ..., challenger_version: _Optional[str] = ..., challenger_role: _Optional[str] = ..., challenger_fraction: _Optional[float] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelSummary]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelSummary, _Mapping]]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("version", "status", "artifact_sha256", "artifact_size", "framework", "metrics", "gate_metrics", "champion_metrics", "champion_version_at_gate", "gate_decision", "gate_reason", "candidate_id", "feature_names", "params", "lineage", "registered_at_ms", "promoted_sequence", "gate_definitions_revision", "role", "traffic_fraction")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class GateMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class ChampionMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_SHA256_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_SIZE_FIELD_NUMBER: _ClassVar[int]
    FRAMEWORK_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    GATE_METRICS_FIELD_NUMBER: _ClassVar[int]
    CHAMPION_METRICS_FIELD_NUMBER: _ClassVar[int]
    CHAMPION_VERSION_AT_GATE_FIELD_NUMBER: _ClassVar[int]
    GATE_DECISION_FIELD_NUMBER: _ClassVar[int]
    GATE_REASON_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    GATE_DEFINITIONS_REVISION_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_FRACTION_FIELD_NUMBER: _ClassVar[int]
    version: str
    status: str
    artifact_sha256: str
    artifact_size: int
    framework: str
    metrics: _containers.ScalarMap[str, float]
    gate_metrics: _containers.ScalarMap[str, float]
    champion_metrics: _containers.ScalarMap[str, float]
    champion_version_at_gate: str
    gate_decision: str
    gate_reason: str
    candidate_id: str
    feature_names: _containers.RepeatedScalarFieldContainer[str]
    params: _containers.ScalarMap[str, str]
    lineage: _models_pb2.Lineage
    registered_at_ms: int
    promoted_sequence: int
    gate_definitions_revision: int
    role: str
    traffic_fraction: float
    def __init__(self, version: _Optional[str] = ..., status: _Optional[str] = ..., artifact_sha256: _Optional[str] = ..., artifact_size: _Optional[int] = ..., framework: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., gate_metrics: _Optional[_Mapping[str, float]] = ..., champion_metrics: _Optional[_Mapping[str, float]] = ..., champion_version_at_gate: _Optional[str] = ..., gate_decision: _Optional[str] = ..., gate_reason: _Optional[str] = ..., candidate_id: _Optional[str] = ..., feature_names: _Optional[_Iterable[str]] = ..., params: _Optional[_Mapping[str, str]] = ..., lineage: _Optional[_Union[_models_pb2.Lineage, _Mapping]] = ..., registered_at_ms: _Optional[int] = ..., promoted_sequence: _Optional[int] = ..., gate_definitions_revision: _Optional[int] = ..., role: _Optional[str] = ..., traffic_fraction: _Optional[float] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("sequence", "version", "action", "actor", "why", "at_ms", "status", "evidence")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    WHY_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    version: str
    action: str
    actor: str
    why: str
    at_ms: int
    status: str
    evidence: _models_pb2.ChallengerVerdict
    def __init__(self, sequence: _Optional[int] = ..., version: _Optional[str] = ..., action: _Optional[str] = ..., actor: _Optional[str] = ..., why: _Optional[str] = ..., at_ms: _Optional[int] = ..., status: _Optional[str] = ..., evidence: _Optional[_Union[_models_pb2.ChallengerVerdict, _Mapping]] = ...) -> None: ...

class GetModelResponse(_message.Message):
    __slots__ = ("name", "champion_version", "versions", "audit")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CHAMPION_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    AUDIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    champion_version: str
    versions: _containers.RepeatedCompositeFieldContainer[ModelVersion]
    audit: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    def __init__(self, name: _Optional[str] = ..., champion_version: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[ModelVersion, _Mapping]]] = ..., audit: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("model_name", "version", "decision", "reason", "candidate_metrics", "champion_metrics", "previous_version")
    class CandidateMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class ChampionMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_METRICS_FIELD_NUMBER: _ClassVar[int]
    CHAMPION_METRICS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    version: str
    decision: str
    reason: str
    candidate_metrics: _containers.ScalarMap[str, float]
    champion_metrics: _containers.ScalarMap[str, float]
    previous_version: str
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[str] = ..., decision: _Optional[str] = ..., reason: _Optional[str] = ..., candidate_metrics: _Optional[_Mapping[str, float]] = ..., champion_metrics: _Optional[_Mapping[str, float]] = ..., previous_version: _Optional[str] = ...) -> None: ...

class PromoteRequest(_message.Message):
    __slots__ = ("name", "version", "actor", "reason", "override_gate", "command_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OVERRIDE_GATE_FIELD_NUMBER: _ClassVar[int]
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    actor: str
    reason: str
    override_gate: bool
    command_id: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., override_gate: _Optional[bool] = ..., command_id: _Optional[str] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ("name", "actor", "reason", "command_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    actor: str
    reason: str
    command_id: str
    def __init__(self, name: _Optional[str] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., command_id: _Optional[str] = ...) -> None: ...

class ChangeResponse(_message.Message):
    __slots__ = ("promoted", "sequence", "announced")
    PROMOTED_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ANNOUNCED_FIELD_NUMBER: _ClassVar[int]
    promoted: _models_pb2.ModelPromoted
    sequence: int
    announced: bool
    def __init__(self, promoted: _Optional[_Union[_models_pb2.ModelPromoted, _Mapping]] = ..., sequence: _Optional[int] = ..., announced: _Optional[bool] = ...) -> None: ...

class DiffRequest(_message.Message):
    __slots__ = ("name", "a", "b")
    NAME_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    name: str
    a: str
    b: str
    def __init__(self, name: _Optional[str] = ..., a: _Optional[str] = ..., b: _Optional[str] = ...) -> None: ...

class FieldDiff(_message.Message):
    __slots__ = ("field", "a", "b")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    field: str
    a: str
    b: str
    def __init__(self, field: _Optional[str] = ..., a: _Optional[str] = ..., b: _Optional[str] = ...) -> None: ...

class DiffResponse(_message.Message):
    __slots__ = ("differences", "text")
    DIFFERENCES_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    differences: _containers.RepeatedCompositeFieldContainer[FieldDiff]
    text: str
    def __init__(self, differences: _Optional[_Iterable[_Union[FieldDiff, _Mapping]]] = ..., text: _Optional[str] = ...) -> None: ...

class GetModelCardRequest(_message.Message):
    __slots__ = ("name", "version", "figures")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FIGURES_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    figures: bool
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., figures: _Optional[bool] = ...) -> None: ...

class ModelCard(_message.Message):
    __slots__ = ("name", "version", "markdown", "figures")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MARKDOWN_FIELD_NUMBER: _ClassVar[int]
    FIGURES_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    markdown: str
    figures: _containers.RepeatedCompositeFieldContainer[Figure]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., markdown: _Optional[str] = ..., figures: _Optional[_Iterable[_Union[Figure, _Mapping]]] = ...) -> None: ...

class Figure(_message.Message):
    __slots__ = ("name", "title", "png")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    PNG_FIELD_NUMBER: _ClassVar[int]
    name: str
    title: str
    png: bytes
    def __init__(self, name: _Optional[str] = ..., title: _Optional[str] = ..., png: _Optional[bytes] = ...) -> None: ...
