from mlops.contracts.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PredictionRecord(_message.Message):
    __slots__ = ("contract_version", "request_id", "entity_id", "model_name", "model_version", "inputs", "outputs", "score", "predicted_label", "latency_us", "trace_id", "timestamp_ms", "features_as_of_ms", "span_id")
    class InputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    CONTRACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_LABEL_FIELD_NUMBER: _ClassVar[int]
    LATENCY_US_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_AS_OF_MS_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    contract_version: int
    request_id: str
    entity_id: str
    model_name: str
    model_version: str
    inputs: _containers.ScalarMap[str, float]
    outputs: _containers.RepeatedScalarFieldContainer[float]
    score: float
    predicted_label: float
    latency_us: int
    trace_id: str
    timestamp_ms: int
    features_as_of_ms: int
    span_id: str
    def __init__(self, contract_version: _Optional[int] = ..., request_id: _Optional[str] = ..., entity_id: _Optional[str] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., inputs: _Optional[_Mapping[str, float]] = ..., outputs: _Optional[_Iterable[float]] = ..., score: _Optional[float] = ..., predicted_label: _Optional[float] = ..., latency_us: _Optional[int] = ..., trace_id: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., features_as_of_ms: _Optional[int] = ..., span_id: _Optional[str] = ...) -> None: ...

class PredictionBatch(_message.Message):
    __slots__ = ("contract_version", "request_id", "model_name", "model_version", "trace_id", "span_id", "latency_us", "timestamp_ms", "rows", "feature_names", "features_f32", "output_width", "outputs_f32", "scores_f32", "predicted_labels_f32", "entity_ids", "features_as_of_ms_i64", "request_rows", "row_index_u32", "row_request_ids", "role", "requests")
    class Request(_message.Message):
        __slots__ = ("request_id", "rows", "request_rows", "trace_id", "span_id", "latency_us", "timestamp_ms")
        REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
        ROWS_FIELD_NUMBER: _ClassVar[int]
        REQUEST_ROWS_FIELD_NUMBER: _ClassVar[int]
        TRACE_ID_FIELD_NUMBER: _ClassVar[int]
        SPAN_ID_FIELD_NUMBER: _ClassVar[int]
        LATENCY_US_FIELD_NUMBER: _ClassVar[int]
        TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
        request_id: str
        rows: int
        request_rows: int
        trace_id: str
        span_id: str
        latency_us: int
        timestamp_ms: int
        def __init__(self, request_id: _Optional[str] = ..., rows: _Optional[int] = ..., request_rows: _Optional[int] = ..., trace_id: _Optional[str] = ..., span_id: _Optional[str] = ..., latency_us: _Optional[int] = ..., timestamp_ms: _Optional[int] = ...) -> None: ...
    CONTRACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    LATENCY_US_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    FEATURES_F32_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_WIDTH_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_F32_FIELD_NUMBER: _ClassVar[int]
    SCORES_F32_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_LABELS_F32_FIELD_NUMBER: _ClassVar[int]
    ENTITY_IDS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_AS_OF_MS_I64_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ROWS_FIELD_NUMBER: _ClassVar[int]
    ROW_INDEX_U32_FIELD_NUMBER: _ClassVar[int]
    ROW_REQUEST_IDS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    contract_version: int
    request_id: str
    model_name: str
    model_version: str
    trace_id: str
    span_id: str
    latency_us: int
    timestamp_ms: int
    rows: int
    feature_names: _containers.RepeatedScalarFieldContainer[str]
    features_f32: bytes
    output_width: int
    outputs_f32: bytes
    scores_f32: bytes
    predicted_labels_f32: bytes
    entity_ids: _containers.RepeatedScalarFieldContainer[str]
    features_as_of_ms_i64: bytes
    request_rows: int
    row_index_u32: bytes
    row_request_ids: _containers.RepeatedScalarFieldContainer[str]
    role: str
    requests: _containers.RepeatedCompositeFieldContainer[PredictionBatch.Request]
    def __init__(self, contract_version: _Optional[int] = ..., request_id: _Optional[str] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., trace_id: _Optional[str] = ..., span_id: _Optional[str] = ..., latency_us: _Optional[int] = ..., timestamp_ms: _Optional[int] = ..., rows: _Optional[int] = ..., feature_names: _Optional[_Iterable[str]] = ..., features_f32: _Optional[bytes] = ..., output_width: _Optional[int] = ..., outputs_f32: _Optional[bytes] = ..., scores_f32: _Optional[bytes] = ..., predicted_labels_f32: _Optional[bytes] = ..., entity_ids: _Optional[_Iterable[str]] = ..., features_as_of_ms_i64: _Optional[bytes] = ..., request_rows: _Optional[int] = ..., row_index_u32: _Optional[bytes] = ..., row_request_ids: _Optional[_Iterable[str]] = ..., role: _Optional[str] = ..., requests: _Optional[_Iterable[_Union[PredictionBatch.Request, _Mapping]]] = ...) -> None: ...

