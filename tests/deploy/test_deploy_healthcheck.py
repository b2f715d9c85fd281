"""deploy/docker/healthcheck.py (the image's `mlops-healthcheck`) against a real ops server and gRPC server."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from types import ModuleType

import grpc
import pytest
from deploy_helpers import DEPLOY
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from mlops.telemetry import start_ops_server
from mlops_tools.procs import free_port

HELPER = DEPLOY / "docker" / "healthcheck.py"


@pytest.fixture(scope="module")
def healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mlops_healthcheck", HELPER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ops_server() -> tuple[int, dict[str, bool]]:
    state = {"ready": False}
    port = start_ops_server(0, ready=lambda: state["ready"], addr="127.0.0.1")
    return port, state


@pytest.fixture
def grpc_health_server() -> Iterator[tuple[int, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port, servicer
    finally:
        server.stop(grace=None).wait(5)


def test_http_mode_follows_readyz(healthcheck: ModuleType, ops_server: tuple[int, dict[str, bool]]) -> None:
    port, state = ops_server
    url = f"http://127.0.0.1:{port}/readyz"
    state["ready"] = False
    assert healthcheck.main(["http", url]) == 1
    state["ready"] = True
    assert healthcheck.main(["http", url]) == 0
    assert healthcheck.main(["http", f"http://127.0.0.1:{port}/healthz"]) == 0
    assert healthcheck.main(["http", f"http://127.0.0.1:{free_port()}/readyz"]) == 1  # nothing listening


def test_http_env_mode_reads_the_metrics_port(
    healthcheck: ModuleType, ops_server: tuple[int, dict[str, bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, state = ops_server
    state["ready"] = True
    monkeypatch.delenv("MLOPS_TELEMETRY_METRICS_PORT", raising=False)
    assert healthcheck.main(["http-env"]) == 1
    monkeypatch.setenv("MLOPS_TELEMETRY_METRICS_PORT", str(port))
    assert healthcheck.main(["http-env"]) == 0
    assert healthcheck.main(["http-env", "/healthz"]) == 0


def test_grpc_mode_follows_the_health_service(
    healthcheck: ModuleType, grpc_health_server: tuple[int, health.HealthServicer]
) -> None:
    port, servicer = grpc_health_server
    target = f"127.0.0.1:{port}"
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert healthcheck.main(["grpc", target]) == 1
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert healthcheck.main(["grpc", target]) == 0
    assert healthcheck.main(["grpc", target, "no.such.Service"]) == 1  # NOT_FOUND
    assert healthcheck.main(["grpc", f"127.0.0.1:{free_port()}"]) == 1


def test_command_line_exit_codes(ops_server: tuple[int, dict[str, bool]]) -> None:
    port, state = ops_server
    state["ready"] = True
    ok = subprocess.run(
        [sys.executable, str(HELPER), "http", f"http://127.0.0.1:{port}/readyz"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ok.returncode == 0 and "HTTP 200" in ok.stdout
    usage = subprocess.run([sys.executable, str(HELPER)], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 2 and "mlops-healthcheck" in usage.stderr
