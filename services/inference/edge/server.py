"""The gRPC edge: the OIP servicer (convert → DataPlane → convert, inside a server span), grpc.health.v1,
reflection, and `InferenceServer`, which wires every part together and starts/stops it."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection, reflection_pb2
from mlops.artifacts import ArtifactReader
from mlops.bus import Bus
from mlops.contracts.oip import POOL, SERVICE_NAME, pb2, pb2_grpc
from mlops.definitions import Revision, load, plan
from mlops.definitions.store import DefinitionsFollower
from mlops.online_store import OnlineStore
from mlops.security import PREDICT, SecuritySettings, aio_interceptors, bind_port
from mlops.topics import PREDICTIONS
from opentelemetry.trace import Status, StatusCode

from services.inference import convert
from services.inference.core import (
    Batcher,
    BatchPolicy,
    DataPlane,
    LayoutHistory,
    Mirror,
    ModelRepository,
    ModelVersion,
    SessionOptions,
    build_catalog,
    make_champion,
)
from services.inference.edge.prediction_log import PredictionLog
from services.inference.edge.promotions import PromotionFollower
from services.inference.edge.tracing import infer_span, link_feature_updates, span_context
from services.inference.errors import (
    EntityNotFound,
    InferenceError,
    InvalidInput,
    ModelLoadError,
    ModelMismatch,
    ModelNotFound,
    NotReady,
    TooLarge,
)
from services.inference.metrics import observe_request
from services.inference.settings import InferenceSettings

log = logging.getLogger("mlops.inference")

# The one place errors become gRPC status codes.
STATUS_CODES: dict[type[InferenceError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    ModelNotFound: grpc.StatusCode.NOT_FOUND,
    EntityNotFound: grpc.StatusCode.NOT_FOUND,
    TooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    NotReady: grpc.StatusCode.UNAVAILABLE,
    ModelMismatch: grpc.StatusCode.FAILED_PRECONDITION,
    ModelLoadError: grpc.StatusCode.INTERNAL,
}


def status_code(exc: InferenceError) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]  # type: ignore[index]
    return grpc.StatusCode.INTERNAL


class InferenceServicer(pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, dataplane: DataPlane, settings: InferenceSettings):
        self._dp = dataplane
        self._settings = settings

    async def ServerLive(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC method names)
        return pb2.ServerLiveResponse(live=self._dp.live())

    async def ServerReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb2.ServerReadyResponse(ready=self._dp.ready())

    async def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb2.ModelReadyResponse(ready=self._dp.model_ready(request.name, request.version))

    async def ServerMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb2.ServerMetadataResponse(name=self._settings.server_name, version="1",
                                          extensions=["model_repository"])

    async def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        try:
            return convert.encode_metadata(self._dp.model_metadata(request.name, request.version))
        except InferenceError as exc:
            await context.abort(status_code(exc), str(exc))

    async def RepositoryIndex(self, request: Any, context: Any) -> Any:  # noqa: N802
        repo, catalog = self._dp.repository, self._dp.catalog
        out = pb2.RepositoryIndexResponse()
        for name in repo.names():
            declared = catalog is not None and name in catalog.models
            for version in repo.versions(name):  # a loaded model no revision declares is not served
                out.models.add(name=name, version=version, state="READY" if declared else "UNAVAILABLE",
                               reason="" if declared else "not declared in the definitions in force")
        return out

    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:  # noqa: N802
        await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                            "models come from model.promoted (or MLOPS_INFERENCE_MODEL_PATH), not on request")

    async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:  # noqa: N802
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "models are retired by promotions, not on request")

    async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
        started = time.perf_counter()
        with infer_span(context.invocation_metadata()) as span:
            try:
                result = await self._dp.infer(convert.decode_request(request))
                response = convert.encode_response(result)
            except InferenceError as exc:
                code, message = status_code(exc), str(exc)
            except Exception as exc:
                code, message = grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"
                log.exception("inference failed", extra={"fields": {"error": str(exc)}})
            else:
                observe_request("OK", result.model_name, result.model_version, time.perf_counter() - started)
                return response
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            span.set_status(Status(StatusCode.ERROR, f"{code}: {message}"))
        model = request.model_name if request.model_name in self._dp.repository.names() else "unknown"
        observe_request(code.name, model, "", time.perf_counter() - started)
        await context.abort(code, message)


# what each OIP method needs when tokens are configured (mlops.security): probes stay open, unlisted methods
# (RepositoryModelLoad/Unload) need admin
ROLES: dict[str, str | None] = {
    "ServerLive": None, "ServerReady": None, "ModelReady": None,
    "ServerMetadata": PREDICT, "ModelMetadata": PREDICT, "RepositoryIndex": PREDICT, "ModelInfer": PREDICT,
}


def _reflection_pool() -> Any:
    """Our private descriptor pool also answers reflection for health and reflection itself."""
    for fd in (health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR):
        try:
            POOL.FindFileByName(fd.name)
        except KeyError:
            POOL.AddSerializedFile(fd.serialized_pb)
    return POOL


class InferenceServer:
    """The whole service in one object: `await start()` returns the bound port, `await stop()` ends everything."""

    def __init__(self, settings: InferenceSettings, bus: Bus | None = None, store: OnlineStore | None = None,
                 security: SecuritySettings | None = None):
        """`bus` carries promotions and artifacts in and predictions out (None: none of them), `store` the online
        features (None: no entity ids), `security` tokens and TLS (None: from MLOPS_SECURITY_*)."""
        self.settings = settings
        self.security = security if security is not None else SecuritySettings()
        self.bus = bus
        self.options = SessionOptions(settings.ort_intra_op_threads, settings.use_cuda)
        self.repository = ModelRepository(settings.retain_versions)
        self.health = HealthServicer()
        self.port = 0
        self.promotions: PromotionFollower | None = None
        self.definitions: DefinitionsFollower | None = None
        self._history = LayoutHistory()  # older view versions, for the online join's fallback
        self.predictions: PredictionLog | None = None
        self.mirror: Mirror | None = None
        self._executor = ThreadPoolExecutor(settings.ort_workers, thread_name_prefix="ort")
        self._server: grpc.aio.Server | None = None
        self._store = store if settings.online_join else None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._health_tasks: set[asyncio.Task[None]] = set()
        self.batcher: Batcher | None = None
        self.dataplane: DataPlane | None = None
        self.rest: Any = None  # the REST edge (edge/rest.py) when settings.rest

    def load_file(self, path: Path, name: str | None = None, version: str | None = None) -> ModelVersion:
        """Serve the ONNX file at `path` as the champion of declared model `name` (default_model)."""
        assert self.dataplane is not None, "start() first: the file is checked against its declaration"
        name = name or self.settings.default_model
        catalog = self.dataplane.catalog
        spec = catalog.get(name) if catalog is not None else None
        model = ModelVersion.load(name, version or self.settings.model_version, path.read_bytes(),
                                  spec.feature_names if spec is not None else (), options=self.options)
        if spec is not None:
            model.bound(spec)
        make_champion(self.repository, model, "load")
        return model

    def _on_definitions(self, revision: Revision) -> None:
        """A newer definitions revision (on the follower's thread): build its catalog aside, then swap it in."""
        assert self.dataplane is not None
        try:
            self._history.add(revision)
            catalog = build_catalog(revision, self._history)
        except Exception as exc:  # keep serving the revision we have; the follower thread must not die of it
            log.error("definitions revision not applied", extra={"fields": {
                "revision": revision.number, "error": str(exc)}})
            return
        self.dataplane.use(catalog)
        log.info("serving definitions revision", extra={"fields": {
            "revision": revision.number, "models": sorted(catalog.models)}})
        self._on_change()

    async def _start_definitions(self) -> None:
        s = self.settings
        if s.definitions_file is not None:
            first = plan(None, load(s.definitions_file), f"file {s.definitions_file.name}").revision
            if first is not None:
                self._on_definitions(first)
        elif self.bus is not None:
            self.definitions = DefinitionsFollower(self.bus, client_id="inference-definitions",
                                                   on_change=self._on_definitions)
            await asyncio.to_thread(self.definitions.start)

    def _on_change(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._schedule_health)

    def _schedule_health(self) -> None:
        task = asyncio.ensure_future(self._update_health())
        self._health_tasks.add(task)
        task.add_done_callback(self._health_tasks.discard)

    async def _update_health(self) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if self.ready() else \
            health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    async def start(self) -> int:
        s = self.settings
        self._loop = asyncio.get_running_loop()
        self.repository.set_on_change(self._on_change)
        if self.bus is not None and s.log_predictions:
            self.predictions = self._prediction_log(self.bus)
            # shadow and guard answers exist only to be logged: no log, no mirror
            self.mirror = Mirror(self.predictions.offer, s.shadow_queue_rows, s.max_batch_size,
                                 s.shadow_interval_ms / 1000, s.shadow_nice)
        self.batcher = Batcher(self._executor, BatchPolicy.from_settings(s))
        self.dataplane = DataPlane(s, self.repository, self.batcher, self._store, self.predictions,
                                   on_features=link_feature_updates, mirror=self.mirror, context=span_context)
        await self._start_definitions()
        if s.model_path is not None:
            self.load_file(s.model_path)
        opts = [("grpc.max_receive_message_length", s.max_message_bytes),
                ("grpc.max_send_message_length", s.max_message_bytes),
                ("grpc.so_reuseport", 1 if s.workers > 1 or s.worker_index > 0 else 0)]
        # No tracing interceptor: any aio interceptor (even the OTel one filtered down to nothing) puts a Python
        # coroutine chain in front of every call. ModelInfer makes its own server span (infer_span); the
        # control-plane RPCs (health, metadata, reflection) are not traced. The auth interceptor is there only
        # when tokens are configured.
        self._server = grpc.aio.server(options=opts, interceptors=aio_interceptors(self.security, ROLES))
        pb2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(self.dataplane, s), self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self._server, pool=_reflection_pool())
        self.port = bind_port(self._server, f"{s.host}:{s.port}", self.security, "inference")
        await self._update_health()
        await self._server.start()
        if s.rest:  # KServe v2 REST on the same data plane (imported here: rest.py builds on this module)
            from services.inference.edge.rest import RestServer

            self.rest = RestServer(self.dataplane, s, self.security.table())
            await self.rest.start()
        if self.bus is not None and s.watch_promotions:
            artifacts, timeout = ArtifactReader(self.bus), s.artifact_timeout_s
            dataplane = self.dataplane
            self.promotions = PromotionFollower(self.bus, self.repository,
                                                lambda sha256: artifacts.get(sha256, timeout=timeout),
                                                self.options, lambda: dataplane.catalog,
                                                key=self.security.promotion_key)
            self.promotions.start()
        log.info("inference serving", extra={"fields": {
            "port": self.port, "rest_port": self.rest.port if self.rest else None,
            "worker": s.worker_index, "models": self.repository.names(),
            "inline_max_rows": self.batcher.policy.inline_max_rows}})
        return self.port

    def _prediction_log(self, bus: Bus) -> PredictionLog:
        s = self.settings
        producer = bus.producer(client_id="inference-predictions", extra={
            "queue.buffering.max.messages": s.prediction_queue_records,
            "message.timeout.ms": int(s.prediction_delivery_timeout_s * 1000), "linger.ms": s.prediction_linger_ms})
        topic = bus.topic(PREDICTIONS)

        def partitions() -> int:  # on the log's thread: its records follow the entities' partitions
            reader = bus.reader([], client_id="inference-predictions-meta", start={})
            try:
                return len(reader.watermarks([topic], timeout=5.0))
            finally:
                reader.close()

        fallback = bus.settings.default_partitions if bus.settings is not None else 1
        return PredictionLog(producer, topic, s.prediction_buffer_rows, s.prediction_overflow, partitions, fallback,
                             s.prediction_log_interval_ms / 1000)

    def ready(self) -> bool:
        """Declarations in force (their follower alive) and at least one declared model with a champion."""
        return self.dataplane is not None and self.dataplane.ready() and (
            self.definitions is None or self.definitions.alive())

    async def wait(self) -> None:
        assert self._server is not None
        await self._server.wait_for_termination()

    async def stop(self, grace: float = 2.0) -> None:
        if self.rest is not None:
            await self.rest.stop()
        if self._server is not None:
            await self.health.enter_graceful_shutdown()
            await self._server.stop(grace)
        if self.promotions is not None:
            await asyncio.to_thread(self.promotions.stop)
        if self.definitions is not None:
            await asyncio.to_thread(self.definitions.stop)
        if self.batcher is not None:
            await self.batcher.close()
        if self.mirror is not None:  # before the log: what it still scores is logged
            await asyncio.to_thread(self.mirror.close)
        if self.predictions is not None:
            await asyncio.to_thread(self.predictions.close)
        if self._store is not None:
            await self._store.close()
        self._executor.shutdown(wait=False)