class RetrainRequest(_message.Message):
    __slots__ = ("contract_version", "model_name", "request_id", "reason", "detector", "statistic", "feature", "value", "window_start_ms", "window_end_ms", "requested_at_ms", "requested_by", "trace_id", "span_id", "seed", "change_point_ms", "attempt")
    CONTRACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_FIELD_NUMBER: _ClassVar[int]
    STATISTIC_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_MS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_MS_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    CHANGE_POINT_MS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    contract_version: int
    model_name: str
    request_id: str
    reason: str
    detector: str
    statistic: str
    feature: str
    value: float
    window_start_ms: int
    window_end_ms: int
    requested_at_ms: int
    requested_by: str
    trace_id: str
    span_id: str
    seed: int
    change_point_ms: int
    attempt: int
    def __init__(self, contract_version: _Optional[int] = ..., model_name: _Optional[str] = ..., request_id: _Optional[str] = ..., reason: _Optional[str] = ..., detector: _Optional[str] = ..., statistic: _Optional[str] = ..., feature: _Optional[str] = ..., value: _Optional[float] = ..., window_start_ms: _Optional[int] = ..., window_end_ms: _Optional[int] = ..., requested_at_ms: _Optional[int] = ..., requested_by: _Optional[str] = ..., trace_id: _Optional[str] = ..., span_id: _Optional[str] = ..., seed: _Optional[int] = ..., change_point_ms: _Optional[int] = ..., attempt: _Optional[int] = ...) -> None: ...

class Lineage(_message.Message):
    __slots__ = ("feature_log_offsets", "label_offsets", "feature_set", "feature_set_version", "code_version", "seed", "row_count", "data_start_ms", "data_end_ms", "retrain_request_id", "retrain_reason", "coalesced_request_ids", "view_versions", "definitions_revision", "requested_by")
    class ViewVersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    FEATURE_LOG_OFFSETS_FIELD_NUMBER: _ClassVar[int]
    LABEL_OFFSETS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SET_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SET_VERSION_FIELD_NUMBER: _ClassVar[int]
    CODE_VERSION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    DATA_START_MS_FIELD_NUMBER: _ClassVar[int]
    DATA_END_MS_FIELD_NUMBER: _ClassVar[int]
    RETRAIN_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RETRAIN_REASON_FIELD_NUMBER: _ClassVar[int]
    COALESCED_REQUEST_IDS_FIELD_NUMBER: _ClassVar[int]
    VIEW_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    DEFINITIONS_REVISION_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    feature_log_offsets: _containers.RepeatedCompositeFieldContainer[_common_pb2.OffsetRange]
    label_offsets: _containers.RepeatedCompositeFieldContainer[_common_pb2.OffsetRange]
    feature_set: str
    feature_set_version: int
    code_version: str
    seed: int
    row_count: int
    data_start_ms: int
    data_end_ms: int
    retrain_request_id: str
    retrain_reason: str
    coalesced_request_ids: _containers.RepeatedScalarFieldContainer[str]
    view_versions: _containers.ScalarMap[str, int]
    definitions_revision: int
    requested_by: str
    def __init__(self, feature_log_offsets: _Optional[_Iterable[_Union[_common_pb2.OffsetRange, _Mapping]]] = ..., label_offsets: _Optional[_Iterable[_Union[_common_pb2.OffsetRange, _Mapping]]] = ..., feature_set: _Optional[str] = ..., feature_set_version: _Optional[int] = ..., code_version: _Optional[str] = ..., seed: _Optional[int] = ..., row_count: _Optional[int] = ..., data_start_ms: _Optional[int] = ..., data_end_ms: _Optional[int] = ..., retrain_request_id: _Optional[str] = ..., retrain_reason: _Optional[str] = ..., coalesced_request_ids: _Optional[_Iterable[str]] = ..., view_versions: _Optional[_Mapping[str, int]] = ..., definitions_revision: _Optional[int] = ..., requested_by: _Optional[str] = ...) -> None: ...

