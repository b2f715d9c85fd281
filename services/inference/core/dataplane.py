"""The transport-free core (MLServer's DataPlane shape): infer / ready / metadata on plain values.

`infer` resolves the model version once (a concurrent swap cannot change it mid-request), builds the feature
matrix from the "input" tensor or from the online store by entity id (one round trip for the whole batch), runs it
through the batcher and hands the served rows to the prediction log.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from typing import Protocol

import numpy as np
from mlops.online_store import OnlineFeatures, OnlineStore

from services.inference.core.batching import Batcher
from services.inference.core.domain import (
    ENTITY_INPUT,
    NUMPY_TO_OIP,
    InferRequest,
    InferResponse,
    ModelInfo,
    ServedBatch,
    Tensor,
    TensorInfo,
)
from services.inference.core.models import ModelRepository, ModelVersion
from services.inference.errors import EntityNotFound, InvalidInput, NoOnlineStore, TooLarge
from services.inference.settings import InferenceSettings


class PredictionSink(Protocol):
    def offer(self, batch: ServedBatch) -> bool: ...


# Called with what the online store returned for a request, inside the request: the edge links its span to the
# feature updates (tracing stays out of the core).
FeaturesSeen = Callable[[list[OnlineFeatures | None]], object]


def _entity_ids(request: InferRequest) -> list[str] | None:
    for t in request.inputs:
        if t.name == ENTITY_INPUT:
            if t.datatype != "BYTES" or len(t.shape) != 1:
                raise InvalidInput(f"must be BYTES [N], got {t.datatype} {list(t.shape)}", tensor=ENTITY_INPUT)
            try:
                return [b.decode("utf-8") if isinstance(b, bytes) else str(b) for b in t.data]
            except UnicodeDecodeError as exc:
                raise InvalidInput(f"entity ids must be UTF-8 ({exc})", tensor=ENTITY_INPUT) from exc
    param = request.parameters.get(ENTITY_INPUT)
    if param is None:
        return None
    if not isinstance(param, str) or not param:
        raise InvalidInput(f"parameter {ENTITY_INPUT!r} must be a non-empty string (comma-separated ids)")
    return [p.strip() for p in param.split(",") if p.strip()]


class DataPlane:
    """The service's decisions on plain values. `features` answers entity ids (None: only tensors are served),
    `predictions` receives each served batch, `on_features` sees what the store returned for a request."""

    def __init__(self, settings: InferenceSettings, repository: ModelRepository, batcher: Batcher,
                 features: OnlineStore | None = None, predictions: PredictionSink | None = None,
                 on_features: FeaturesSeen | None = None):
        self.settings, self.repository, self._batcher = settings, repository, batcher
        self._features, self._predictions, self._on_features = features, predictions, on_features
        # ids for requests that bring none: a per-process random prefix and a counter (uuid4 reads os.urandom on
        # every call, too dear per request)
        self._id_prefix = uuid.uuid4().hex[:16]
        self._ids = itertools.count(1)

    # --- health and metadata ------------------------------------------------------------------------------------
    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return not self.repository.empty()

    def model_ready(self, name: str, version: str = "") -> bool:
        return self.repository.has(name or self.settings.default_model, version)

    def model_metadata(self, name: str, version: str = "") -> ModelInfo:
        model = self.repository.get(name or self.settings.default_model, version)
        infos = tuple(TensorInfo(s.name, s.datatype, s.shape) for s in model.inputs)
        if self._features is not None:
            infos += (TensorInfo(ENTITY_INPUT, "BYTES", (-1,)),)
        return ModelInfo(model.name, tuple(self.repository.versions(model.name)) or (model.version,),
                         "onnxruntime_onnx", infos, tuple(TensorInfo(s.name, s.datatype, s.shape)
                                                          for s in model.outputs))

    # --- inference -------------------------------------------------------------------------------------------
    async def infer(self, request: InferRequest) -> InferResponse:
        started = time.perf_counter()
        model = self.repository.get(request.model_name or self.settings.default_model, request.model_version)
        request_id = request.id or f"{self._id_prefix}-{next(self._ids)}"
        known = {model.input.name, ENTITY_INPUT}
        unknown = [t.name for t in request.inputs if t.name not in known]
        if unknown:
            raise InvalidInput(f"unknown input(s) {unknown}; model {model.name}:{model.version} takes "
                               f"{model.input.name!r} FP32 [N, {model.n_features}] or {ENTITY_INPUT!r} BYTES [N]")
        entity_ids = _entity_ids(request)
        as_of: list[int] | None = None
        x_tensor = next((t for t in request.inputs if t.name == model.input.name), None)
        if x_tensor is not None:
            x = self._features_from_tensor(model, x_tensor)
            if entity_ids is not None and len(entity_ids) != len(x):
                raise InvalidInput(f"{len(entity_ids)} entity ids for {len(x)} rows")
        elif entity_ids is not None:
            self._check_rows(len(entity_ids))
            x, as_of = await self._features_from_store(model, entity_ids)
        else:
            raise InvalidInput(f"request needs input {model.input.name!r} FP32 [N, {model.n_features}] or "
                               f"{ENTITY_INPUT!r} BYTES [N]")
        outs = await self._batcher.submit(model, x)
        outputs = self._outputs(model, outs, request.outputs)
        if self._predictions is not None:
            self._log(model, request_id, x, outs, entity_ids, as_of, started)
        return InferResponse(model.name, model.version, request_id, outputs)

    def _check_rows(self, n: int) -> None:
        if n > self.settings.max_request_rows:
            raise TooLarge(n, self.settings.max_request_rows)
        if n == 0:
            raise InvalidInput("request has no rows")

    def _features_from_tensor(self, model: ModelVersion, t: Tensor) -> np.ndarray:
        k = model.n_features
        if t.datatype != model.input.datatype:
            raise InvalidInput(f"must be {model.input.datatype}, got {t.datatype}", tensor=t.name)
        if len(t.shape) != 2 or t.shape[1] != k:
            raise InvalidInput(f"must have shape [N, {k}], got {list(t.shape)}", tensor=t.name)
        self._check_rows(t.shape[0])
        x = t.data
        assert isinstance(x, np.ndarray)
        if not self.settings.allow_nan and not np.isfinite(x).all():
            bad = np.argwhere(~np.isfinite(x))[0]
            column = model.feature_names[bad[1]] if bad[1] < len(model.feature_names) else "?"
            raise InvalidInput(f"NaN/Inf value at row {bad[0]}, column {bad[1]} ({column})", tensor=t.name)
        return x

    async def _features_from_store(
        self, model: ModelVersion, entity_ids: list[str]
    ) -> tuple[np.ndarray, list[int]]:
        if self._features is None:
            raise NoOnlineStore()
        found = await self._features.read_many(entity_ids)  # one round trip for the batch
        if self._on_features is not None:
            self._on_features(found)
        default = self.settings.missing_entity_default
        missing = [e for e, f in zip(entity_ids, found, strict=True) if f is None]
        if missing and default is None:
            raise EntityNotFound(missing)
        names = model.feature_names
        x = np.empty((len(entity_ids), len(names)), dtype=np.float32)
        as_of: list[int] = []
        for i, f in enumerate(found):
            if f is None:
                x[i] = default
                as_of.append(0)
                continue
            try:
                x[i] = [f.values[n] for n in names]
            except KeyError as exc:
                raise InvalidInput(f"entity {f.entity_id!r}: online view lacks feature {exc.args[0]!r} that "
                                   f"model {model.name}:{model.version} needs") from exc
            as_of.append(f.as_of_ms)
        if not self.settings.allow_nan and not np.isfinite(x).all():
            row = int(np.argwhere(~np.isfinite(x))[0][0])
            raise InvalidInput(f"online features of entity {entity_ids[row]!r} contain NaN/Inf")
        return x, as_of

    @staticmethod
    def _outputs(model: ModelVersion, outs: list[np.ndarray], wanted: list[str]) -> list[Tensor]:
        by_name = {spec.name: (spec, arr) for spec, arr in zip(model.outputs, outs, strict=True)}
        names = wanted or [s.name for s in model.outputs]
        missing = [n for n in names if n not in by_name]
        if missing:
            raise InvalidInput(f"unknown output(s) {missing}; model has {list(by_name)}")
        result = []
        for n in names:
            spec, arr = by_name[n]
            arr = np.ascontiguousarray(arr)
            result.append(Tensor(n, NUMPY_TO_OIP.get(arr.dtype, spec.datatype), tuple(arr.shape), arr))
        return result

    def _log(self, model: ModelVersion, request_id: str, x: np.ndarray, outs: list[np.ndarray],
             entity_ids: list[str] | None, as_of: list[int] | None, started: float) -> None:
        by_name = {spec.name: arr for spec, arr in zip(model.outputs, outs, strict=True)}
        probs = by_name.get("probabilities")
        labels = by_name.get("label")
        assert self._predictions is not None
        self._predictions.offer(ServedBatch(
            request_id, model.name, model.version, model.feature_names, x, probs, labels, entity_ids, as_of,
            int((time.perf_counter() - started) * 1e6), int(time.time() * 1000),
        ))


