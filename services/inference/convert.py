"""Protobuf ↔ domain values: Open Inference Protocol requests and responses, `ModelPromoted` in and
`PredictionBatch` out (with the edge, the only module that reads or builds generated messages)."""

from __future__ import annotations

import dataclasses
import struct
import zlib
from typing import Any

import numpy as np
from mlops.contracts import models_pb2
from mlops.contracts.oip import pb2
from mlops.prediction_log import PredictionColumns, RequestPart, to_batch

from services.inference.core.domain import (
    CHAMPION,
    OIP_TO_NUMPY,
    InferRequest,
    InferResponse,
    ModelInfo,
    Promotion,
    ServedBatch,
    Tensor,
    TensorInfo,
    joined_entities,
    joined_keys,
)
from services.inference.core.outputs import score_arrays
from services.inference.errors import InvalidInput

_CONTENTS_FIELD = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}
_LEN = struct.Struct("<I")


def parameter_value(p: Any) -> object:
    which = p.WhichOneof("parameter_choice")
    return getattr(p, which) if which else None


def decode_bytes_tensor(raw: bytes, count: int, name: str) -> list[bytes]:
    """BYTES raw contents: each element is a 4-byte little-endian length followed by that many bytes."""
    out: list[bytes] = []
    pos, end = 0, len(raw)
    while pos < end:
        if pos + 4 > end:
            raise InvalidInput(f"truncated BYTES element length at byte {pos}", tensor=name)
        (n,) = _LEN.unpack_from(raw, pos)
        pos += 4
        if pos + n > end:
            raise InvalidInput(f"BYTES element of {n} bytes runs past the end at byte {pos}", tensor=name)
        out.append(raw[pos:pos + n])
        pos += n
    if len(out) != count:
        raise InvalidInput(f"{len(out)} BYTES elements for a shape of {count}", tensor=name)
    return out


def encode_bytes_tensor(items: list[bytes]) -> bytes:
    return b"".join(_LEN.pack(len(b)) + b for b in items)


def _checked(name: str, datatype: str, shape: tuple[int, ...]) -> tuple[int, np.dtype | None]:
    """(element count, numpy dtype — None for BYTES) of a tensor header, or InvalidInput naming the tensor."""
    count = 1
    for d in shape:
        if d < 0:
            raise InvalidInput(f"negative dimension in shape {list(shape)}", tensor=name)
        count *= d
    np_dt = OIP_TO_NUMPY.get(datatype)
    if np_dt is None and datatype != "BYTES":
        raise InvalidInput(f"unknown datatype {datatype!r}", tensor=name)
    return count, np_dt


def tensor_from_values(name: str, datatype: str, shape: tuple[int, ...], values: Any) -> Tensor:
    """A tensor from typed values in row-major order: gRPC's typed `contents`, or REST's JSON `data` (flat or
    nested; BYTES as strings or bytes). The same checks and domain types for both transports."""
    count, np_dt = _checked(name, datatype, shape)
    data: np.ndarray | list[bytes]
    if np_dt is None:
        items = list(_flatten(values))
        try:
            data = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in items]
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"BYTES elements must be strings ({exc})", tensor=name) from None
    else:
        try:
            data = np.asarray(values, dtype=np_dt).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"data is not {datatype} ({exc})", tensor=name) from None
    if len(data) != count:
        raise InvalidInput(f"{len(data)} values in contents for shape {list(shape)}", tensor=name)
    return Tensor(name, datatype, shape, data if np_dt is None else data.reshape(shape))


def _flatten(values: Any) -> Any:
    """The leaves of nested sequences (lists, protobuf repeated fields), strings and bytes being leaves."""
    if isinstance(values, str | bytes | bytearray | int | float):
        yield values
        return
    try:
        items = iter(values)
    except TypeError:
        yield values
        return
    for v in items:
        yield from _flatten(v)


