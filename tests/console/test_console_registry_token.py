"""The console sends its own token (MLOPS_CONSOLE_REGISTRY_TOKEN) to a registry API that requires one: a real gRPC
server with mlops.security's interceptor and a stand-in ModelRegistry servicer; without the token the page's data
call is refused (UNAUTHENTICATED), with it the models come back."""

from __future__ import annotations

import asyncio
from concurrent import futures

import grpc
import pytest
from mlops.bus import MemoryBus
from mlops.contracts.v1 import registry_service_pb2 as api
from mlops.contracts.v1 import registry_service_pb2_grpc as api_grpc
from mlops.security import SecuritySettings, interceptors
from pydantic import SecretStr

from services.console.edge.app import Console
from services.console.errors import UpstreamError
from services.console.settings import ConsoleSettings
from services.registry.edge.grpc_api import ROLES


class _Models(api_grpc.ModelRegistryServicer):
    def ListModels(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        return api.ListModelsResponse(models=[api.ModelSummary(name="sea", champion_version="1")])


@pytest.fixture
def registry_address():  # type: ignore[no-untyped-def]
    security = SecuritySettings(tokens=SecretStr("console=predict:console-token-1"))
    server = grpc.server(futures.ThreadPoolExecutor(2), interceptors=interceptors(security, ROLES))
    api_grpc.add_ModelRegistryServicer_to_server(_Models(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


def _models(address: str, token: str) -> list:  # type: ignore[type-arg]
    console = Console.create(ConsoleSettings(registry_address=address, registry_token=SecretStr(token)), MemoryBus())
    try:
        return asyncio.run(console.registry.models())
    finally:
        console.registry.close()


def test_the_console_sends_its_registry_token(registry_address: str) -> None:
    assert [row.name for row in _models(registry_address, "console-token-1")] == ["sea"]
    with pytest.raises(UpstreamError, match="UNAUTHENTICATED"):
        _models(registry_address, "")
