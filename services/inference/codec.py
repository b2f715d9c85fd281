"""Open Inference Protocol protobuf ↔ domain values (the only module that reads or builds OIP messages)."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
from mlops.contracts.oip import pb2

from services.inference.domain import OIP_TO_NUMPY, InferRequest, InferResponse, ModelInfo, Tensor
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
            raise InvalidInput(f"input {name!r}: truncated BYTES element length at byte {pos}")
        (n,) = _LEN.unpack_from(raw, pos)
        pos += 4
        if pos + n > end:
            raise InvalidInput(f"input {name!r}: BYTES element of {n} bytes runs past the end at byte {pos}")
        out.append(raw[pos:pos + n])
        pos += n
    if len(out) != count:
        raise InvalidInput(f"input {name!r}: {len(out)} BYTES elements for a shape of {count}")
    return out


def encode_bytes_tensor(items: list[bytes]) -> bytes:
    return b"".join(_LEN.pack(len(b)) + b for b in items)


def decode_request(msg: Any) -> InferRequest:
    raw = msg.raw_input_contents
    n_raw = len(raw)
    if n_raw and n_raw != len(msg.inputs):
        raise InvalidInput(f"raw_input_contents has {n_raw} entries for {len(msg.inputs)} inputs")
    inputs = []
    for i, t in enumerate(msg.inputs):
        shape = tuple(t.shape)
        count = 1
        for d in shape:
            if d < 0:
                raise InvalidInput(f"input {t.name!r}: negative dimension in shape {list(shape)}")
            count *= d
        dt = t.datatype
        np_dt = OIP_TO_NUMPY.get(dt)
        if np_dt is None and dt != "BYTES":
            raise InvalidInput(f"input {t.name!r}: unknown datatype {dt!r}")
        data: np.ndarray | list[bytes]
        if n_raw:
            if t.HasField("contents"):
                raise InvalidInput(f"input {t.name!r}: both contents and raw_input_contents given")
            buf = raw[i]
            if np_dt is None:
                data = decode_bytes_tensor(buf, count, t.name)
            else:
                if len(buf) != count * np_dt.itemsize:
                    raise InvalidInput(f"input {t.name!r}: raw_input_contents[{i}] has {len(buf)} bytes; "
                                       f"{dt} {list(shape)} needs {count * np_dt.itemsize}")
                data = np.frombuffer(buf, dtype=np_dt).reshape(shape)  # no copy: a view of the request bytes
        else:
            field = _CONTENTS_FIELD.get(dt)
            if field is None:
                raise InvalidInput(f"input {t.name!r}: {dt} needs raw_input_contents (no typed contents field)")
            values = getattr(t.contents, field)
            if len(values) != count:
                raise InvalidInput(f"input {t.name!r}: {len(values)} values in contents for shape {list(shape)}")
            data = list(values) if np_dt is None else np.asarray(values, dtype=np_dt).reshape(shape)
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


def encode_metadata(info: ModelInfo) -> Any:
    tm = pb2.ModelMetadataResponse.TensorMetadata
    return pb2.ModelMetadataResponse(
        name=info.name, versions=list(info.versions), platform=info.platform,
        inputs=[tm(name=t.name, datatype=t.datatype, shape=t.shape) for t in info.inputs],
        outputs=[tm(name=t.name, datatype=t.datatype, shape=t.shape) for t in info.outputs],
    )
