from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class DefinitionsRevision(_message.Message):
    __slots__ = ("contract_version", "revision", "spec_json", "spec_sha256", "view_versions", "changes", "applied_by", "applied_at_ms", "trace_id")
    class ViewVersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    CONTRACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    SPEC_SHA256_FIELD_NUMBER: _ClassVar[int]
    VIEW_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    APPLIED_BY_FIELD_NUMBER: _ClassVar[int]
    APPLIED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    contract_version: int
    revision: int
    spec_json: bytes
    spec_sha256: str
    view_versions: _containers.ScalarMap[str, int]
    changes: _containers.RepeatedScalarFieldContainer[str]
    applied_by: str
    applied_at_ms: int
    trace_id: str
    def __init__(self, contract_version: _Optional[int] = ..., revision: _Optional[int] = ..., spec_json: _Optional[bytes] = ..., spec_sha256: _Optional[str] = ..., view_versions: _Optional[_Mapping[str, int]] = ..., changes: _Optional[_Iterable[str]] = ..., applied_by: _Optional[str] = ..., applied_at_ms: _Optional[int] = ..., trace_id: _Optional[str] = ...) -> None: ...
