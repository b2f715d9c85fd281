"""Bring your own model: a team's ONNX file checked against its declared model, scored on the holdout a retrain
would build (the latest labelled rows, point-in-time correct), and proposed to the registry like any candidate.

The signature check reads the graph (one FP32 input of width = the declared features; the task's output with the
task's width), then runs the model on the holdout to confirm what a graph may leave symbolic (output widths, a
free input width) and that the outputs are finite numbers.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import numpy as np
from mlops.definitions import Task
from mlops.evaluation import ONNX_OUTPUT, scores

from services.trainer.core.report import explain_or_none, training_means
from services.trainer.core.train import TrainConfig, TrainedModel, TrainingSetLike, onnx_output, prepare
from services.trainer.errors import SignatureMismatch

__all__ = ["BYO_FRAMEWORK", "Signature", "check_signature", "evaluate_byo"]

BYO_FRAMEWORK = "onnx:byo"


@dataclass(frozen=True)
class Signature:
    """What the graph declares: (name, element type, shape) of each input and output; a dim is an int, or None
    when symbolic."""

    inputs: tuple[tuple[str, str, tuple[int | None, ...]], ...]
    outputs: tuple[tuple[str, str, tuple[int | None, ...]], ...]


def read_signature(onnx_bytes: bytes, model: str) -> Signature:
    import onnx

    try:
        graph = onnx.load_from_string(onnx_bytes).graph
    except Exception as exc:  # onnx raises DecodeError and friends: all mean "not a model"
        raise SignatureMismatch(model, f"not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    initializers = {i.name for i in graph.initializer}  # old opsets list weights among the inputs

    def describe(values: object) -> tuple[tuple[str, str, tuple[int | None, ...]], ...]:
        out = []
        for v in values:  # type: ignore[attr-defined]
            if v.name in initializers:
                continue
            tensor = v.type.tensor_type
            elem = onnx.TensorProto.DataType.Name(tensor.elem_type) if v.type.HasField("tensor_type") else "?"
            dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
            out.append((v.name, elem, dims))
        return tuple(out)

    return Signature(describe(graph.input), describe(graph.output))


def _width(task: Task, classes: tuple[int, ...] | None) -> int:
    return {Task.BINARY: 2, Task.REGRESSION: 1}.get(task) or len(classes or ())


def check_signature(onnx_bytes: bytes, config: TrainConfig, n_features: int) -> Signature:
    """Refuse (SignatureMismatch naming what differs) an ONNX model that cannot serve the declared model."""
    sig = read_signature(onnx_bytes, config.name)
    if len(sig.inputs) != 1:
        raise SignatureMismatch(config.name, f"it has {len(sig.inputs)} inputs {[i[0] for i in sig.inputs]}; "
                                             f"one FP32 input [N, {n_features}] is expected")
    name, elem, dims = sig.inputs[0]
    if elem != "FLOAT":
        raise SignatureMismatch(config.name, f"input {name!r} is {elem}, not FLOAT (FP32)")
    if len(dims) != 2:
        raise SignatureMismatch(config.name, f"input {name!r} has rank {len(dims)}, not 2 ([N, {n_features}])")
    if dims[1] is not None and dims[1] != n_features:
        raise SignatureMismatch(config.name, f"input {name!r} has {dims[1]} columns, the model declares "
                                             f"{n_features} features")
    want, width = ONNX_OUTPUT[config.task], _width(config.task, config.classes)
    outputs = {o[0]: o for o in sig.outputs}
    if want not in outputs:
        raise SignatureMismatch(config.name, f"no output {want!r} (a {config.task.value} model's output); its "
                                             f"outputs: {sorted(outputs)}")
    _, o_elem, o_dims = outputs[want]
    if o_elem not in ("FLOAT", "DOUBLE"):
        raise SignatureMismatch(config.name, f"output {want!r} is {o_elem}, not a float tensor")
    if config.task is not Task.REGRESSION and (len(o_dims) != 2 or o_dims[1] not in (None, width)):
        raise SignatureMismatch(config.name, f"output {want!r} has shape {list(o_dims)}, expected [N, {width}]")
    if config.task is Task.REGRESSION and (len(o_dims) not in (1, 2) or (len(o_dims) == 2 and o_dims[1] not in
                                                                           (None, 1))):
        raise SignatureMismatch(config.name, f"output {want!r} has shape {list(o_dims)}, expected [N, 1] or [N]")
    return sig


def _run(onnx_bytes: bytes, X: np.ndarray, config: TrainConfig) -> np.ndarray:  # noqa: N803
    """The task's output on X, checked for shape and finiteness (what a symbolic graph could not promise)."""
    try:
        out = onnx_output(onnx_bytes, X, config.task)
    except Exception as exc:  # onnxruntime's errors (bad graph, wrong width at run time) name the problem
        raise SignatureMismatch(config.name, f"onnxruntime cannot run it on {X.shape[1]} features: "
                                             f"{type(exc).__name__}: {str(exc)[:300]}") from None
    width = _width(config.task, config.classes)
    if config.task is Task.REGRESSION:
        out = out.reshape(len(X), -1) if out.size == len(X) else out
    if out.shape != (len(X), width):
        raise SignatureMismatch(config.name, f"output {ONNX_OUTPUT[config.task]!r} came out {list(out.shape)} "
                                             f"on {len(X)} rows, expected [{len(X)}, {width}]")
    if not np.all(np.isfinite(out)):
        raise SignatureMismatch(config.name, f"output {ONNX_OUTPUT[config.task]!r} holds non-finite values")
    return out


def evaluate_byo(onnx_bytes: bytes, data: TrainingSetLike, config: TrainConfig, expected_features: tuple[str, ...],
                 ) -> TrainedModel:
    """Check the signature, build the holdout exactly as a retrain of the model would (same window, minimum rows
    and time-ordered split) and score the ONNX model on it."""
    t0 = time.perf_counter()
    check_signature(onnx_bytes, config, len(expected_features))
    p = prepare(data, config, expected_features)
    X_ho, y_ho = p.X[p.hold_idx], p.y[p.hold_idx]  # noqa: N806
    out = _run(onnx_bytes, X_ho, config)
    metrics = scores(config.task, y_ho, out, config.classes) | {"holdout_rows": float(len(p.hold_idx))}
    # explained like a trained version; its bytes are the registrant's, so the means travel in the report only
    report = explain_or_none(onnx_bytes, X_ho, y_ho, config.task, config.gate_metric, expected_features,
                           training_means(p.X[p.train_idx]), config.classes, config.seed)
    keep = p.hold_idx[-config.holdout_max_rows:]
    held_times = p.times[p.hold_idx]
    return TrainedModel(
        onnx_bytes=onnx_bytes, sha256=hashlib.sha256(onnx_bytes).hexdigest(), framework=BYO_FRAMEWORK,
        params={"task": config.task.value, "holdout_fraction": repr(config.holdout_fraction)}, metrics=metrics,
        feature_names=tuple(expected_features), holdout_X=np.ascontiguousarray(p.X[keep], dtype=np.float32),
        holdout_y=p.y[keep], train_rows=0, holdout_rows=len(p.hold_idx), data_start_ms=int(held_times.min()),
        data_end_ms=int(held_times.max()), parity_max_diff=0.0, timings_s={"total": time.perf_counter() - t0},
        explainability=report,
    )
