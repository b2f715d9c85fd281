"""The REST edge: KServe's v2 inference protocol over HTTP/JSON, on the same DataPlane as gRPC (MLServer's shape:
one data plane, a thin edge per transport). An ASGI app (Starlette) served by uvicorn inside the inference
process, on its own port (`MLOPS_INFERENCE_REST_PORT`, default 8000 as KServe and Triton use).

Paths: `GET /v2/health/live`, `/v2/health/ready`, `/v2`, `/v2/models/{name}[/versions/{v}]`, `.../ready`;
`POST /v2/models/{name}[/versions/{v}]/infer`. Health and readiness answer 200 when true and 400 when false (the
protocol's "4xx"). Errors are `{"error": "..."}` with the status of `HTTP_STATUS`; tensors are JSON (`datatype`,
`shape`, `data` in row-major order, BYTES as strings) — the binary tensor extension is not supported.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from mlops.security import PREDICT, AuthError, PermissionDenied, TokenTable
from opentelemetry.trace import Status, StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.inference import convert
from services.inference.core import DataPlane
from services.inference.edge.server import status_code
from services.inference.edge.tracing import infer_span
from services.inference.errors import (
    EntityNotFound,
    InferenceError,
    InvalidInput,
    ModelLoadError,
    ModelMismatch,
    ModelNotFound,
    NotReady,
    TooLarge,
    TooLargeBody,
)
from services.inference.metrics import observe_request
from services.inference.settings import InferenceSettings

__all__ = ["HTTP_STATUS", "RestServer", "http_status", "rest_app"]

log = logging.getLogger("mlops.inference")

# The one place errors become HTTP statuses (gRPC's table is in server.py; the metrics count both by gRPC code).
HTTP_STATUS: dict[type[InferenceError], int] = {
    InvalidInput: 400,
    ModelNotFound: 404,
    EntityNotFound: 404,
    TooLarge: 413,
    ModelMismatch: 409,
    NotReady: 503,
    ModelLoadError: 500,
}
BINARY_HEADER = "inference-header-content-length"


def http_status(exc: InferenceError) -> int:
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]  # type: ignore[index]
    return 500


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _flag(value: bool, key: str) -> JSONResponse:
    return JSONResponse({key: value}, status_code=200 if value else 400)


def _refused(table: TokenTable, request: Request) -> JSONResponse | None:
    """The same token check as gRPC's (mlops.security): 401 without a known token, 403 without the role."""
    if not table.enabled:
        return None
    try:
        table.authorize(request.headers.get("authorization"), PREDICT, f"{request.method} {request.url.path}")
    except AuthError as exc:
        log.warning("call refused", extra={"fields": {"path": request.url.path, "reason": str(exc)}})
        return _error(403 if isinstance(exc, PermissionDenied) else 401, str(exc))
    return None


def rest_app(dataplane: DataPlane, settings: InferenceSettings, tokens: TokenTable | None = None) -> Starlette:
    """The v2 REST routes over `dataplane`; with `tokens`, metadata and infer need a `predict` bearer token
    (health and readiness stay open)."""
    table = tokens or TokenTable({})

    async def live(request: Request) -> JSONResponse:
        return _flag(dataplane.live(), "live")

    async def ready(request: Request) -> JSONResponse:
        return _flag(dataplane.ready(), "ready")

    async def server_metadata(request: Request) -> JSONResponse:
        if (refused := _refused(table, request)) is not None:
            return refused
        return JSONResponse({"name": settings.server_name, "version": "1", "extensions": ["model_repository"]})

    async def model_metadata(request: Request) -> JSONResponse:
        if (refused := _refused(table, request)) is not None:
            return refused
        name, version = request.path_params["name"], request.path_params.get("version", "")
        try:
            return JSONResponse(convert.metadata_json(dataplane.model_metadata(name, version)))
        except InferenceError as exc:
            return _error(http_status(exc), str(exc))

    async def model_ready(request: Request) -> JSONResponse:
        name, version = request.path_params["name"], request.path_params.get("version", "")
        return _flag(dataplane.model_ready(name, version), "ready")

    async def infer(request: Request) -> JSONResponse:
        if (refused := _refused(table, request)) is not None:
            return refused
        started = time.perf_counter()
        name, version = request.path_params["name"], request.path_params.get("version", "")
        route = "/v2/models/{name}" + ("/versions/{version}" if version else "") + "/infer"
        with infer_span(list(request.headers.items()), f"POST {route}",  # OTel HTTP: method and route template
                        {"http.request.method": "POST", "http.route": route, "url.path": request.url.path}) as span:
            try:
                body = await _json_body(request, settings.max_message_bytes)
                result = await dataplane.infer(convert.decode_json_request(body, name, version))
                response = JSONResponse(convert.encode_json_response(result))
            except InferenceError as exc:
                code, status, message = status_code(exc), http_status(exc), str(exc)
            except Exception as exc:
                code, status = status_code(InferenceError()), 500
                message = f"internal error: {type(exc).__name__}: {exc}"
                log.exception("inference failed", extra={"fields": {"error": str(exc)}})
            else:
                observe_request("OK", result.model_name, result.model_version, time.perf_counter() - started)
                return response
            span.set_attribute("http.response.status_code", status)
            span.set_status(Status(StatusCode.ERROR, f"{status}: {message}"))
        model = name if name in dataplane.repository.names() else "unknown"  # as gRPC: no label per bad name
        observe_request(code.name, model, "", time.perf_counter() - started)
        return _error(status, message)

    versioned = "/v2/models/{name}/versions/{version}"
    routes = [
        Route("/v2/health/live", live), Route("/v2/health/ready", ready), Route("/v2", server_metadata),
        Route("/v2/models/{name}", model_metadata), Route(versioned, model_metadata),
        Route("/v2/models/{name}/ready", model_ready), Route(f"{versioned}/ready", model_ready),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route(f"{versioned}/infer", infer, methods=["POST"]),
    ]

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        status = getattr(exc, "status_code", 404)
        return _error(status, f"{request.method} {request.url.path}: "
                              f"{'method not allowed' if status == 405 else 'no such v2 endpoint'}")

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})


async def _json_body(request: Request, limit: int) -> Any:
    if BINARY_HEADER in request.headers:
        raise InvalidInput("the binary tensor data extension is not supported; send the tensors as JSON `data`")
    size = int(request.headers.get("content-length") or 0)
    if size > limit:
        raise TooLargeBody(size, limit)
    raw = await request.body()
    if len(raw) > limit:
        raise TooLargeBody(len(raw), limit)
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise InvalidInput(f"the request body is not JSON: {exc}") from None


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the inference process stops everything on SIGTERM itself."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class RestServer:
    """The REST app on its own socket, in the running event loop: `await start()` returns the bound port."""

    def __init__(self, dataplane: DataPlane, settings: InferenceSettings, tokens: TokenTable | None = None):
        self.settings = settings
        self.app = rest_app(dataplane, settings, tokens)
        self.port = 0
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        s = self.settings
        family = socket.AF_INET6 if ":" in s.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if s.workers > 1 or s.worker_index > 0:  # the worker processes share the port, as they do gRPC's
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((s.host, s.rest_port))
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot bind the REST endpoint to {s.host}:{s.rest_port}: {exc}") from exc
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, lifespan="off", log_config=None, access_log=False)
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="inference-rest")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError("the REST server stopped during start-up")
            await asyncio.sleep(0.01)
        return self.port

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 10)
