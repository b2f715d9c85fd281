"""The gRPC edge: mlops.v1.ModelRegistry → Registry; errors mapped to status codes in one table."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent import futures
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from mlops.contracts import models_pb2
from mlops.contracts.v1 import registry_service_pb2 as api
from mlops.contracts.v1 import registry_service_pb2_grpc as api_grpc
from mlops.security import PREDICT, SecuritySettings, bind_port, current_principal, interceptors
from opentelemetry.instrumentation.grpc import filters, server_interceptor

from services.registry import errors
from services.registry.convert import audit_out, candidate_in, promotion_out, summary_out, version_out
from services.registry.core import Registry, diff_text, require

__all__ = ["ROLES", "SERVICE_NAME", "STATUS", "RegistryServicer", "start_grpc_server"]

log = logging.getLogger("mlops.registry")
SERVICE_NAME = "mlops.v1.ModelRegistry"

# the one table of exception → status code (most specific first)
STATUS: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (errors.ModelNotFound, grpc.StatusCode.NOT_FOUND),
    (errors.VersionNotFound, grpc.StatusCode.NOT_FOUND),
    (errors.InvalidCandidate, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.CommandConflict, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.DuplicateCandidate, grpc.StatusCode.ALREADY_EXISTS),
    (errors.ArtifactRejected, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.NotPromotable, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.NothingToRollBack, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.NoDefinitions, grpc.StatusCode.UNAVAILABLE),
)

# what each method needs when tokens are configured (mlops.security): reading is `predict`; Register, Promote,
# Rollback and any method not listed here need `admin`
ROLES: dict[str, str | None] = {"ListModels": PREDICT, "GetModel": PREDICT, "Diff": PREDICT,
                                "GetModelCard": PREDICT}

T = TypeVar("T")


def _actor(claimed: str, reason: str) -> tuple[str, str]:
    """(actor, reason) for the audit: the authenticated identity when there is one — the client's own claim is
    kept only as a note in the reason — else (authentication off) what the client says."""
    principal = current_principal.get()
    if principal is None:
        return claimed, reason
    if claimed and claimed != principal.identity:
        reason = f"{reason} (client claimed actor {claimed!r})".lstrip()
    return principal.identity, reason


def _call(context: grpc.ServicerContext, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except errors.RegistryError as exc:
        code = next((c for t, c in STATUS if isinstance(exc, t)), grpc.StatusCode.INTERNAL)
        context.abort(code, str(exc))
    except Exception as exc:  # an infrastructure failure (e.g. registry.log unwritable): nothing was applied
        log.exception("registry call failed")
        context.abort(grpc.StatusCode.UNAVAILABLE, f"{type(exc).__name__}: {exc}")
    raise AssertionError("unreachable")


class RegistryServicer(api_grpc.ModelRegistryServicer):
    def __init__(self, registry: Registry):
        self.registry = registry

    def ListModels(self, request: api.ListModelsRequest, context: Any) -> api.ListModelsResponse:  # noqa: N802
        return api.ListModelsResponse(models=[summary_out(s) for s in self.registry.summaries()])

    def GetModel(self, request: api.GetModelRequest, context: Any) -> api.GetModelResponse:  # noqa: N802
        def get() -> api.GetModelResponse:
            name = require(request.name, "name")
            versions = self.registry.versions(name, request.version)
            summary = self.registry.state.summary(name)
            return api.GetModelResponse(
                name=name, champion_version=summary.champion.version if summary.champion else "",
                versions=[version_out(v) for v in versions],
                audit=[audit_out(a) for a in self.registry.state.audit_of(name)])

        return _call(context, get)

    def Register(self, request: models_pb2.ModelCandidate, context: Any) -> api.RegisterResponse:  # noqa: N802
        def register() -> api.RegisterResponse:
            v = self.registry.register(*candidate_in(request))
            return api.RegisterResponse(
                model_name=v.model_name, version=v.version, decision=v.gate_decision, reason=v.gate_reason,
                candidate_metrics=v.gate_metrics, champion_metrics=v.champion_metrics,
                previous_version=v.champion_version_at_gate)

        return _call(context, register)

    def Promote(self, request: api.PromoteRequest, context: Any) -> api.ChangeResponse:  # noqa: N802
        def promote() -> api.ChangeResponse:
            promo, seq = self.registry.promote(require(request.name, "name"), require(request.version, "version"),
                                               *_actor(request.actor, request.reason),
                                               override_gate=request.override_gate, command_id=request.command_id)
            return api.ChangeResponse(promoted=promotion_out(promo), sequence=seq,
                                      announced=self.registry.announced(promo.model_name))

        return _call(context, promote)

    def Rollback(self, request: api.RollbackRequest, context: Any) -> api.ChangeResponse:  # noqa: N802
        def rollback() -> api.ChangeResponse:
            promo, seq = self.registry.rollback(require(request.name, "name"), *_actor(request.actor, request.reason),
                                                command_id=request.command_id)
            return api.ChangeResponse(promoted=promotion_out(promo), sequence=seq,
                                      announced=self.registry.announced(promo.model_name))

        return _call(context, rollback)

    def Diff(self, request: api.DiffRequest, context: Any) -> api.DiffResponse:  # noqa: N802
        def diff() -> api.DiffResponse:
            rows = self.registry.diff(require(request.name, "name"), require(request.a, "a"),
                                      require(request.b, "b"))
            return api.DiffResponse(differences=[api.FieldDiff(field=f, a=a, b=b) for f, a, b in rows],
                                    text=diff_text(rows, request.a, request.b))

        return _call(context, diff)

    def GetModelCard(self, request: api.GetModelCardRequest, context: Any) -> api.ModelCard:  # noqa: N802
        def card() -> api.ModelCard:
            name = require(request.name, "name")
            version = self.registry.resolve(name, request.version).version
            drawn = self.registry.card_figures(name, version) if request.figures else []
            return api.ModelCard(name=name, version=version, markdown=self.registry.model_card(name, version),
                                 figures=[api.Figure(name=f.name, title=f.title, png=f.png) for f in drawn])

        return _call(context, card)


def start_grpc_server(registry: Registry, host: str, port: int, workers: int = 4,
                      security: SecuritySettings | None = None) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Serve the registry API, grpc.health.v1 and reflection; returns (server, bound port, health servicer). Each
    API call gets an OpenTelemetry server span, child of the caller's trace context in the call metadata, so what a
    promote sends to model.promoted joins the caller's trace (health checks and reflection are not traced).
    `security`: tokens and TLS (None: from MLOPS_SECURITY_*)."""
    security = security if security is not None else SecuritySettings()
    traced = server_interceptor(filter_=filters.service_name(SERVICE_NAME))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="registry-grpc"),
                         interceptors=[*interceptors(security, ROLES), traced])
    api_grpc.add_ModelRegistryServicer_to_server(RegistryServicer(registry), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    bound = bind_port(server, f"{host}:{port}", security, "registry")
    if bound == 0:
        raise OSError(f"cannot bind the registry gRPC API to {host}:{port}")
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, bound, health_servicer
