"""Model versions (one onnxruntime session each) and the repository that holds the champion, recent versions and
the one second version (shadow, canary or guard) a model may serve beside its champion.

Swaps are a single reference assignment under a lock: a request resolves its ModelVersion once and keeps it, so
in-flight requests finish on the session they started with while new requests see the new champion.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnxruntime as ort

from services.inference.core.catalog import Catalog, ModelSpec
from services.inference.core.domain import Promotion
from services.inference.core.outputs import Binding, bind
from services.inference.errors import BadPromotion, ModelLoadError, ModelNotFound
from services.inference.metrics import CHALLENGER_TRAFFIC, MODEL_IN_SERVICE, MODEL_SWAPS

log = logging.getLogger("mlops.inference")

# onnxruntime element type → Open Inference Protocol datatype
ORT_TO_OIP = {
    "tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(float16)": "FP16",
    "tensor(int64)": "INT64", "tensor(int32)": "INT32", "tensor(int16)": "INT16", "tensor(int8)": "INT8",
    "tensor(uint64)": "UINT64", "tensor(uint32)": "UINT32", "tensor(uint16)": "UINT16", "tensor(uint8)": "UINT8",
    "tensor(bool)": "BOOL", "tensor(string)": "BYTES",
}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str  # OIP datatype
    shape: tuple[int, ...]  # -1 for dynamic dimensions


def _spec(arg: ort.NodeArg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else -1 for d in (arg.shape or ()))
    return TensorSpec(arg.name, ORT_TO_OIP.get(arg.type, arg.type), shape)


@dataclass(frozen=True)
class SessionOptions:
    intra_op_threads: int = 1
    use_cuda: bool = True


_cuda_works: bool | None = None  # learnt from the first session: onnxruntime-gpu lists CUDA even without CUDA libs


def _cuda_usable() -> bool:
    return _cuda_works is not False and "CUDAExecutionProvider" in ort.get_available_providers()


def build_session(data: bytes, options: SessionOptions, model: str) -> tuple[ort.InferenceSession, list[str]]:
    """An onnxruntime session for `data` (the artifact of `model`, "name:version"); CUDA when asked for and it
    really works, else CPU. Returns the session and the providers it actually got (onnxruntime-gpu lists CUDA even
    where it cannot load it)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = options.intra_op_threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # CUDA load failures are reported below, once, by us
    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"] if options.use_cuda and _cuda_usable() else [
        "CPUExecutionProvider"
    ]
    try:
        session = ort.InferenceSession(data, sess_options=so, providers=wanted)
    except Exception as exc:
        if wanted[0] == "CPUExecutionProvider":
            raise ModelLoadError(model, f"onnxruntime cannot load it: {exc}") from exc
        log.warning("CUDA session failed; using CPU", extra={"fields": {"error": str(exc)}})
        try:
            session = ort.InferenceSession(data, sess_options=so, providers=["CPUExecutionProvider"])
        except Exception as exc2:
            raise ModelLoadError(model, f"onnxruntime cannot load it: {exc2}") from exc2
    providers = list(session.get_providers())
    global _cuda_works
    if wanted[0] == "CUDAExecutionProvider" and _cuda_works is None:
        _cuda_works = "CUDAExecutionProvider" in providers
        if not _cuda_works:
            log.warning("CUDAExecutionProvider unavailable (see onnxruntime's error above); serving on CPU",
                        extra={"fields": {"providers": providers}})
    return session, providers


