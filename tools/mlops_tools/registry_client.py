"""A thin client of the registry's gRPC API (mlops.v1.ModelRegistry), used by the CLI and the demo.

Calls return the API's protobuf responses; a refused call raises RegistryCallError carrying the gRPC status
code name and the server's message (e.g. NOT_FOUND: unknown model 'x')."""

from __future__ import annotations

import os
import uuid

import grpc
from mlops.contracts import models_pb2
from mlops.contracts.v1 import registry_service_pb2 as api
from mlops.contracts.v1 import registry_service_pb2_grpc as api_grpc
from mlops.errors import MlopsError
from mlops.security import ClientSecuritySettings, client_channel
from opentelemetry.instrumentation.grpc import client_interceptor
from opentelemetry.instrumentation.grpc.grpcext import intercept_channel

DEFAULT_ADDRESS = "127.0.0.1:8002"

__all__ = ["DEFAULT_ADDRESS", "RegistryCallError", "RegistryClient", "default_address"]


def default_address() -> str:
    """MLOPS_REGISTRY_ADDRESS, else 127.0.0.1:8002."""
    return os.environ.get("MLOPS_REGISTRY_ADDRESS", DEFAULT_ADDRESS)


class RegistryCallError(MlopsError):
    def __init__(self, method: str, code: grpc.StatusCode, detail: str):
        super().__init__(f"{method}: {code.name}: {detail}")
        self.method, self.code, self.detail = method, code, detail


class RegistryClient:
    def __init__(self, address: str | None = None, timeout: float = 30.0,
                 security: ClientSecuritySettings | None = None):
        """`security`: token and TLS (None: from MLOPS_CLIENT_TOKEN, MLOPS_CLIENT_CA_FILE, ...)."""
        self.address = address or default_address()
        self.timeout = timeout
        # the client span carries this process's trace context to the registry (W3C traceparent in the metadata)
        self._channel = intercept_channel(client_channel(self.address, security), client_interceptor())
        self._stub = api_grpc.ModelRegistryStub(self._channel)

    def _call(self, method: str, request: object) -> object:
        try:
            return getattr(self._stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise RegistryCallError(method, exc.code(), exc.details() or "") from None

    def wait_ready(self, timeout: float = 10.0) -> None:
        grpc.channel_ready_future(self._channel).result(timeout=timeout)

    def list_models(self) -> api.ListModelsResponse:
        return self._call("ListModels", api.ListModelsRequest())  # type: ignore[return-value]

    def get_model(self, name: str, version: str = "") -> api.GetModelResponse:
        return self._call("GetModel", api.GetModelRequest(name=name, version=version))  # type: ignore[return-value]

    def register(self, candidate: models_pb2.ModelCandidate) -> api.RegisterResponse:
        return self._call("Register", candidate)  # type: ignore[return-value]

    def promote(self, name: str, version: str, actor: str, reason: str, override_gate: bool = False,
                command_id: str | None = None) -> api.ChangeResponse:
        """`command_id` (default: a new one) makes a retry of this call apply once and return the first result."""
        return self._call("Promote", api.PromoteRequest(  # type: ignore[return-value]
            name=name, version=version, actor=actor, reason=reason, override_gate=override_gate,
            command_id=command_id or uuid.uuid4().hex))

    def rollback(self, name: str, actor: str, reason: str, command_id: str | None = None) -> api.ChangeResponse:
        return self._call("Rollback", api.RollbackRequest(  # type: ignore[return-value]
            name=name, actor=actor, reason=reason, command_id=command_id or uuid.uuid4().hex))

    def diff(self, name: str, a: str, b: str) -> api.DiffResponse:
        return self._call("Diff", api.DiffRequest(name=name, a=a, b=b))  # type: ignore[return-value]

    def model_card(self, name: str, version: str = "", figures: bool = False) -> api.ModelCard:
        return self._call("GetModelCard", api.GetModelCardRequest(name=name, version=version,  # type: ignore
                                                                  figures=figures))

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
