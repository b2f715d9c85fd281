"""KServe v2 over REST beside gRPC: the same conformance cases, run once through tritonclient's gRPC client and
once through plain HTTP/JSON (httpx), against one server process whose two edges share one DataPlane. Then what
only REST has: JSON errors with HTTP statuses, nested data, malformed bodies, unknown paths."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as tc
from inference_helpers import K
from tritonclient.utils import InferenceServerException

# gRPC status → the HTTP status the REST edge answers for the same error
HTTP_OF = {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "RESOURCE_EXHAUSTED": 413, "UNAVAILABLE": 503}


@dataclass
class Answer:
    outputs: dict[str, np.ndarray]
    id: str
    model_version: str


class Refused(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class GrpcTransport:
    name = "grpc"

    def __init__(self, url: str):
        self.client = tc.InferenceServerClient(url)

    def live(self) -> bool:
        return self.client.is_server_live()

    def ready(self) -> bool:
        return self.client.is_server_ready()

    def model_ready(self, name: str, version: str = "") -> bool:
        return self.client.is_model_ready(name, version)

    def metadata(self, name: str) -> dict[str, Any]:
        m = self.client.get_model_metadata(name, as_json=True)
        for t in m["inputs"] + m["outputs"]:
            t["shape"] = [int(d) for d in t["shape"]]
            t.pop("parameters", None)
        return {k: m[k] for k in ("name", "versions", "platform", "inputs", "outputs")}

    def infer(self, model: str, tensors: list[tuple[str, str, np.ndarray]], version: str = "", request_id: str = "",
              outputs: list[str] | None = None) -> Answer:
        inputs = []
        for name, datatype, data in tensors:
            t = tc.InferInput(name, list(data.shape), datatype)
            t.set_data_from_numpy(data)
            inputs.append(t)
        wanted = [tc.InferRequestedOutput(o) for o in outputs] if outputs else None
        try:
            r = self.client.infer(model, inputs, model_version=version, request_id=request_id, outputs=wanted)
        except InferenceServerException as exc:
            raise Refused(str(exc.status()).removeprefix("StatusCode."), exc.message() or "") from None
        resp = r.get_response()
        return Answer({o.name: r.as_numpy(o.name) for o in resp.outputs}, resp.id, resp.model_version)

    def close(self) -> None:
        self.client.close()


class RestTransport:
    name = "rest"

    def __init__(self, url: str):
        self.http = httpx.Client(base_url=url, timeout=30)

    def _flag(self, path: str, key: str) -> bool:
        r = self.http.get(path)
        assert r.status_code in (200, 400) and r.json() == {key: r.status_code == 200}, r.text
        return r.status_code == 200

    def live(self) -> bool:
        return self._flag("/v2/health/live", "live")

    def ready(self) -> bool:
        return self._flag("/v2/health/ready", "ready")

    def model_ready(self, name: str, version: str = "") -> bool:
        return self._flag(f"/v2/models/{name}" + (f"/versions/{version}" if version else "") + "/ready", "ready")

    def metadata(self, name: str) -> dict[str, Any]:
        r = self.http.get(f"/v2/models/{name}")
        assert r.status_code == 200, r.text
        m = r.json()
        for t in m["inputs"] + m["outputs"]:
            t.pop("parameters", None)
        return m

    def infer(self, model: str, tensors: list[tuple[str, str, np.ndarray]], version: str = "", request_id: str = "",
              outputs: list[str] | None = None) -> Answer:
        body: dict[str, Any] = {"inputs": [
            {"name": n, "datatype": dt, "shape": list(a.shape),
             "data": [b.decode() for b in a.reshape(-1)] if dt == "BYTES" else a.reshape(-1).tolist()}
            for n, dt, a in tensors]}
        if request_id:
            body["id"] = request_id
        if outputs:
            body["outputs"] = [{"name": o} for o in outputs]
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
        # json.dumps writes NaN as the bare NaN literal (what numpy-minded clients send); httpx's json= refuses it
        r = self.http.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
        if r.status_code != 200:
            assert r.headers["content-type"] == "application/json" and set(r.json()) == {"error"}, r.text
            code = next((c for c, s in HTTP_OF.items() if s == r.status_code), str(r.status_code))
            raise Refused(code, r.json()["error"])
        j = r.json()
        out = {o["name"]: np.asarray(o["data"], dtype=np.float32).reshape(o["shape"]) for o in j["outputs"]}
        assert all(o["datatype"] == "FP32" for o in j["outputs"])
        return Answer(out, j["id"], j["model_version"])

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def served(server_factory, model_file: Path):  # type: ignore[no-untyped-def]
    return server_factory(model_path=model_file, model_version="7", max_request_rows=1000,
                          max_message_bytes=1024 * 1024)


@pytest.fixture(params=["grpc", "rest"])
def transport(request, served):  # type: ignore[no-untyped-def]
    t = GrpcTransport(served.url) if request.param == "grpc" else RestTransport(served.rest_url)
    yield t
    t.close()


def _x(rows: int, value: float | None = None) -> tuple[str, str, np.ndarray]:
    x = np.random.default_rng(rows).uniform(0, 10, (rows, K)).astype(np.float32) if value is None \
        else np.full((rows, K), value, np.float32)
    return ("input", "FP32", x)


def test_health_metadata_and_infer_answer_alike(transport, served) -> None:  # type: ignore[no-untyped-def]
    assert transport.live() and transport.ready()
    assert transport.model_ready("sea") and transport.model_ready("sea", "7")
    assert not transport.model_ready("sea", "8") and not transport.model_ready("nope")
    assert transport.metadata("sea") == {
        "name": "sea", "versions": ["7"], "platform": "onnxruntime_onnx",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, K]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}]}
    x = _x(5)
    answer = transport.infer("sea", [x], request_id="req-1")
    expected = served.server.repository.get("sea").run(x[2])[1]
    assert answer.id == "req-1" and answer.model_version == "7"
    assert np.allclose(answer.outputs["probabilities"], expected, atol=1e-6)
    assert transport.infer("sea", [x], version="7", outputs=["probabilities"]).outputs["probabilities"].shape == (5, 2)
    assert transport.infer("sea", [_x(1)]).id  # a request without an id gets one


CASES = [  # (what is sent, the gRPC status, text in the message): one list for both transports
    ("wrong width", dict(tensors=[("input", "FP32", np.ones((2, 3), np.float32))]), "INVALID_ARGUMENT", "shape"),
    ("undeclared model", dict(model="nope"), "NOT_FOUND", "'nope' is not declared; served models: sea"),
    ("version not loaded", dict(version="99"), "NOT_FOUND", "version '99'"),
    ("NaN", dict(tensors=[_x(2, float("nan"))]), "INVALID_ARGUMENT", "NaN"),
    ("too many rows", dict(tensors=[_x(1001, 1.0)]), "RESOURCE_EXHAUSTED", "limit is 1000"),
    ("too many bytes", dict(tensors=[_x(60_000, 1.0)]), "RESOURCE_EXHAUSTED", ""),
    ("wrong dtype", dict(tensors=[("input", "FP64", np.ones((2, K)))]), "INVALID_ARGUMENT", "must be FP32"),
    ("unknown input", dict(tensors=[("x", "FP32", np.ones((2, K), np.float32))]), "INVALID_ARGUMENT",
     "unknown input 'x'"),
    ("unknown output", dict(outputs=["nope"]), "INVALID_ARGUMENT", "unknown output(s) ['nope']"),
    ("entity ids with no online store", dict(tensors=[("entity_id", "BYTES", np.array([b"e1", b"e2"],
                                                                                        dtype=object))]),
     "UNAVAILABLE", "online store"),
]


@pytest.mark.parametrize(("case", "call", "code", "text"), CASES, ids=[c[0] for c in CASES])
def test_the_same_errors_on_both_transports(transport, case, call, code, text) -> None:  # type: ignore[no-untyped-def]
    kw = {"model": "sea", "tensors": [_x(2)]} | call
    with pytest.raises(Refused) as refused:
        transport.infer(kw.pop("model"), kw.pop("tensors"), **kw)
    assert refused.value.code == code, refused.value
    assert text in refused.value.message
    assert transport.live() and transport.infer("sea", [_x(2)]).outputs["probabilities"].shape == (2, 2)


def test_one_data_plane_serves_both_edges(served) -> None:  # type: ignore[no-untyped-def]
    grpc_t, rest_t = GrpcTransport(served.url), RestTransport(served.rest_url)
    try:
        x = _x(4)
        a, b = grpc_t.infer("sea", [x]), rest_t.infer("sea", [x])
        assert np.allclose(a.outputs["probabilities"], b.outputs["probabilities"], atol=1e-6)
        assert served.server.rest.app is not None and served.server.dataplane is not None
    finally:
        grpc_t.close()
        rest_t.close()


def test_rest_only_details(served) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=served.rest_url, timeout=30) as http:
        meta = http.get("/v2").json()
        assert meta["name"] == "mlops-inference" and "model_repository" in meta["extensions"]
        # nested (row-major) data equals flat data
        x = np.arange(2 * K, dtype=np.float32).reshape(2, K) / 10
        flat = http.post("/v2/models/sea/infer", json={"inputs": [
            {"name": "input", "datatype": "FP32", "shape": [2, K], "data": x.reshape(-1).tolist()}]}).json()
        nested = http.post("/v2/models/sea/infer", json={"inputs": [
            {"name": "input", "datatype": "FP32", "shape": [2, K], "data": x.tolist()}]}).json()
        assert flat["outputs"][0]["data"] == nested["outputs"][0]["data"] and flat["outputs"][0]["shape"] == [2, 2]
        # the input's feature names, as gRPC's metadata carries them
        params = http.get("/v2/models/sea/versions/7").json()["inputs"][0]["parameters"]
        assert params["feature_names"].count(",") == K - 1
        for body, status, text in [
            (b"{not json", 400, "not JSON"),
            (b"[]", 400, "JSON object"),
            (b"{}", 400, "request.inputs is required"),
            (b'{"inputs": [{"name": "input", "datatype": "FP32", "data": [1]}]}', 400, "inputs[0].shape is required"),
            (b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 6], "data": ["a"]}]}', 400,
             "data is not FP32"),
            (b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 6], "data": [1, 2]}]}', 400,
             "2 values in contents for shape [2, 6]"),
            (b'{"inputs": [{"name": "input", "datatype": "FP9", "shape": [1], "data": [1]}]}', 400,
             "unknown datatype 'FP9'"),
        ]:
            r = http.post("/v2/models/sea/infer", content=body, headers={"content-type": "application/json"})
            assert r.status_code == status and text in r.json()["error"], (body, r.status_code, r.text)
        binary = http.post("/v2/models/sea/infer", content=b"{}", headers={"Inference-Header-Content-Length": "2"})
        assert binary.status_code == 400 and "binary tensor data extension" in binary.json()["error"]
        missing = http.get("/v2/nothing/here")
        assert missing.status_code == 404 and "no such v2 endpoint" in missing.json()["error"]
        wrong_method = http.get("/v2/models/sea/infer")
        assert wrong_method.status_code == 405 and "method not allowed" in wrong_method.json()["error"]


def test_rest_is_off_when_disabled_and_readiness_follows_the_model(server_factory) -> None:  # type: ignore[no-untyped-def]
    assert server_factory(rest=False).server.rest is None
    empty = server_factory()  # no model yet: live, not ready (400, the protocol's "false")
    with httpx.Client(base_url=empty.rest_url, timeout=30) as http:
        assert http.get("/v2/health/live").status_code == 200
        r = http.get("/v2/health/ready")
        assert r.status_code == 400 and r.json() == {"ready": False}
        r = http.get("/v2/models/sea")
        assert r.status_code == 404 and "no promoted version yet" in r.json()["error"]


def test_a_client_traceparent_continues_in_the_rest_server_span(served) -> None:  # type: ignore[no-untyped-def]
    from mlops.telemetry import setup_tracing
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    setup_tracing("inference-test", exporter=exporter)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    r = httpx.post(f"{served.rest_url}/v2/models/sea/infer", timeout=30,
                   headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
                   json={"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, K], "data": [1.0] * K}]})
    assert r.status_code == 200, r.text
    spans = [s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    ours = [s for s in spans if format(s.context.trace_id, "032x") == trace_id]
    assert ours and ours[0].name == "POST /v2/models/{name}/infer"
    assert ours[0].attributes["http.route"] == "/v2/models/{name}/infer"
