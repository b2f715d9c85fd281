"""The prediction log's contract in plain arrays: `PredictionColumns` (served rows, columnar) to and from the
`PredictionBatch` message, and `read_predictions`, which every reader of `predictions` uses.

The topic carries `PredictionBatch` (one record per request, or per log round holding several requests, either
split by partition: see the proto; `PredictionColumns.split` gives one columns per request); records written before
it are per-row `PredictionRecord`s. Writers write only the batch; readers accept both, told apart by the
`message-type` header (a record without one is read as the batch, the contract now written), so a topic mixed
during an upgrade reads whole. Arrays travel as packed little-endian bytes and are decoded with one numpy call each,
and every length is checked against `rows`, naming the field when it does not fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlops.bus import HEADER_MESSAGE_TYPE, Record
from mlops.contracts import ContractError, models_pb2

__all__ = ["BATCH_TYPE", "RECORD_TYPE", "PredictionColumns", "RequestPart", "from_batch", "from_record",
           "read_predictions", "to_batch"]

BATCH_TYPE = models_pb2.PredictionBatch.DESCRIPTOR.full_name
RECORD_TYPE = models_pb2.PredictionRecord.DESCRIPTOR.full_name
_F32, _I64, _U32 = np.dtype("<f4"), np.dtype("<i8"), np.dtype("<u4")


@dataclass(frozen=True, slots=True)
class RequestPart:
    """One request's share of a record that holds several (the log merges a round's requests): its rows there
    (contiguous, in the record's row order) and what is said once per request."""

    request_id: str
    rows: int
    request_rows: int  # rows of the whole request
    trace_id: str = ""
    span_id: str = ""
    latency_us: int = 0
    timestamp_ms: int = 0


@dataclass(eq=False, slots=True)  # not frozen: built once per request on the serving side, where __init__ counts
class PredictionColumns:
    """The rows of one request (or a share of them) as arrays: `x` [rows, len(feature_names)], `outputs`
    [rows, width], `scores` / `predicted_labels` / `as_of_ms` [rows]; `entity_ids` one per row or empty (raw
    features); `row_index` each row's index in its request; `row_request_ids` one per row or empty (derived)."""

    request_id: str
    model_name: str
    model_version: str
    feature_names: tuple[str, ...]
    x: np.ndarray
    outputs: np.ndarray
    scores: np.ndarray
    predicted_labels: np.ndarray
    entity_ids: tuple[str, ...] | list[str] = ()
    as_of_ms: np.ndarray | None = None
    request_rows: int = 0  # 0: len(x)
    row_index: np.ndarray | None = None  # None: 0 .. rows-1
    row_request_ids: tuple[str, ...] | list[str] = ()
    trace_id: str = ""
    span_id: str = ""
    latency_us: int = 0
    timestamp_ms: int = 0
    role: str = ""  # "" / champion: answered the client; shadow, guard: mirrored, never returned; canary
    # rows of several requests, in row order (the request-level fields above are then the first's); empty: one
    requests: tuple[RequestPart, ...] | list[RequestPart] = ()

    @property
    def rows(self) -> int:
        return len(self.x)

    def split(self) -> list[PredictionColumns]:
        """One columns per request: itself when it holds one, else a view of each request's rows (no copies)."""
        if not self.requests:
            return [self]
        out, start = [], 0
        for r in self.requests:
            stop = start + r.rows
            out.append(PredictionColumns(
                r.request_id, self.model_name, self.model_version, self.feature_names, self.x[start:stop],
                self.outputs[start:stop], self.scores[start:stop], self.predicted_labels[start:stop],
                self.entity_ids[start:stop], None if self.as_of_ms is None else self.as_of_ms[start:stop],
                r.request_rows, None if self.row_index is None else self.row_index[start:stop],
                self.row_request_ids[start:stop], r.trace_id, r.span_id, r.latency_us, r.timestamp_ms, self.role))
            start = stop
        return out

    def request_ids(self) -> list[str]:
        """Each row's request id: given, or the request's id (a one-row request), or `<id>/<row index>`."""
        if self.requests:
            return [rid for part in self.split() for rid in part.request_ids()]
        if self.row_request_ids:
            return list(self.row_request_ids)
        if (self.request_rows or self.rows) == 1:
            return [self.request_id] * self.rows
        index = range(self.rows) if self.row_index is None else self.row_index.tolist()
        prefix = self.request_id + "/"
        return [prefix + str(i) for i in index]

    def entity_list(self) -> list[str]:
        """One entity id per row ("" for rows sent as raw features)."""
        return list(self.entity_ids) if self.entity_ids else [""] * self.rows

    def as_of_list(self) -> list[int]:
        """One as-of time per row (0 for rows sent as raw features)."""
        return self.as_of_ms.tolist() if self.as_of_ms is not None and len(self.as_of_ms) else [0] * self.rows


def to_batch(c: PredictionColumns) -> models_pb2.PredictionBatch:
    """The message of `c`: every array packed as little-endian bytes (one numpy call each). ValueError for
    columns that do not fit the feature names (readers would refuse the record)."""
    n = c.rows
    if c.x.ndim != 2 or c.x.shape[1] != len(c.feature_names):
        raise ValueError(f"features of shape {c.x.shape} for {len(c.feature_names)} feature names")
    msg = models_pb2.PredictionBatch(
        request_id=c.request_id, model_name=c.model_name, model_version=c.model_version, trace_id=c.trace_id,
        span_id=c.span_id, latency_us=c.latency_us, timestamp_ms=c.timestamp_ms, rows=n,
        feature_names=c.feature_names, features_f32=c.x.astype(_F32, copy=False).tobytes(),
        output_width=c.outputs.shape[1] if c.outputs.ndim == 2 else 1,
        outputs_f32=c.outputs.astype(_F32, copy=False).tobytes(),
        scores_f32=c.scores.astype(_F32, copy=False).tobytes(),
        predicted_labels_f32=c.predicted_labels.astype(_F32, copy=False).tobytes(),
        entity_ids=c.entity_ids, request_rows=c.request_rows or n, row_request_ids=c.row_request_ids, role=c.role,
    )
    if c.as_of_ms is not None and len(c.as_of_ms):
        msg.features_as_of_ms_i64 = c.as_of_ms.astype(_I64, copy=False).tobytes()
    if c.row_index is not None:
        msg.row_index_u32 = c.row_index.astype(_U32, copy=False).tobytes()
    if c.requests:
        request = models_pb2.PredictionBatch.Request
        msg.requests.extend([request(request_id=r.request_id, rows=r.rows, request_rows=r.request_rows,
                                     trace_id=r.trace_id, span_id=r.span_id, latency_us=r.latency_us,
                                     timestamp_ms=r.timestamp_ms) for r in c.requests])
    return msg


def _array(msg: models_pb2.PredictionBatch, field: str, dtype: np.dtype, count: int, where: str,
           optional: bool = False) -> np.ndarray | None:
    raw = getattr(msg, field)
    if optional and not raw:
        return None
    if len(raw) != count * dtype.itemsize:
        raise ContractError(BATCH_TYPE, where, f"field {field!r} has {len(raw)} bytes; {msg.rows} rows need "
                                               f"{count * dtype.itemsize}")
    return np.frombuffer(raw, dtype)


def from_batch(msg: models_pb2.PredictionBatch, where: str = "<message>") -> PredictionColumns:
    """The columns of a PredictionBatch; ContractError (naming the field and `where`) when an array does not fit
    `rows`. The arrays are read-only views of the message's bytes."""
    n, k, width = msg.rows, len(msg.feature_names), msg.output_width
    for field in ("entity_ids", "row_request_ids"):
        if len(getattr(msg, field)) not in (0, n):
            raise ContractError(BATCH_TYPE, where, f"field {field!r} has {len(getattr(msg, field))} entries for "
                                                   f"{n} rows")
    requests = tuple(RequestPart(r.request_id, r.rows, r.request_rows or r.rows, r.trace_id, r.span_id, r.latency_us,
                                 r.timestamp_ms) for r in msg.requests)
    if requests and sum(r.rows for r in requests) != n:
        raise ContractError(BATCH_TYPE, where, f"field 'requests' covers {sum(r.rows for r in requests)} rows of {n}")
    x = _array(msg, "features_f32", _F32, n * k, where)
    outputs = _array(msg, "outputs_f32", _F32, n * width, where)
    assert x is not None and outputs is not None
    return PredictionColumns(
        request_id=msg.request_id, model_name=msg.model_name, model_version=msg.model_version,
        feature_names=tuple(msg.feature_names), x=x.reshape(n, k), outputs=outputs.reshape(n, width),
        scores=_array(msg, "scores_f32", _F32, n, where), predicted_labels=_array(  # type: ignore[arg-type]
            msg, "predicted_labels_f32", _F32, n, where),
        entity_ids=list(msg.entity_ids), as_of_ms=_array(msg, "features_as_of_ms_i64", _I64, n, where, True),
        request_rows=msg.request_rows or n, row_index=_array(msg, "row_index_u32", _U32, n, where, True),
        row_request_ids=list(msg.row_request_ids), trace_id=msg.trace_id, span_id=msg.span_id,
        latency_us=msg.latency_us, timestamp_ms=msg.timestamp_ms, role=msg.role, requests=requests,
    )


def from_record(msg: models_pb2.PredictionRecord) -> PredictionColumns:
    """A per-row PredictionRecord (the contract before the batch) as one row of columns: its inputs by name, its
    own request id."""
    names = tuple(msg.inputs)
    return PredictionColumns(
        request_id=msg.request_id, model_name=msg.model_name, model_version=msg.model_version, feature_names=names,
        x=np.array([[msg.inputs[n] for n in names]], dtype=np.float64).reshape(1, len(names)),
        outputs=np.array([list(msg.outputs)], dtype=np.float64), scores=np.array([msg.score]),
        predicted_labels=np.array([msg.predicted_label]), entity_ids=[msg.entity_id] if msg.entity_id else [],
        as_of_ms=np.array([msg.features_as_of_ms], dtype=np.int64), row_request_ids=[msg.request_id],
        trace_id=msg.trace_id, span_id=msg.span_id, latency_us=msg.latency_us, timestamp_ms=msg.timestamp_ms,
    )


def read_predictions(record: Record) -> PredictionColumns:
    """A record of `predictions`, whichever contract its `message-type` header names; ContractError (naming
    topic/partition/offset) for bytes that do not decode or a message type that is not a prediction."""
    message_type = record.header(HEADER_MESSAGE_TYPE) or BATCH_TYPE
    if message_type == BATCH_TYPE:
        return from_batch(record.decode(models_pb2.PredictionBatch), record.where)
    if message_type == RECORD_TYPE:
        return from_record(record.decode(models_pb2.PredictionRecord))
    raise ContractError(message_type, record.where, f"not a prediction (expected {BATCH_TYPE} or {RECORD_TYPE})")