def decode_request(msg: Any) -> InferRequest:
    raw = msg.raw_input_contents
    n_raw = len(raw)
    if n_raw and n_raw != len(msg.inputs):
        raise InvalidInput(f"raw_input_contents has {n_raw} entries for {len(msg.inputs)} inputs")
    inputs = []
    for i, t in enumerate(msg.inputs):
        shape = tuple(t.shape)
        dt = t.datatype
        count, np_dt = _checked(t.name, dt, shape)
        data: np.ndarray | list[bytes]
        if n_raw:
            if t.HasField("contents"):
                raise InvalidInput("both contents and raw_input_contents given", tensor=t.name)
            buf = raw[i]
            if np_dt is None:
                data = decode_bytes_tensor(buf, count, t.name)
            else:
                if len(buf) != count * np_dt.itemsize:
                    raise InvalidInput(f"raw_input_contents[{i}] has {len(buf)} bytes; {dt} {list(shape)} needs "
                                       f"{count * np_dt.itemsize}", tensor=t.name)
                data = np.frombuffer(buf, dtype=np_dt).reshape(shape)  # no copy: a view of the request bytes
        else:
            field = _CONTENTS_FIELD.get(dt)
            if field is None:
                raise InvalidInput(f"{dt} needs raw_input_contents (no typed contents field)", tensor=t.name)
            inputs.append(tensor_from_values(t.name, dt, shape, getattr(t.contents, field)))
            continue
        inputs.append(Tensor(t.name, dt, shape, data))
    params = msg.parameters
    return InferRequest(
        model_name=msg.model_name, model_version=msg.model_version, id=msg.id, inputs=inputs,
        outputs=[o.name for o in msg.outputs] if msg.outputs else [],
        parameters={k: parameter_value(v) for k, v in params.items()} if params else {},
    )


def encode_response(resp: InferResponse) -> Any:
    out = pb2.ModelInferResponse(model_name=resp.model_name, model_version=resp.model_version, id=resp.id)
    for t in resp.outputs:
        out.outputs.add(name=t.name, datatype=t.datatype, shape=t.shape)
        if isinstance(t.data, np.ndarray):
            out.raw_output_contents.append(t.data.tobytes())
        else:
            out.raw_output_contents.append(encode_bytes_tensor(t.data))
    return out


def _tensor_metadata(t: TensorInfo) -> Any:
    """Tensor metadata with its parameters (the input's feature names), in the field MLServer adds to KServe's
    TensorMetadata."""
    meta = pb2.ModelMetadataResponse.TensorMetadata(name=t.name, datatype=t.datatype, shape=t.shape)
    for key, value in t.parameters.items():
        meta.parameters[key].string_param = value
    return meta


def encode_metadata(info: ModelInfo) -> Any:
    return pb2.ModelMetadataResponse(
        name=info.name, versions=list(info.versions), platform=info.platform,
        inputs=[_tensor_metadata(t) for t in info.inputs], outputs=[_tensor_metadata(t) for t in info.outputs],
    )