class Holdout(_message.Message):
    __slots__ = ("feature_names", "rows", "features_f32", "labels")
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_F32_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    feature_names: _containers.RepeatedScalarFieldContainer[str]
    rows: int
    features_f32: bytes
    labels: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, feature_names: _Optional[_Iterable[str]] = ..., rows: _Optional[int] = ..., features_f32: _Optional[bytes] = ..., labels: _Optional[_Iterable[float]] = ...) -> None: ...

class ModelCandidate(_message.Message):
    __slots__ = ("contract_version", "model_name", "candidate_id", "artifact_sha256", "artifact_size", "framework", "metrics", "params", "lineage", "feature_names", "holdout", "created_at_ms", "trace_id", "span_id", "explainability")
    class MetricsEntry(_message.Message):
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
    CONTRACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_SHA256_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_SIZE_FIELD_NUMBER: _ClassVar[int]
    FRAMEWORK_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    EXPLAINABILITY_FIELD_NUMBER: _ClassVar[int]
    contract_version: int
    model_name: str
    candidate_id: str
    artifact_sha256: str
    artifact_size: int
    framework: str
    metrics: _containers.ScalarMap[str, float]
    params: _containers.ScalarMap[str, str]
    lineage: Lineage
    feature_names: _containers.RepeatedScalarFieldContainer[str]
    holdout: Holdout
    created_at_ms: int
    trace_id: str
    span_id: str
    explainability: Explainability
    def __init__(self, contract_version: _Optional[int] = ..., model_name: _Optional[str] = ..., candidate_id: _Optional[str] = ..., artifact_sha256: _Optional[str] = ..., artifact_size: _Optional[int] = ..., framework: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., params: _Optional[_Mapping[str, str]] = ..., lineage: _Optional[_Union[Lineage, _Mapping]] = ..., feature_names: _Optional[_Iterable[str]] = ..., holdout: _Optional[_Union[Holdout, _Mapping]] = ..., created_at_ms: _Optional[int] = ..., trace_id: _Optional[str] = ..., span_id: _Optional[str] = ..., explainability: _Optional[_Union[Explainability, _Mapping]] = ...) -> None: ...

