from mlops.contracts.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RawEvent(_message.Message):
    __slots__ = ("contract_version", "entity_id", "event_time_ms", "schema_version", "values", "event_id", "categories")
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class CategoriesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONTRACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    contract_version: int
    entity_id: str
    event_time_ms: int
    schema_version: int
    values: _containers.ScalarMap[str, float]
    event_id: str
    categories: _containers.ScalarMap[str, str]
    def __init__(self, contract_version: _Optional[int] = ..., entity_id: _Optional[str] = ..., event_time_ms: _Optional[int] = ..., schema_version: _Optional[int] = ..., values: _Optional[_Mapping[str, float]] = ..., event_id: _Optional[str] = ..., categories: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("contract_version", "event_id", "entity_id", "event_time_ms", "ingest_time_ms", "schema_version", "values", "source", "source_name", "categories")
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class CategoriesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONTRACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    INGEST_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_NAME_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    contract_version: int
    event_id: str
    entity_id: str
    event_time_ms: int
    ingest_time_ms: int
    schema_version: int
    values: _containers.ScalarMap[str, float]
    source: _common_pb2.SourcePosition
    source_name: str
    categories: _containers.ScalarMap[str, str]
    def __init__(self, contract_version: _Optional[int] = ..., event_id: _Optional[str] = ..., entity_id: _Optional[str] = ..., event_time_ms: _Optional[int] = ..., ingest_time_ms: _Optional[int] = ..., schema_version: _Optional[int] = ..., values: _Optional[_Mapping[str, float]] = ..., source: _Optional[_Union[_common_pb2.SourcePosition, _Mapping]] = ..., source_name: _Optional[str] = ..., categories: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("contract_version", "original_key", "original_value", "reason", "field", "error_type", "source", "failed_at_ms", "service", "original_headers", "original_size", "original_sha256", "original_truncated")
    class OriginalHeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONTRACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_KEY_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_VALUE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_HEADERS_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_SHA256_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    contract_version: int
    original_key: bytes
    original_value: bytes
    reason: str
    field: str
    error_type: str
    source: _common_pb2.SourcePosition
    failed_at_ms: int
    service: str
    original_headers: _containers.ScalarMap[str, str]
    original_size: int
    original_sha256: str
    original_truncated: bool
    def __init__(self, contract_version: _Optional[int] = ..., original_key: _Optional[bytes] = ..., original_value: _Optional[bytes] = ..., reason: _Optional[str] = ..., field: _Optional[str] = ..., error_type: _Optional[str] = ..., source: _Optional[_Union[_common_pb2.SourcePosition, _Mapping]] = ..., failed_at_ms: _Optional[int] = ..., service: _Optional[str] = ..., original_headers: _Optional[_Mapping[str, str]] = ..., original_size: _Optional[int] = ..., original_sha256: _Optional[str] = ..., original_truncated: _Optional[bool] = ...) -> None: ...

class FeatureVector(_message.Message):
    __slots__ = ("contract_version", "entity_id", "feature_set", "feature_set_version", "as_of_ms", "values", "event_id")
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    CONTRACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SET_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SET_VERSION_FIELD_NUMBER: _ClassVar[int]
    AS_OF_MS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    contract_version: int
    entity_id: str
    feature_set: str
    feature_set_version: int
    as_of_ms: int
    values: _containers.ScalarMap[str, float]
    event_id: str
    def __init__(self, contract_version: _Optional[int] = ..., entity_id: _Optional[str] = ..., feature_set: _Optional[str] = ..., feature_set_version: _Optional[int] = ..., as_of_ms: _Optional[int] = ..., values: _Optional[_Mapping[str, float]] = ..., event_id: _Optional[str] = ...) -> None: ...

class Label(_message.Message):
    __slots__ = ("contract_version", "entity_id", "event_time_ms", "label", "request_id", "event_id")
    CONTRACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    contract_version: int
    entity_id: str
    event_time_ms: int
    label: float
    request_id: str
    event_id: str
    def __init__(self, contract_version: _Optional[int] = ..., entity_id: _Optional[str] = ..., event_time_ms: _Optional[int] = ..., label: _Optional[float] = ..., request_id: _Optional[str] = ..., event_id: _Optional[str] = ...) -> None: ...
