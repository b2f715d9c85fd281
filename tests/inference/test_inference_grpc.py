"""The real gRPC server on a free port, driven by the unmodified tritonclient (plus raw stubs for malformed
requests, grpc.health.v1, grpc-health-probe and reflection). No Kafka or Redis here: a model from a local file."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from inference_helpers import K
from mlops.telemetry import setup_tracing
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from testkit import tool
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException


def _infer(client: tc.InferenceServerClient, x: np.ndarray, **kw):  # type: ignore[no-untyped-def]
    inp = tc.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return client.infer(kw.pop("model_name", "sea"), [inp], **kw)


def _status(exc: pytest.ExceptionInfo[InferenceServerException]) -> str:
    return str(exc.value.status())


@pytest.fixture
def served(server_factory, model_file: Path):  # type: ignore[no-untyped-def]
    running = server_factory(model_path=model_file, model_version="7", max_request_rows=1000,
                             max_message_bytes=1024 * 1024)
    client = tc.InferenceServerClient(running.url)
    yield running, client
    client.close()


def test_tritonclient_health_metadata_and_infer(served) -> None:  # type: ignore[no-untyped-def]
    running, client = served
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("sea") and client.is_model_ready("sea", "7")
    assert not client.is_model_ready("sea", "8")
    meta = client.get_model_metadata("sea")
    assert meta.name == "sea" and list(meta.versions) == ["7"] and meta.platform == "onnxruntime_onnx"
    assert [(i.name, i.datatype, list(i.shape)) for i in meta.inputs] == [("input", "FP32", [-1, K])]
    assert [(o.name, o.datatype, list(o.shape)) for o in meta.outputs] == [("probabilities", "FP32", [-1, 2])]
    assert client.get_server_metadata().name == "mlops-inference"
    assert [m.version for m in client.get_model_repository_index().models] == ["7"]

    x = np.random.default_rng(0).uniform(0, 10, (5, K)).astype(np.float32)
    result = _infer(client, x, request_id="req-1")
    probs = result.as_numpy("probabilities")
    expected = running.server.repository.get("sea").run(x)
    assert np.allclose(probs, expected[1], atol=1e-6)
    resp = result.get_response()
    assert resp.id == "req-1" and resp.model_version == "7"
    only = _infer(client, x[:1], outputs=[tc.InferRequestedOutput("probabilities")])
    assert only.as_numpy("probabilities").shape == (1, 2)


def test_error_statuses_and_server_stays_up(served) -> None:  # type: ignore[no-untyped-def]
    running, client = served
    x = np.ones((2, K), dtype=np.float32)
    cases = [
        (lambda: _infer(client, np.ones((2, 3), np.float32)), "INVALID_ARGUMENT", "shape"),
        (lambda: _infer(client, x, model_name="nope"), "NOT_FOUND", "'nope' is not declared; served models: sea"),
        (lambda: _infer(client, x, model_version="99"), "NOT_FOUND", "version '99'"),
        (lambda: _infer(client, np.full((2, K), np.nan, np.float32)), "INVALID_ARGUMENT", "NaN"),
        (lambda: _infer(client, np.ones((1001, K), np.float32)), "RESOURCE_EXHAUSTED", "limit is 1000"),
        (lambda: _infer(client, np.ones((60_000, K), np.float32)), "RESOURCE_EXHAUSTED", ""),  # > 1 MiB message
    ]
    for call, code, text in cases:
        with pytest.raises(InferenceServerException) as exc:
            call()
        assert _status(exc) == f"StatusCode.{code}", exc.value
        assert text in exc.value.message()
    wrong_dtype = tc.InferInput("input", [2, K], "FP64")
    wrong_dtype.set_data_from_numpy(x.astype(np.float64))
    with pytest.raises(InferenceServerException, match="must be FP32") as exc:
        client.infer("sea", [wrong_dtype])
    assert _status(exc) == "StatusCode.INVALID_ARGUMENT"

    # garbage raw bytes, sent with tritonclient's own compiled protobuf (the wire format is the contract)
    with grpc.insecure_channel(running.url) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        req = service_pb2.ModelInferRequest(model_name="sea")
        req.inputs.add(name="input", datatype="FP32", shape=[2, K])
        req.raw_input_contents.append(os.urandom(13))
        with pytest.raises(grpc.RpcError) as rpc:
            stub.ModelInfer(req)
        assert rpc.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "has 13 bytes" in rpc.value.details()
        with pytest.raises(grpc.RpcError) as rpc:
            stub.ModelInfer(service_pb2.ModelInferRequest(model_name="sea"))
        assert rpc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert client.is_server_live() and _infer(client, x).as_numpy("probabilities").shape == (2, 2)


def test_grpc_health_probe_and_reflection(server_factory, model_file: Path) -> None:  # type: ignore[no-untyped-def]
    empty = server_factory()  # no model yet: live, not ready, NOT_SERVING
    with grpc.insecure_channel(empty.url) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService")).status
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    client = tc.InferenceServerClient(empty.url)
    assert client.is_server_live() and not client.is_server_ready()
    client.close()

    running = server_factory(model_path=model_file)
    with grpc.insecure_channel(running.url) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = list(refl.ServerReflectionInfo(iter([
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="inference.GRPCInferenceService"),
        ])))
        names = {s.name for s in replies[0].list_services_response.service}
        assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= names
        assert replies[1].file_descriptor_response.file_descriptor_proto

    probe = _health_probe()
    ok = subprocess.run([probe, f"-addr={running.url}"], capture_output=True, text=True, timeout=20)
    assert ok.returncode == 0 and "status: SERVING" in ok.stdout + ok.stderr
    bad = subprocess.run([probe, f"-addr={empty.url}"], capture_output=True, text=True, timeout=20)
    assert bad.returncode != 0 and "NOT_SERVING" in (bad.stdout + bad.stderr)


def _health_probe() -> str:
    """The standard grpc-health-probe binary: on PATH, in the tool cache, or installed there now from the Go module
    proxy (a fresh CI machine); skips naming how to install it only when that is impossible (a failure in CI)."""
    return tool("grpc-health-probe")


def test_client_traceparent_continues_in_server_span(served) -> None:  # type: ignore[no-untyped-def]
    _, client = served
    exporter = InMemorySpanExporter()
    setup_tracing("inference-test", exporter=exporter)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    _infer(client, np.ones((1, K), np.float32), headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    server_spans = [s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    assert any(format(s.context.trace_id, "032x") == trace_id for s in server_spans)