class Explainability(_message.Message):
    __slots__ = ("metric", "rows", "importances", "partial_dependence", "calibration", "feature_means")
    class FeatureMeansEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    METRIC_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCES_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_DEPENDENCE_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_FIELD_NUMBER: _ClassVar[int]
    FEATURE_MEANS_FIELD_NUMBER: _ClassVar[int]
    metric: str
    rows: int
    importances: _containers.RepeatedCompositeFieldContainer[FeatureImportance]
    partial_dependence: _containers.RepeatedCompositeFieldContainer[PartialDependence]
    calibration: CalibrationCurve
    feature_means: _containers.ScalarMap[str, float]
    def __init__(self, metric: _Optional[str] = ..., rows: _Optional[int] = ..., importances: _Optional[_Iterable[_Union[FeatureImportance, _Mapping]]] = ..., partial_dependence: _Optional[_Iterable[_Union[PartialDependence, _Mapping]]] = ..., calibration: _Optional[_Union[CalibrationCurve, _Mapping]] = ..., feature_means: _Optional[_Mapping[str, float]] = ...) -> None: ...

class FeatureImportance(_message.Message):
    __slots__ = ("feature", "mean", "std")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    feature: str
    mean: float
    std: float
    def __init__(self, feature: _Optional[str] = ..., mean: _Optional[float] = ..., std: _Optional[float] = ...) -> None: ...

class PartialDependence(_message.Message):
    __slots__ = ("feature", "grid", "average")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    GRID_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_FIELD_NUMBER: _ClassVar[int]
    feature: str
    grid: _containers.RepeatedScalarFieldContainer[float]
    average: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, feature: _Optional[str] = ..., grid: _Optional[_Iterable[float]] = ..., average: _Optional[_Iterable[float]] = ...) -> None: ...

class CalibrationCurve(_message.Message):
    __slots__ = ("prob_pred", "prob_true", "counts")
    PROB_PRED_FIELD_NUMBER: _ClassVar[int]
    PROB_TRUE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    prob_pred: _containers.RepeatedScalarFieldContainer[float]
    prob_true: _containers.RepeatedScalarFieldContainer[float]
    counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, prob_pred: _Optional[_Iterable[float]] = ..., prob_true: _Optional[_Iterable[float]] = ..., counts: _Optional[_Iterable[int]] = ...) -> None: ...

class SliceMetric(_message.Message):
    __slots__ = ("attribute", "value", "rows", "metric", "ci_low", "ci_high", "has_champion", "champion_metric", "champion_ci_low", "champion_ci_high", "sensitive")
    ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    CI_LOW_FIELD_NUMBER: _ClassVar[int]
    CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    HAS_CHAMPION_FIELD_NUMBER: _ClassVar[int]
    CHAMPION_METRIC_FIELD_NUMBER: _ClassVar[int]
    CHAMPION_CI_LOW_FIELD_NUMBER: _ClassVar[int]
    CHAMPION_CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    SENSITIVE_FIELD_NUMBER: _ClassVar[int]
    attribute: str
    value: str
    rows: int
    metric: float
    ci_low: float
    ci_high: float
    has_champion: bool
    champion_metric: float
    champion_ci_low: float
    champion_ci_high: float
    sensitive: bool
    def __init__(self, attribute: _Optional[str] = ..., value: _Optional[str] = ..., rows: _Optional[int] = ..., metric: _Optional[float] = ..., ci_low: _Optional[float] = ..., ci_high: _Optional[float] = ..., has_champion: _Optional[bool] = ..., champion_metric: _Optional[float] = ..., champion_ci_low: _Optional[float] = ..., champion_ci_high: _Optional[float] = ..., sensitive: _Optional[bool] = ...) -> None: ...

class SliceReport(_message.Message):
    __slots__ = ("metric", "higher_is_better", "slices", "champion_version", "min_rows")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    HIGHER_IS_BETTER_FIELD_NUMBER: _ClassVar[int]
    SLICES_FIELD_NUMBER: _ClassVar[int]
    CHAMPION_VERSION_FIELD_NUMBER: _ClassVar[int]
    MIN_ROWS_FIELD_NUMBER: _ClassVar[int]
    metric: str
    higher_is_better: bool
    slices: _containers.RepeatedCompositeFieldContainer[SliceMetric]
    champion_version: str
    min_rows: int
    def __init__(self, metric: _Optional[str] = ..., higher_is_better: _Optional[bool] = ..., slices: _Optional[_Iterable[_Union[SliceMetric, _Mapping]]] = ..., champion_version: _Optional[str] = ..., min_rows: _Optional[int] = ...) -> None: ...

