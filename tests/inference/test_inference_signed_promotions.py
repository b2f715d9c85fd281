"""Signed promotions (MemoryBus, no broker): with MLOPS_SECURITY_PROMOTION_KEY set, inference serves only
model.promoted records signed with it — a forged (unsigned or wrongly signed) one is refused, counted and logged
while the old champion keeps serving. (The registry's signing: tests/registry/test_registry_auth.py.)"""

from __future__ import annotations

import itertools
import logging

import tritonclient.grpc as tc
from inference_helpers import SEA_FEATURES, make_onnx, publish_definitions, wait_until
from mlops.artifacts import publish_artifact
from mlops.bus import MemoryBus
from mlops.contracts import models_pb2
from mlops.security import SecuritySettings, promotion_signature
from mlops.topics import MODEL_PROMOTED
from prometheus_client import REGISTRY
from pydantic import SecretStr

KEY = SecretStr("promotion-hmac-key-for-tests")
CLOCK = itertools.count(1_700_000_000_000)


def _promote(bus: MemoryBus, data: bytes, version: str, key: SecretStr | None) -> str:
    producer = bus.producer(client_id="test-registry")
    sha = publish_artifact(producer, bus, data)
    at_ms = next(CLOCK)  # each newer than the last, as the registry's clock stamps them
    signature = promotion_signature(key, "sea", version, sha, promoted_at_ms=at_ms, action="promote") \
        if key is not None else ""
    producer.send(bus.topic(MODEL_PROMOTED), models_pb2.ModelPromoted(
        model_name="sea", version=version, artifact_sha256=sha, feature_names=list(SEA_FEATURES),
        action="promote", signature=signature, promoted_at_ms=at_ms), key="sea")
    producer.flush()
    return sha


def _refused() -> float:
    return REGISTRY.get_sample_value("mlops_inference_promotions_refused_total") or 0.0


def test_forged_promotions_are_refused_and_genuine_ones_served(server_factory, caplog) -> None:  # type: ignore
    caplog.set_level(logging.INFO)
    bus = MemoryBus()
    publish_definitions(bus)
    _promote(bus, make_onnx(seed=1), "1", KEY)
    _promote(bus, make_onnx(seed=2), "2", None)  # unsigned, after the genuine one: replay must skip it
    before = _refused()
    running = server_factory(bus, watch_promotions=True, security=SecuritySettings(promotion_key=KEY))
    with tc.InferenceServerClient(running.url) as client:
        wait_until(client.is_server_ready)
    assert running.server.repository.champion_version("sea") == "1"
    assert _refused() == before + 1
    _promote(bus, make_onnx(seed=3), "3", SecretStr("someone-elses-key"))  # badly signed
    wait_until(lambda: _refused() == before + 2)
    _promote(bus, make_onnx(seed=4), "4", KEY)
    wait_until(lambda: running.server.repository.champion_version("sea") == "4")
    assert "3" not in running.server.repository.versions("sea")  # the forged version never loaded
    assert "promotion refused: unsigned or badly signed" in caplog.text
    assert KEY.get_secret_value() not in caplog.text


def test_a_genuine_promotion_appended_again_is_refused_as_a_replay(server_factory, caplog) -> None:  # type: ignore
    """Whoever can write model.promoted cannot sign, but can copy: v1's genuine record appended after v2's must
    not bring v1 back (its signed time is not newer than the last promotion applied)."""
    caplog.set_level(logging.INFO)
    bus = MemoryBus()
    publish_definitions(bus)
    _promote(bus, make_onnx(seed=1), "1", KEY)
    _promote(bus, make_onnx(seed=2), "2", KEY)
    before = _refused()
    running = server_factory(bus, watch_promotions=True, security=SecuritySettings(promotion_key=KEY))
    with tc.InferenceServerClient(running.url) as client:
        wait_until(client.is_server_ready)
    assert running.server.repository.champion_version("sea") == "2" and _refused() == before
    [first, *_] = bus.records(bus.topic(MODEL_PROMOTED))
    producer = bus.producer(client_id="an-attacker")
    producer.send(bus.topic(MODEL_PROMOTED), first.value, key="sea")  # the same bytes, signature and all
    producer.flush()
    wait_until(lambda: "promotion refused: replayed" in caplog.text)  # logged after it is counted
    assert _refused() == before + 1 and running.server.repository.champion_version("sea") == "2"