@dataclass
class ModelVersion:
    """One loaded model version: an onnxruntime session plus what the protocol needs to know about it."""

    name: str
    version: str
    session: ort.InferenceSession
    providers: list[str]
    feature_names: tuple[str, ...]
    sha256: str = ""
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    _binding: Binding | None = field(default=None, repr=False)

    @classmethod
    def load(
        cls, name: str, version: str, data: bytes, feature_names: Sequence[str], *, sha256: str = "",
        options: SessionOptions | None = None,
    ) -> ModelVersion:
        session, providers = build_session(data, options or SessionOptions(), f"{name}:{version}")
        mv = cls(name, version, session, providers, tuple(feature_names), sha256,
                 [_spec(a) for a in session.get_inputs()], [_spec(a) for a in session.get_outputs()])
        if len(mv.inputs) != 1 or mv.inputs[0].datatype != "FP32" or len(mv.inputs[0].shape) != 2:
            raise ModelLoadError(f"{name}:{version}", f"expected one FP32 [N, k] input, got {mv.inputs}")
        k = mv.inputs[0].shape[1]
        if k > 0 and feature_names and k != len(feature_names):
            raise ModelLoadError(f"{name}:{version}", f"input has {k} columns but {len(feature_names)} feature names")
        mv.warm()
        log.info("model loaded", extra={"fields": {"model": name, "version": version, "providers": providers,
                                                    "sha256": sha256, "features": k}})
        return mv

    @property
    def input(self) -> TensorSpec:
        return self.inputs[0]

    @property
    def n_features(self) -> int:
        k = self.input.shape[1]
        return k if k > 0 else len(self.feature_names)

    def bound(self, spec: ModelSpec) -> Binding:
        """This version checked against `spec` (ModelMismatch when it does not fit); the check runs once per
        declaration: a new revision brings new ModelSpec objects and so a new check."""
        binding = self._binding
        if binding is None or binding.spec is not spec:
            binding = self._binding = bind(self, spec)  # one reference: concurrent requests see old or new
        return binding

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """All outputs (in `self.outputs` order) for a float32 [n, k] batch; thread-safe (ORT sessions are)."""
        return self.session.run(None, {self.input.name: x})

    def warm(self) -> None:
        """Run a few batch sizes once so the first real requests pay no lazy initialisation."""
        for n in (1, 8, 64):
            self.run(np.zeros((n, self.n_features), dtype=np.float32))


@dataclass(frozen=True)
class Challenger:
    """The second version a model serves beside its champion: `role` shadow or guard (mirrored: scored off the
    response path, logged, never returned) or canary (answers its share of requests itself), on `fraction` of the
    requests."""

    model: ModelVersion
    role: str
    fraction: float


class ModelRepository:
    """Loaded versions per model name: the champion plus the last `retain` versions, and at most one second version
    (a `Challenger`) per name."""

    def __init__(self, retain: int = 3, on_change: Callable[[], None] | None = None):
        self._retain = retain
        self._lock = threading.Lock()
        self._champions: dict[str, ModelVersion] = {}
        self._versions: dict[str, dict[str, ModelVersion]] = {}
        self._challengers: dict[str, Challenger] = {}
        self._on_change = on_change

    def set_on_change(self, callback: Callable[[], None]) -> None:
        self._on_change = callback

    def promote(self, model: ModelVersion) -> ModelVersion | None:
        """Make `model` the champion of its name (atomically); returns the previous champion."""
        with self._lock:
            versions = self._versions.setdefault(model.name, {})
            versions.pop(model.version, None)
            versions[model.version] = model  # newest last
            previous = self._champions.get(model.name)
            self._champions[model.name] = model
            while len(versions) > self._retain:
                oldest = next(iter(versions))
                if versions[oldest] is model:
                    break
                del versions[oldest]
        if self._on_change is not None:
            self._on_change()
        return previous

    def set_challenger(self, challenger: Challenger) -> Challenger | None:
        """Serve `challenger` beside its model's champion (replacing the one before, which is returned)."""
        with self._lock:
            previous = self._challengers.get(challenger.model.name)
            self._challengers[challenger.model.name] = challenger
        return previous

    def withdraw(self, name: str, version: str = "") -> Challenger | None:
        """Stop serving `name`'s second version (only when it is `version`, if given); returns the one withdrawn."""
        with self._lock:
            current = self._challengers.get(name)
            if current is None or (version and current.model.version != version):
                return None
            return self._challengers.pop(name)

    def challenger(self, name: str) -> Challenger | None:
        """`name`'s second version, None when there is none or it is the champion itself (just promoted)."""
        c = self._challengers.get(name)
        if c is None:
            return None
        champion = self._champions.get(name)
        return None if champion is not None and champion.version == c.model.version else c

    def get(self, name: str, version: str = "") -> ModelVersion:
        champion = self._champions.get(name)
        if not version:
            if champion is None:
                raise ModelNotFound(name)
            return champion
        if champion is not None and champion.version == version:
            return champion
        found = self._versions.get(name, {}).get(version)
        if found is None:
            second = self._challengers.get(name)
            if second is not None and second.model.version == version:  # a request may name the challenger
                return second.model
            raise ModelNotFound(name, version)
        return found

    def has(self, name: str, version: str = "") -> bool:
        try:
            self.get(name, version)
            return True
        except ModelNotFound:
            return False

    def champion_version(self, name: str) -> str | None:
        champion = self._champions.get(name)
        return champion.version if champion else None

    def names(self) -> list[str]:
        return list(self._champions)

    def versions(self, name: str) -> list[str]:
        """The versions a request may name: the retained ones (oldest first), then the second version."""
        out = list(self._versions.get(name, {}))
        second = self._challengers.get(name)
        return out + [second.model.version] if second is not None and second.model.version not in out else out

    def empty(self) -> bool:
        return not self._champions