class TrainingFailed(_message.Message):
    __slots__ = ("contract_version", "model_name", "retrain_request_id", "reason", "failed_at_ms")
    CONTRACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    RETRAIN_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    contract_version: int
    model_name: str
    retrain_request_id: str
    reason: str
    failed_at_ms: int
    def __init__(self, contract_version: _Optional[int] = ..., model_name: _Optional[str] = ..., retrain_request_id: _Optional[str] = ..., reason: _Optional[str] = ..., failed_at_ms: _Optional[int] = ...) -> None: ...

class ModelPromoted(_message.Message):
    __slots__ = ("contract_version", "model_name", "version", "artifact_sha256", "previous_version", "reason", "promoted_at_ms", "feature_names", "action", "signature", "role", "traffic_fraction")
    CONTRACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_SHA256_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_FRACTION_FIELD_NUMBER: _ClassVar[int]
    contract_version: int
    model_name: str
    version: str
    artifact_sha256: str
    previous_version: str
    reason: str
    promoted_at_ms: int
    feature_names: _containers.RepeatedScalarFieldContainer[str]
    action: str
    signature: str
    role: str
    traffic_fraction: float
    def __init__(self, contract_version: _Optional[int] = ..., model_name: _Optional[str] = ..., version: _Optional[str] = ..., artifact_sha256: _Optional[str] = ..., previous_version: _Optional[str] = ..., reason: _Optional[str] = ..., promoted_at_ms: _Optional[int] = ..., feature_names: _Optional[_Iterable[str]] = ..., action: _Optional[str] = ..., signature: _Optional[str] = ..., role: _Optional[str] = ..., traffic_fraction: _Optional[float] = ...) -> None: ...

class ChallengerVerdict(_message.Message):
    __slots__ = ("contract_version", "model_name", "champion_version", "challenger_version", "phase", "verdict", "metric", "champion_metric", "challenger_metric", "difference", "ci_low", "ci_high", "labelled_rows", "test", "confidence", "reason", "decided_at_ms", "verdict_id", "trace_id", "span_id")
    CONTRACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    CHAMPION_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHALLENGER_VERSION_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    CHAMPION_METRIC_FIELD_NUMBER: _ClassVar[int]
    CHALLENGER_METRIC_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    CI_LOW_FIELD_NUMBER: _ClassVar[int]
    CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    LABELLED_ROWS_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    VERDICT_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    contract_version: int
    model_name: str
    champion_version: str
    challenger_version: str
    phase: str
    verdict: str
    metric: str
    champion_metric: float
    challenger_metric: float
    difference: float
    ci_low: float
    ci_high: float
    labelled_rows: int
    test: str
    confidence: float
    reason: str
    decided_at_ms: int
    verdict_id: str
    trace_id: str
    span_id: str
    def __init__(self, contract_version: _Optional[int] = ..., model_name: _Optional[str] = ..., champion_version: _Optional[str] = ..., challenger_version: _Optional[str] = ..., phase: _Optional[str] = ..., verdict: _Optional[str] = ..., metric: _Optional[str] = ..., champion_metric: _Optional[float] = ..., challenger_metric: _Optional[float] = ..., difference: _Optional[float] = ..., ci_low: _Optional[float] = ..., ci_high: _Optional[float] = ..., labelled_rows: _Optional[int] = ..., test: _Optional[str] = ..., confidence: _Optional[float] = ..., reason: _Optional[str] = ..., decided_at_ms: _Optional[int] = ..., verdict_id: _Optional[str] = ..., trace_id: _Optional[str] = ..., span_id: _Optional[str] = ...) -> None: ...

