"""The transport-free core (MLServer's DataPlane shape): infer / ready / metadata on plain values.

What is served comes from the definitions revision in force (a `Catalog`, swapped whole by `use`): a request names
a declared model, which serves its promoted champion (or a retained version). `infer` resolves the declaration and
the version once (a concurrent swap cannot change them mid-request), builds the input matrix from the "input"
tensor or from the model's online views by entity id (`features.assemble`: one read per view for the whole
batch), runs it through the batcher and hands the served rows to the prediction log.

A model may serve a second version beside its champion (`core.challengers`): a canary answers its share of
requests itself (sticky by the first entity id; its rows logged with role "canary"), a shadow or guard is handed
its share of requests after the champion answered, to be scored by the mirror off the response path. A request
that names a version gets that version, never a second one.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from mlops.online_store import OnlineFeatures, OnlineStore

from services.inference.core.batching import Batcher
from services.inference.core.catalog import Catalog, ModelSpec
from services.inference.core.challengers import Mirror, MirrorJob, columns_for, share
from services.inference.core.domain import (
    CANARY,
    CHAMPION,
    ENTITY_INPUT,
    MODEL_INPUT,
    InferRequest,
    InferResponse,
    ModelInfo,
    ServedBatch,
    Tensor,
    TensorInfo,
)
from services.inference.core.explain import EXPLAIN_OUTPUTS, explain_outputs
from services.inference.core.features import assemble
from services.inference.core.models import Challenger, ModelRepository, ModelVersion
from services.inference.core.outputs import Binding, served_output
from services.inference.errors import (
    InvalidInput,
    ModelMismatch,
    ModelNotFound,
    NoDefinitions,
    NoOnlineStore,
    TooLarge,
)
from services.inference.metrics import MIRROR_DROPPED
from services.inference.settings import InferenceSettings

log = logging.getLogger("mlops.inference")


class PredictionSink(Protocol):
    def offer(self, batch: ServedBatch) -> bool: ...


# Called with what the online store returned for a request, inside the request: the edge links its span to the
# feature updates (tracing stays out of the core).
FeaturesSeen = Callable[[Sequence[OnlineFeatures | None]], object]
# Called inside a mirrored request: the edge's trace context of it, carried to the rows logged off the request.
TraceContext = Callable[[], object]


Resolved = tuple[ModelSpec, ModelVersion, Binding]  # a version with the declaration it is read under


def _inputs_of(spec: ModelSpec, champion: ModelSpec, x: np.ndarray) -> np.ndarray | None:
    """`x` (rows of `champion`'s inputs) as `spec`'s inputs; None when `spec` reads a feature `champion` does not."""
    if spec is champion:
        return x
    columns = columns_for(champion, spec)
    return None if columns is None else x[:, columns]


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
    `predictions` receives each served batch, `on_features` sees what the store returned for a request, `mirror`
    scores the shadow/guard share of requests off the response path (None, or no `predictions`: nothing is
    mirrored), `context` gives a request's trace context for its mirrored rows. Nothing is served until `use`
    gives it the catalog of a definitions revision."""

    def __init__(self, settings: InferenceSettings, repository: ModelRepository, batcher: Batcher,
                 features: OnlineStore | None = None, predictions: PredictionSink | None = None,
                 on_features: FeaturesSeen | None = None, catalog: Catalog | None = None,
                 mirror: Mirror | None = None, context: TraceContext | None = None):
        self.settings, self.repository, self._batcher = settings, repository, batcher
        self._features, self._predictions, self._on_features = features, predictions, on_features
        self._mirror, self._context = mirror, context
        self._misfits: set[tuple[str, str]] = set()
        self.catalog = catalog
        # ids for requests that bring none: a per-process random prefix and a counter (uuid4 reads os.urandom on
        # every call, too dear per request)
        self._id_prefix = uuid.uuid4().hex[:16]
        self._ids = itertools.count(1)

    def use(self, catalog: Catalog) -> None:
        """Serve what `catalog` declares from now on (one reference swap: requests in flight keep theirs)."""
        self.catalog = catalog

    # --- health and metadata ------------------------------------------------------------------------------------
    def live(self) -> bool:
        return True

    def served(self) -> list[str]:
        """Declared models that have a promoted version loaded."""
        catalog = self.catalog
        return [] if catalog is None else [n for n in sorted(catalog.models) if self.repository.has(n)]

    def ready(self) -> bool:
        return bool(self.served())

    def model_ready(self, name: str, version: str = "") -> bool:
        try:
            self._resolve(name, version)
        except (ModelNotFound, ModelMismatch, NoDefinitions):
            return False
        return True

    def model_metadata(self, name: str, version: str = "") -> ModelInfo:
        spec, model, _ = self._resolve(name, version)
        inputs = (TensorInfo(MODEL_INPUT, "FP32", (-1, spec.k), {"feature_names": ",".join(spec.feature_names)}),)
        if self._features is not None and spec.entity_join:
            inputs = (TensorInfo(ENTITY_INPUT, "BYTES", (-1,)), *inputs)
        return ModelInfo(spec.name, tuple(self.repository.versions(spec.name)) or (model.version,),
                         "onnxruntime_onnx", inputs,
                         (TensorInfo(spec.output.name, "FP32", (-1, spec.output.width)),))

    def _resolve(self, name: str, version: str) -> Resolved:
        catalog = self.catalog
        if catalog is None:
            raise NoDefinitions()
        name = name or self.settings.default_model
        if name not in catalog.models:
            raise ModelNotFound(name, served=self.served(), reason="is not declared")
        try:
            model = self.repository.get(name, version)
        except ModelNotFound:
            raise ModelNotFound(name, version, served=self.served(), reason="is not loaded" if version else
                                "is declared but has no promoted version yet") from None
        spec = catalog.for_inputs(name, model.feature_names)  # the inputs this version was trained on
        return spec, model, model.bound(spec)

    # --- inference -------------------------------------------------------------------------------------------
    async def infer(self, request: InferRequest) -> InferResponse:
        started = time.perf_counter()
        spec, model, binding = self._resolve(request.model_name, request.model_version)
        request_id = request.id or f"{self._id_prefix}-{next(self._ids)}"
        x_tensor: Tensor | None = None
        for t in request.inputs:
            if t.name == MODEL_INPUT:
                x_tensor = t
            elif t.name != ENTITY_INPUT:
                raise InvalidInput(f"unknown input {t.name!r}; model {spec.name} takes {MODEL_INPUT!r} FP32 "
                                   f"[N, {spec.k}] or {ENTITY_INPUT!r} BYTES [N]")
        unknown = [n for n in request.outputs if n != spec.output.name and n not in EXPLAIN_OUTPUTS]
        if unknown:
            raise InvalidInput(f"unknown output(s) {unknown}; model {spec.name} has {[spec.output.name]}")
        entity_ids = _entity_ids(request)
        # a request naming a version gets that version; otherwise the model's second version may take it
        second = None if request.model_version else self.repository.challenger(spec.name)
        canary: Resolved | None = None  # the canary, when it answers this request (sticky by its first entity)
        if second is not None and second.role == CANARY:
            if share(entity_ids[0] if entity_ids else request_id) < second.fraction:
                canary = self._bound(spec.name, second.model)
            second = None
        as_of: list[int] | None = None
        if x_tensor is not None:
            x = self._features_from_tensor(spec, x_tensor)  # the client's contract: the champion's inputs
            if entity_ids is not None and len(entity_ids) != len(x):
                raise InvalidInput(f"{len(entity_ids)} entity ids for {len(x)} rows")
            if canary is not None:  # the canary's own columns, or the champion answers
                mapped = _inputs_of(canary[0], spec, x)
                x, canary = (x, None) if mapped is None else (mapped, canary)
        elif entity_ids is not None:
            self._check_rows(len(entity_ids))
            x, as_of = await self._features_from_store(canary[0] if canary is not None else spec, entity_ids)
        else:
            raise InvalidInput(f"request needs input {MODEL_INPUT!r} FP32 [N, {spec.k}] or {ENTITY_INPUT!r} "
                               "BYTES [N]")
        role = CHAMPION
        if canary is not None:
            (spec, model, binding), role = canary, CANARY
        output = served_output(binding, await self._batcher.submit(model, x))
        if self._predictions is not None:
            self._predictions.offer(ServedBatch(
                request_id, spec.name, model.version, spec.task, spec.classes, spec.feature_names, x, output,
                entity_ids, as_of, int((time.perf_counter() - started) * 1e6), int(time.time() * 1000), role))
            if second is not None and self._mirror is not None and (
                    second.fraction >= 1.0 or share(request_id) < second.fraction):
                self._mirror_request(spec, second, request_id, x, entity_ids, as_of, started)
        return InferResponse(spec.name, model.version, request_id,
                             [Tensor(spec.output.name, "FP32", output.shape, output),
                              *explain_outputs(request.parameters, model, binding, x)])

    def _bound(self, name: str, model: ModelVersion) -> Resolved | None:
        """`model` (a second version) read with its own inputs under the declarations in force; None when it no
        longer fits them (the champion serves alone: a second version never fails a request)."""
        catalog = self.catalog
        try:
            assert catalog is not None
            spec = catalog.for_inputs(name, model.feature_names)
            return spec, model, model.bound(spec)
        except (ModelMismatch, ModelNotFound) as exc:
            if (name, model.version) not in self._misfits:  # once per version, not once per request
                self._misfits.add((name, model.version))
                log.warning("second version does not fit the declarations; the champion serves alone",
                            extra={"fields": {"model": name, "version": model.version, "error": str(exc)}})
            return None

    def _mirror_request(self, spec: ModelSpec, second: Challenger, request_id: str, x: np.ndarray,
                        entity_ids: list[str] | None, as_of: list[int] | None, started: float) -> None:
        """Hand the request's rows to the mirror for `second` (shadow or guard); never waits."""
        assert self._mirror is not None
        bound = self._bound(spec.name, second.model)
        mapped = _inputs_of(bound[0], spec, x) if bound is not None else None
        if bound is None or mapped is None:
            MIRROR_DROPPED.labels(spec.name, second.role, "inputs").inc()
            return
        self._mirror.offer(MirrorJob(second.model, bound[2], bound[0], second.role, request_id, mapped, entity_ids,
                                     as_of, started, self._context() if self._context is not None else None))

    def _check_rows(self, n: int) -> None:
        if n > self.settings.max_request_rows:
            raise TooLarge(n, self.settings.max_request_rows)
        if n == 0:
            raise InvalidInput("request has no rows")

    def _features_from_tensor(self, spec: ModelSpec, t: Tensor) -> np.ndarray:
        k = spec.k
        if t.datatype != "FP32":
            raise InvalidInput(f"must be FP32, got {t.datatype}", tensor=t.name)
        if len(t.shape) != 2 or t.shape[1] != k:
            raise InvalidInput(f"must have shape [N, {k}], got {list(t.shape)}", tensor=t.name)
        self._check_rows(t.shape[0])
        x = t.data
        assert isinstance(x, np.ndarray)
        if not self.settings.allow_nan and not np.isfinite(x).all():
            bad = np.argwhere(~np.isfinite(x))[0]
            raise InvalidInput(f"NaN/Inf value at row {bad[0]}, column {bad[1]} ({spec.feature_names[bad[1]]})",
                               tensor=t.name)
        return x

    async def _features_from_store(self, spec: ModelSpec, entity_ids: list[str]) -> tuple[np.ndarray, list[int]]:
        if self._features is None:
            raise NoOnlineStore()
        if not spec.entity_join:
            raise InvalidInput(f"model {spec.name} declares serving.entity_join: false; send {MODEL_INPUT!r}",
                               tensor=ENTITY_INPUT)
        assembled = await assemble(self._features, spec, entity_ids)
        if self._on_features is not None:
            self._on_features(assembled.seen)
        return assembled.x, assembled.as_of_ms
