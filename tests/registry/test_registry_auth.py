"""Token authentication and TLS on the registry's gRPC API, each refusal seen by the real client (RegistryClient)
against a real server over a MemoryBus: UNAUTHENTICATED without or with an unknown token, PERMISSION_DENIED for a
`predict` identity promoting, the audit's actor the authenticated identity (the client's claim only a note), health
open, TLS refused without the CA. The tokens never reach the logs."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import grpc
import pytest
from certs import make_ca, make_signed
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlops.artifacts import publish_artifact
from mlops.bus import MemoryBus, StopFlag
from mlops.contracts import models_pb2
from mlops.security import ClientSecuritySettings, SecuritySettings, promotion_signature, promotion_verified
from mlops.topics import MODEL_PROMOTED
from mlops_tools.registry_client import RegistryCallError, RegistryClient
from pydantic import SecretStr
from registry_helpers import apply_definitions

from services.registry.core import Promotion
from services.registry.edge import build, run
from services.registry.edge.eventlog import EventLog
from services.registry.settings import RegistrySettings

ADMIN_TOKEN, PREDICT_TOKEN = "reg-admin-secret-42", "reg-predict-secret-42"
TOKENS = SecretStr(f"ops=admin:{ADMIN_TOKEN}\nreader=predict:{PREDICT_TOKEN}")
SETTINGS = RegistrySettings(grpc_host="127.0.0.1", grpc_port=0, grpc_workers=2, replay_timeout_s=5.0)


@pytest.fixture
def registry_factory():  # type: ignore[no-untyped-def]
    started: list = []

    def make(security: SecuritySettings, *artifacts: bytes):  # type: ignore[no-untyped-def]
        bus = MemoryBus()
        apply_definitions(bus)
        producer = bus.producer(client_id="trainer")
        for data in artifacts:
            publish_artifact(producer, bus, data)
        producer.flush()
        app = build(SETTINGS, bus, security)
        stop = StopFlag(install_signals=False)
        thread = threading.Thread(target=run, args=(app, SETTINGS, stop), daemon=True)
        thread.start()
        started.append((app, stop, thread))
        return app

    yield make
    for app, stop, thread in started:
        stop.set()
        thread.join(10)
        app.stop()


def client(app, token: str = "", **tls) -> RegistryClient:  # type: ignore[no-untyped-def]
    host = "localhost" if tls else "127.0.0.1"
    return RegistryClient(f"{host}:{app.grpc_port}", timeout=10,
                          security=ClientSecuritySettings(token=SecretStr(token), **tls))


def refused(fn) -> RegistryCallError:  # type: ignore[no-untyped-def]
    with pytest.raises(RegistryCallError) as exc:
        fn()
    return exc.value


def test_roles_refusals_and_the_authenticated_actor(registry_factory, onnx_model_factory, candidate_factory,
                                                    caplog) -> None:
    caplog.set_level(logging.DEBUG)
    first, better = onnx_model_factory(7.0), onnx_model_factory(9.5)
    app = registry_factory(SecuritySettings(tokens=TOKENS), first, better)
    with client(app) as anonymous, client(app, "wrong") as stranger:
        assert refused(anonymous.list_models).code == grpc.StatusCode.UNAUTHENTICATED
        assert refused(stranger.list_models).code == grpc.StatusCode.UNAUTHENTICATED
        assert refused(lambda: anonymous.rollback("sea", "x", "y")).code == grpc.StatusCode.UNAUTHENTICATED
    with client(app, ADMIN_TOKEN) as admin, client(app, PREDICT_TOKEN) as reader:
        assert admin.register(candidate_factory(first, 7.0)).decision == "promoted"
        assert admin.register(candidate_factory(better, 9.5)).decision == "promoted"
        denied = refused(lambda: reader.register(candidate_factory(first, 7.0)))
        assert denied.code == grpc.StatusCode.PERMISSION_DENIED and "'reader' lacks role 'admin'" in denied.detail
        assert refused(lambda: reader.rollback("sea", "ops", "x")).code == grpc.StatusCode.PERMISSION_DENIED
        assert refused(lambda: reader.promote("sea", "1", "ops", "x")).code == grpc.StatusCode.PERMISSION_DENIED
        assert [m.name for m in reader.list_models().models] == ["sea"]  # reading is predict's
        admin.rollback("sea", "mallory", "canary errors")  # the client claims to be someone else
        audit = reader.get_model("sea").audit[-1]
        assert (audit.action, audit.actor) == ("rollback", "ops")
        assert "client claimed actor 'mallory'" in audit.why
    with grpc.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:  # probes need no token
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert "call refused" in caplog.text
    assert ADMIN_TOKEN not in caplog.text and PREDICT_TOKEN not in caplog.text


def test_tls_needs_the_ca(registry_factory, tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    server = make_signed(tmp_path, "server", ca)
    app = registry_factory(SecuritySettings(tokens=TOKENS, tls_cert_file=server.cert, tls_key_file=server.key))
    with client(app, PREDICT_TOKEN, ca_file=ca[0].cert) as trusted:
        assert [m.name for m in trusted.list_models().models] == []
    with client(app, PREDICT_TOKEN, ca_file=make_ca(tmp_path, "other")[0].cert) as untrusting:
        assert refused(untrusting.list_models).code == grpc.StatusCode.UNAVAILABLE
    with client(app, PREDICT_TOKEN) as plaintext:
        assert refused(plaintext.list_models).code == grpc.StatusCode.UNAVAILABLE


def test_the_registry_signs_what_it_announces() -> None:
    key = SecretStr("promotion-hmac-key-for-tests")
    bus = MemoryBus()
    EventLog(bus, bus.producer(client_id="registry"), key).announce(Promotion(
        model_name="sea", version="5", sha256="ab" * 32, previous_version="4", reason="test", feature_names=("a",),
        action="promote", at_ms=1))
    EventLog(bus, bus.producer(client_id="registry")).announce(Promotion(  # no key: unsigned, as before
        model_name="sea", version="6", sha256="cd" * 32, previous_version="5", reason="test", feature_names=("a",),
        action="promote", at_ms=2))
    signed, unsigned = (r.decode(models_pb2.ModelPromoted) for r in bus.records(bus.topic(MODEL_PROMOTED)))
    at = {"promoted_at_ms": signed.promoted_at_ms, "action": "promote"}  # time and action are signed too
    assert signed.promoted_at_ms > 0 and signed.signature == promotion_signature(key, "sea", "5", "ab" * 32, **at)
    assert promotion_verified(key, "sea", "5", "ab" * 32, signed.signature, **at)
    assert not promotion_verified(key, "sea", "5", "cd" * 32, signed.signature, **at)  # another artifact: refused
    assert not promotion_verified(SecretStr("other"), "sea", "5", "ab" * 32, signed.signature, **at)
    later = {"promoted_at_ms": signed.promoted_at_ms + 1, "action": "promote"}  # re-stamped: refused
    assert not promotion_verified(key, "sea", "5", "ab" * 32, signed.signature, **later)
    assert unsigned.signature == ""