def make_champion(repository: ModelRepository, model: ModelVersion, action: str = "promote") -> None:
    """Serve `model` as the champion of its name, and say so in the metrics and the log when that is a change."""
    previous = repository.promote(model)
    if previous is model:
        return
    if previous is not None:
        MODEL_IN_SERVICE.labels(previous.name, previous.version).set(0)
    MODEL_IN_SERVICE.labels(model.name, model.version).set(1)
    MODEL_SWAPS.labels(model.name).inc()
    log.info("champion swapped", extra={"fields": {
        "model": model.name, "version": model.version, "previous": previous.version if previous else None,
        "action": action}})


def _set_challenger(repository: ModelRepository, model: ModelVersion, promotion: Promotion) -> None:
    if (problem := promotion.problem()) is not None:
        raise BadPromotion(model.name, model.version, *problem)
    fraction = promotion.traffic_fraction
    if repository.champion_version(model.name) == model.version:
        log.warning("second version is the champion itself; not served twice", extra={"fields": {
            "model": model.name, "version": model.version, "role": promotion.role}})
        withdraw_challenger(repository, model.name)
        return
    previous = repository.set_challenger(Challenger(model, promotion.role, fraction))
    if previous is not None:
        CHALLENGER_TRAFFIC.labels(model.name, previous.model.version, previous.role).set(0)
    CHALLENGER_TRAFFIC.labels(model.name, model.version, promotion.role).set(fraction)
    log.info("second version in service", extra={"fields": {
        "model": model.name, "version": model.version, "role": promotion.role, "traffic_fraction": fraction,
        "replaced": previous.model.version if previous else None}})


def withdraw_challenger(repository: ModelRepository, name: str, version: str = "") -> Challenger | None:
    """Withdraw `name`'s second version (only `version`, if given): requests in flight finish on it."""
    withdrawn = repository.withdraw(name, version)
    if withdrawn is not None:
        CHALLENGER_TRAFFIC.labels(name, withdrawn.model.version, withdrawn.role).set(0)
        log.info("second version withdrawn", extra={"fields": {
            "model": name, "version": withdrawn.model.version, "role": withdrawn.role}})
    return withdrawn


def apply_promotion(
    repository: ModelRepository, promotion: Promotion, fetch: Callable[[str], bytes], options: SessionOptions,
    catalog: Catalog | None,
) -> ModelVersion | None:
    """Apply one `model.promoted` record. A champion or second version is loaded (or reused when retained), checked
    against its declaration when the model is declared (a misfit raises ModelMismatch and what serves stays) and
    put in service; action "retire" withdraws the second version. A model not declared (yet) is loaded all the same:
    it is served once a revision declares it, and checked then."""
    if promotion.action == "retire":
        withdrawn = withdraw_challenger(repository, promotion.model_name, promotion.version)
        return withdrawn.model if withdrawn is not None else None
    if repository.has(promotion.model_name, promotion.version):
        model = repository.get(promotion.model_name, promotion.version)
    else:
        data = fetch(promotion.artifact_sha256)
        declared = catalog.models.get(promotion.model_name) if catalog is not None else None
        model = ModelVersion.load(promotion.model_name, promotion.version, data,
                                  promotion.feature_names or (declared.feature_names if declared else ()),
                                  sha256=promotion.artifact_sha256, options=options)
    declared = catalog.models.get(promotion.model_name) if catalog is not None else None
    if declared is not None:
        model.bound(catalog.for_inputs(promotion.model_name, model.feature_names))  # type: ignore[union-attr]
    else:
        log.warning("promoted model is not declared; loaded, served once declared",
                    extra={"fields": {"model": promotion.model_name, "version": promotion.version}})
    if promotion.challenger:
        _set_challenger(repository, model, promotion)
        return model
    make_champion(repository, model, promotion.action or "promote")
    second = repository.withdraw(model.name, model.version)  # the challenger promoted: now served as champion
    if second is not None:
        CHALLENGER_TRAFFIC.labels(model.name, model.version, second.role).set(0)
    return model