class RegistryEvent(_message.Message):
    __slots__ = ("contract_version", "model_name", "version", "status", "candidate", "gate_decision", "gate_reason", "champion_metrics", "actor", "action", "why", "at_ms", "sequence", "record_kind", "promoted_sequence", "gate_metrics", "champion_version_at_gate", "registered_at_ms", "gate_definitions_revision", "slices", "command_id", "previous_version", "evidence", "role", "traffic_fraction")
    class ChampionMetricsEntry(_message.Message):
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
    CONTRACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    GATE_DECISION_FIELD_NUMBER: _ClassVar[int]
    GATE_REASON_FIELD_NUMBER: _ClassVar[int]
    CHAMPION_METRICS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    WHY_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    RECORD_KIND_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    GATE_METRICS_FIELD_NUMBER: _ClassVar[int]
    CHAMPION_VERSION_AT_GATE_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    GATE_DEFINITIONS_REVISION_FIELD_NUMBER: _ClassVar[int]
    SLICES_FIELD_NUMBER: _ClassVar[int]
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_FRACTION_FIELD_NUMBER: _ClassVar[int]
    contract_version: int
    model_name: str
    version: str
    status: str
    candidate: ModelCandidate
    gate_decision: str
    gate_reason: str
    champion_metrics: _containers.ScalarMap[str, float]
    actor: str
    action: str
    why: str
    at_ms: int
    sequence: int
    record_kind: str
    promoted_sequence: int
    gate_metrics: _containers.ScalarMap[str, float]
    champion_version_at_gate: str
    registered_at_ms: int
    gate_definitions_revision: int
    slices: SliceReport
    command_id: str
    previous_version: str
    evidence: ChallengerVerdict
    role: str
    traffic_fraction: float
    def __init__(self, contract_version: _Optional[int] = ..., model_name: _Optional[str] = ..., version: _Optional[str] = ..., status: _Optional[str] = ..., candidate: _Optional[_Union[ModelCandidate, _Mapping]] = ..., gate_decision: _Optional[str] = ..., gate_reason: _Optional[str] = ..., champion_metrics: _Optional[_Mapping[str, float]] = ..., actor: _Optional[str] = ..., action: _Optional[str] = ..., why: _Optional[str] = ..., at_ms: _Optional[int] = ..., sequence: _Optional[int] = ..., record_kind: _Optional[str] = ..., promoted_sequence: _Optional[int] = ..., gate_metrics: _Optional[_Mapping[str, float]] = ..., champion_version_at_gate: _Optional[str] = ..., registered_at_ms: _Optional[int] = ..., gate_definitions_revision: _Optional[int] = ..., slices: _Optional[_Union[SliceReport, _Mapping]] = ..., command_id: _Optional[str] = ..., previous_version: _Optional[str] = ..., evidence: _Optional[_Union[ChallengerVerdict, _Mapping]] = ..., role: _Optional[str] = ..., traffic_fraction: _Optional[float] = ...) -> None: ...

class ModelRegistration(_message.Message):
    __slots__ = ("contract_version", "model_name", "request_id", "artifact_sha256", "artifact_size", "requested_by", "requested_at_ms", "description", "trace_id", "span_id")
    CONTRACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_SHA256_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_SIZE_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    contract_version: int
    model_name: str
    request_id: str
    artifact_sha256: str
    artifact_size: int
    requested_by: str
    requested_at_ms: int
    description: str
    trace_id: str
    span_id: str
    def __init__(self, contract_version: _Optional[int] = ..., model_name: _Optional[str] = ..., request_id: _Optional[str] = ..., artifact_sha256: _Optional[str] = ..., artifact_size: _Optional[int] = ..., requested_by: _Optional[str] = ..., requested_at_ms: _Optional[int] = ..., description: _Optional[str] = ..., trace_id: _Optional[str] = ..., span_id: _Optional[str] = ...) -> None: ...
