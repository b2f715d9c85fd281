"""Plain values of the data plane (requests, responses, model metadata, promotions, served batches): no protobuf,
no gRPC."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from mlops.definitions import Task

# Roles a served version plays (`ModelPromoted.role`, `PredictionBatch.role`): the champion answers clients; one
# second version per model may run beside it — shadow and guard are mirrored (scored off the response path, logged,
# never returned), canary answers a share of requests itself.
CHAMPION, SHADOW, CANARY, GUARD = "champion", "shadow", "canary", "guard"
CHALLENGER_ROLES = frozenset({SHADOW, CANARY, GUARD})
MIRRORED_ROLES = frozenset({SHADOW, GUARD})

# Open Inference Protocol datatype → numpy dtype (little-endian); BYTES is a list of bytes objects.
OIP_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"), "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"), "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
}
NUMPY_TO_OIP = {v: k for k, v in OIP_TO_NUMPY.items()}

ENTITY_INPUT = "entity_id"
MODEL_INPUT = "input"  # the feature matrix, FP32 [N, k] in the declared feature order


@dataclass
class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray | list[bytes]


@dataclass
class InferRequest:
    model_name: str
    model_version: str = ""
    id: str = ""
    inputs: list[Tensor] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)  # requested output names; empty: all
    parameters: dict[str, object] = field(default_factory=dict)


@dataclass
class InferResponse:
    model_name: str
    model_version: str
    id: str
    outputs: list[Tensor]


@dataclass(frozen=True)
class TensorInfo:
    name: str
    datatype: str
    shape: tuple[int, ...]
    parameters: dict[str, str] = field(default_factory=dict)  # e.g. the input's feature names


@dataclass(frozen=True)
class ModelInfo:
    name: str
    versions: tuple[str, ...]
    platform: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]


@dataclass(frozen=True)
class Promotion:
    """A change announced on `model.promoted`: which version to serve in which role (champion, or a second version
    with its share of traffic) and where its bytes are; action "retire" withdraws the second version."""

    model_name: str
    version: str
    artifact_sha256: str
    feature_names: tuple[str, ...]
    action: str = "promote"
    role: str = CHAMPION
    traffic_fraction: float = 0.0

    @property
    def challenger(self) -> bool:
        """About the second version (key `<model>/challenger`), not the champion (an unknown role is refused as a
        second version's, never taken for the champion's)."""
        return self.role != CHAMPION or self.action == "retire"

    def problem(self) -> tuple[str, str] | None:
        """(field, what is wrong) when the record cannot be applied as it is: an unknown role, or a second
        version's share of traffic out of (0, 1]."""
        if self.action == "retire" or self.role == CHAMPION:
            return None
        if self.role not in CHALLENGER_ROLES:
            return "role", f"is {self.role!r}; a second version is one of {sorted(CHALLENGER_ROLES)}"
        if not 0.0 < self.traffic_fraction <= 1.0:
            return "traffic_fraction", f"is {self.traffic_fraction}; a second version takes a share in (0, 1]"
        return None


class _Rows(Protocol):
    request_id: str
    x: np.ndarray
    entity_ids: list[str] | None
    as_of_ms: list[int] | None


def joined_entities(requests: Sequence[_Rows]) -> tuple[list[str] | None, list[int] | None]:
    """Entity ids and as-of times of several requests' rows, in row order: None when no request has any, else ""
    and 0 for the rows of the requests that sent raw features."""
    entities = [e for r in requests for e in (r.entity_ids or [""] * len(r.x))] if any(
        r.entity_ids for r in requests) else None
    as_of = [t for r in requests for t in (r.as_of_ms or [0] * len(r.x))] if any(
        r.as_of_ms for r in requests) else None
    return entities, as_of


def joined_keys(requests: Sequence[_Rows]) -> list[str]:
    """Per row, the key its request's record is partitioned by: its entity, else its request id."""
    return [k for r in requests for k in (r.entity_ids or [r.request_id] * len(r.x))]


@dataclass(slots=True)
class ServedBatch:
    """What one answered request hands to the prediction log: the arrays it already has, nothing copied."""

    request_id: str
    model_name: str
    model_version: str
    task: Task
    classes: tuple[int, ...] | None
    feature_names: tuple[str, ...]
    x: np.ndarray  # float32 [n, k]
    output: np.ndarray  # the served output: probabilities [n, K] or predictions [n, 1]
    entity_ids: list[str] | None
    as_of_ms: list[int] | None
    latency_us: int
    timestamp_ms: int
    role: str = CHAMPION  # who served these rows (shadow and guard rows were never returned)
    trace: object = None  # the request's trace context when it is logged off the request (mirrored rows)
    # rows of several requests (the mirror logs a round's rows together): per row its request id, its index in
    # its request, and the key its request's record was partitioned by (entity id, else request id)
    row_request_ids: list[str] | None = None
    row_index: np.ndarray | None = None
    row_keys: list[str] | None = None
