"""Token authentication and TLS on the inference edges, each refusal seen by a real client: tritonclient over gRPC
(UNAUTHENTICATED without or with an unknown token, PERMISSION_DENIED without the role) and httpx over REST (401,
403); probes, grpc.health.v1 and reflection stay open; the token never reaches the logs."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as tc
from certs import make_ca, make_signed
from grpc_health.v1 import health_pb2, health_pb2_grpc
from inference_helpers import K
from mlops.security import SecuritySettings
from pydantic import SecretStr
from tritonclient.utils import InferenceServerException

ADMIN_TOKEN, PREDICT_TOKEN = "adm-secret-0123456789", "pred-secret-0123456789"
TOKENS = SecuritySettings(tokens=SecretStr(f"ops=admin:{ADMIN_TOKEN}, app=predict:{PREDICT_TOKEN}"))


@pytest.fixture
def secured(server_factory, model_file: Path):  # type: ignore[no-untyped-def]
    """`make(security)`: a server of the SEA model from a file, with those tokens / TLS settings."""
    return lambda security: server_factory(model_path=model_file, security=security)


def _infer(client: tc.InferenceServerClient, token: str | None) -> np.ndarray:
    x = np.ones((2, K), np.float32)
    inp = tc.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    headers = {"authorization": f"Bearer {token}"} if token else None
    return client.infer("sea", [inp], headers=headers).as_numpy("probabilities")


def _refusal(fn) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(InferenceServerException) as exc:
        fn()
    return f"{exc.value.status()} {exc.value.message()}"


def test_grpc_refuses_without_a_known_token_and_serves_predict_and_admin(secured, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    running = secured(TOKENS)
    with tc.InferenceServerClient(running.url) as client:
        assert "UNAUTHENTICATED" in _refusal(lambda: _infer(client, None))
        assert "UNAUTHENTICATED" in _refusal(lambda: _infer(client, "not-a-token"))
        assert "UNAUTHENTICATED" in _refusal(lambda: client.get_model_metadata("sea"))
        assert _infer(client, PREDICT_TOKEN).shape == (2, 2)
        assert _infer(client, ADMIN_TOKEN).shape == (2, 2)  # admin includes predict
        # loading a model is not predict's: refused before the method (which itself answers UNIMPLEMENTED)
        denied = _refusal(lambda: client.load_model("sea", headers={"authorization": f"Bearer {PREDICT_TOKEN}"}))
        assert "PERMISSION_DENIED" in denied and "'app' lacks role 'admin'" in denied
        assert "UNIMPLEMENTED" in _refusal(
            lambda: client.load_model("sea", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}))
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("sea")  # probes open
    with grpc.insecure_channel(running.url) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    logged = caplog.text
    assert "call refused" in logged  # the refusals are logged …
    assert ADMIN_TOKEN not in logged and PREDICT_TOKEN not in logged and "not-a-token" not in logged  # … no token


def test_rest_applies_the_same_check(secured) -> None:
    running = secured(TOKENS)
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, K], "data": [1.0] * K}]}
    url = f"{running.rest_url}/v2/models/sea/infer"
    assert httpx.post(url, json=body).status_code == 401
    refused = httpx.post(url, json=body, headers={"authorization": "Bearer nope"})
    assert refused.status_code == 401 and "unknown token" in refused.json()["error"]
    assert httpx.get(f"{running.rest_url}/v2/models/sea").status_code == 401
    ok = httpx.post(url, json=body, headers={"authorization": f"Bearer {PREDICT_TOKEN}"})
    assert ok.status_code == 200 and ok.json()["outputs"], ok.text
    assert httpx.get(f"{running.rest_url}/v2/health/ready").status_code == 200  # probes open


def test_without_tokens_authentication_is_off(secured) -> None:
    running = secured(SecuritySettings())
    with tc.InferenceServerClient(running.url) as client:
        assert _infer(client, None).shape == (2, 2)


def test_tls_refuses_a_client_without_the_ca_and_serves_one_with_it(secured, tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    server = make_signed(tmp_path, "server", ca)
    running = secured(SecuritySettings(tls_cert_file=server.cert, tls_key_file=server.key,
                                       tokens=TOKENS.tokens))
    address = f"localhost:{running.port}"
    with tc.InferenceServerClient(address, ssl=True, root_certificates=str(ca[0].cert)) as client:
        assert _infer(client, PREDICT_TOKEN).shape == (2, 2)
        assert "UNAUTHENTICATED" in _refusal(lambda: _infer(client, None))  # TLS does not replace the token
    other_ca = make_ca(tmp_path, "other")
    with tc.InferenceServerClient(address, ssl=True, root_certificates=str(other_ca[0].cert)) as client:
        assert "UNAVAILABLE" in _refusal(lambda: _infer(client, PREDICT_TOKEN))  # certificate not trusted
    with tc.InferenceServerClient(address) as client:  # plaintext against a TLS port
        assert "UNAVAILABLE" in _refusal(lambda: _infer(client, PREDICT_TOKEN))


def test_mutual_tls_needs_a_client_certificate(secured, tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    server, client_pair = make_signed(tmp_path, "server", ca), make_signed(tmp_path, "client", ca, server=False)
    running = secured(SecuritySettings(tls_cert_file=server.cert, tls_key_file=server.key,
                                       tls_client_ca_file=ca[0].cert))
    address = f"localhost:{running.port}"
    with tc.InferenceServerClient(address, ssl=True, root_certificates=str(ca[0].cert)) as client:
        assert "UNAVAILABLE" in _refusal(lambda: _infer(client, None))
    with tc.InferenceServerClient(address, ssl=True, root_certificates=str(ca[0].cert),
                                  private_key=str(client_pair.key), certificate_chain=str(client_pair.cert)) as client:
        assert _infer(client, None).shape == (2, 2)