# --- KServe v2 REST: JSON bodies ↔ the same domain values -------------------------------------------------------
def _field(obj: Any, key: str, kind: type | tuple[type, ...], where: str, default: Any = None) -> Any:
    value = obj.get(key, default) if isinstance(obj, dict) else None
    if value is None and default is None:
        raise InvalidInput(f"{where}.{key} is required")
    if not isinstance(value, kind):
        raise InvalidInput(f"{where}.{key} must be {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
    return value


def decode_json_request(body: Any, model_name: str, model_version: str = "") -> InferRequest:
    """A v2 REST inference request body (`{"id", "parameters", "inputs": [{"name", "shape", "datatype", "data"}],
    "outputs": [{"name"}]}`) → InferRequest, with the same tensor checks as gRPC; errors name the field."""
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object")
    inputs = []
    for i, t in enumerate(_field(body, "inputs", list, "request")):
        where = f"inputs[{i}]"
        name = _field(t, "name", str, where)
        shape = _field(t, "shape", list, where)
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise InvalidInput(f"{where}.shape must be a list of integers, got {shape!r}", tensor=name)
        data = _field(t, "data", (list, str, int, float, bool), where)
        inputs.append(tensor_from_values(name, _field(t, "datatype", str, where), tuple(shape), data))
    outputs = [_field(o, "name", str, f"outputs[{i}]") for i, o in
               enumerate(_field(body, "outputs", list, "request", default=[]))]
    return InferRequest(model_name=model_name, model_version=model_version,
                        id=_field(body, "id", str, "request", default=""), inputs=inputs, outputs=outputs,
                        parameters=dict(_field(body, "parameters", dict, "request", default={})))


def encode_json_response(resp: InferResponse) -> dict[str, Any]:
    """InferResponse → a v2 REST response body: each tensor's data flat in row-major order, BYTES as strings."""
    outputs = []
    for t in resp.outputs:
        data = t.data.reshape(-1).tolist() if isinstance(t.data, np.ndarray) else \
            [b.decode("utf-8", "replace") for b in t.data]
        outputs.append({"name": t.name, "datatype": t.datatype, "shape": list(t.shape), "data": data})
    return {"model_name": resp.model_name, "model_version": resp.model_version, "id": resp.id, "outputs": outputs}


def metadata_json(info: ModelInfo) -> dict[str, Any]:
    """ModelInfo → a v2 REST model metadata body (with each tensor's parameters, as on gRPC)."""
    def tensor(t: TensorInfo) -> dict[str, Any]:
        out: dict[str, Any] = {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
        return out | ({"parameters": dict(t.parameters)} if t.parameters else {})

    return {"name": info.name, "versions": list(info.versions), "platform": info.platform,
            "inputs": [tensor(t) for t in info.inputs], "outputs": [tensor(t) for t in info.outputs]}


def promotion(msg: models_pb2.ModelPromoted) -> Promotion:
    return Promotion(msg.model_name, msg.version, msg.artifact_sha256, tuple(msg.feature_names),
                     msg.action or "promote", msg.role or CHAMPION, msg.traffic_fraction)


def _partition_groups(keys: list[str], partitions: int) -> list[np.ndarray] | None:
    """Row indices per partition of `predictions` that the rows' keys (entity ids) hash to (librdkafka's default
    partitioner: CRC-32 of the key), or None when they all land in one."""
    if partitions <= 1 or len(keys) <= 1:
        return None
    part = np.fromiter((zlib.crc32(e.encode()) for e in keys), np.uint32, len(keys)) % partitions
    if (part == part[0]).all():
        return None
    order = np.argsort(part, kind="stable")
    cuts = np.flatnonzero(np.diff(part[order])) + 1
    return np.split(order, cuts)


# a merged record stays far below Kafka's default 1 MB message limit (a single larger request goes on its own)
MERGE_BYTES = 256 << 10


def logged_bytes(batch: ServedBatch) -> int:
    """About what a batch's rows add to a record: features and outputs, and per row its scores, as-of time, index
    and an entity id of up to ~40 characters."""
    return batch.x.nbytes + batch.output.nbytes + 64 * len(batch.x)


def round_batches(items: list[tuple[ServedBatch, str, str]],
                  partitions: int = 1) -> list[tuple[str, models_pb2.PredictionBatch]]:
    """(key, PredictionBatch) for the served batches of one log round, each given with its request's trace and span
    id: the requests of one model version and role merged into one record per partition of `predictions` (each
    request's id, trace, latency and time in `requests`; every row where `prediction_batches` would put it), up to
    about MERGE_BYTES a record. Mirrored batches (rows of several requests already) go on their own."""
    out: list[tuple[str, models_pb2.PredictionBatch]] = []
    groups: dict[tuple[str, str, str], list[tuple[ServedBatch, str, str]]] = {}
    for item in items:
        b, trace_id, span_id = item
        if b.row_request_ids is not None:
            out += prediction_batches(b, partitions, trace_id, span_id)
        else:
            groups.setdefault((b.model_name, b.model_version, b.role), []).append(item)
    for group in groups.values():
        chunk: list[tuple[ServedBatch, str, str]] = []
        size = 0
        for item in group:
            size += logged_bytes(item[0])
            if chunk and size > MERGE_BYTES:
                out += _merged_batches(chunk, partitions)
                chunk, size = [], logged_bytes(item[0])
            chunk.append(item)
        out += _merged_batches(chunk, partitions)
    return out


def _merged_batches(chunk: list[tuple[ServedBatch, str, str]],
                    partitions: int) -> list[tuple[str, models_pb2.PredictionBatch]]:
    if len(chunk) == 1:
        return prediction_batches(chunk[0][0], partitions, chunk[0][1], chunk[0][2])
    batches = [b for b, _, _ in chunk]
    if partitions > 1 and not any(b.entity_ids for b in batches):  # raw features: each request by its id's hash
        by_partition: dict[int, list[tuple[ServedBatch, str, str]]] = {}
        for item in chunk:
            by_partition.setdefault(zlib.crc32(item[0].request_id.encode()) % partitions, []).append(item)
        if len(by_partition) > 1:
            return [record for share in by_partition.values() for record in _merged_batches(share, 1)]
    parts = [RequestPart(b.request_id, len(b.x), len(b.x), trace_id, span_id, b.latency_us, b.timestamp_ms)
             for b, trace_id, span_id in chunk]
    entities, as_of = joined_entities(batches)
    first = batches[0]
    merged = ServedBatch(
        first.request_id, first.model_name, first.model_version, first.task, first.classes, first.feature_names,
        np.concatenate([b.x for b in batches]), np.concatenate([b.output for b in batches]), entities, as_of,
        first.latency_us, first.timestamp_ms, first.role,
        row_keys=joined_keys(batches) if entities else None)  # raw features only: split by partition above
    return prediction_batches(merged, partitions, chunk[0][1], chunk[0][2], parts)


def _parts_of(rows: np.ndarray, owner: np.ndarray, parts: list[RequestPart]) -> list[RequestPart]:
    """The requests that `rows` (ascending indices into a merged batch) belong to, each with its count of them."""
    who = owner[rows]
    starts = np.flatnonzero(np.diff(who, prepend=-1))
    counts = np.diff(starts, append=len(who))
    return [dataclasses.replace(parts[who[s]], rows=c) for s, c in zip(starts.tolist(), counts.tolist(), strict=True)]


def prediction_batches(batch: ServedBatch, partitions: int = 1, trace_id: str = "", span_id: str = "",
                       parts: list[RequestPart] | None = None) -> list[tuple[str, models_pb2.PredictionBatch]]:
    """The served batch as (key, PredictionBatch): one per request, or one per partition of `predictions` its
    rows' entities hash to, keyed by one of those entities (so each row lies in its entity's partition, as the
    monitor's label join expects); keyed by the request id when raw features were sent. Each carries the batch's
    role. Rows of several requests: mirrored (one batch per mirror round) carry each row's request id and go where
    their request's champion rows went (by `row_keys`); merged by the log (`parts`: the requests, in row order)
    carry the requests each record holds. Arrays only: no per-row objects beyond the entity ids the requests
    brought."""
    scores, labels = score_arrays(batch.task, batch.output, batch.classes)
    n = len(batch.x)
    cols = PredictionColumns(
        request_id=batch.request_id, model_name=batch.model_name, model_version=batch.model_version,
        feature_names=batch.feature_names or tuple(f"f{i}" for i in range(batch.x.shape[1])), x=batch.x,
        outputs=batch.output, scores=scores, predicted_labels=labels, entity_ids=batch.entity_ids or (),
        as_of_ms=np.asarray(batch.as_of_ms, dtype=np.int64) if batch.as_of_ms else None, request_rows=n,
        row_index=batch.row_index, row_request_ids=batch.row_request_ids or (), trace_id=trace_id, span_id=span_id,
        latency_us=batch.latency_us, timestamp_ms=batch.timestamp_ms, role=batch.role, requests=parts or (),
    )
    ids = batch.entity_ids
    keys = batch.row_keys or ids  # rows of several requests follow their own request's key
    groups = _partition_groups(keys, partitions) if keys else None
    if groups is None:
        if parts:
            cols.request_rows = parts[0].request_rows
        return [(keys[0] if keys else batch.request_id, to_batch(cols))]
    x, output, as_of, row_ids, row_index = cols.x, cols.outputs, cols.as_of_ms, batch.row_request_ids, batch.row_index
    if parts:  # each row's request, and its index there
        counts = [p.rows for p in parts]
        owner = np.repeat(np.arange(len(parts)), counts)
        row_index = np.arange(n) - np.repeat(np.cumsum([0, *counts[:-1]]), counts)
    out = []
    for rows in groups:
        cols.x, cols.outputs, cols.scores, cols.predicted_labels = x[rows], output[rows], scores[rows], labels[rows]
        index = rows.tolist()
        cols.entity_ids = [ids[i] for i in index] if ids else ()
        cols.row_index = rows if row_index is None else row_index[rows]
        cols.row_request_ids = [row_ids[i] for i in index] if row_ids else ()
        cols.as_of_ms = as_of[rows] if as_of is not None else None
        if parts:  # the record's request-level fields are its first request's
            cols.requests = _parts_of(rows, owner, parts)
            head = cols.requests[0]
            cols.request_id, cols.trace_id, cols.span_id = head.request_id, head.trace_id, head.span_id
            cols.latency_us, cols.timestamp_ms = head.latency_us, head.timestamp_ms
            cols.request_rows = head.request_rows
        out.append((keys[index[0]], to_batch(cols)))
    return out
