"""Integration: a promotion whose artifact is tampered with (bytes that do not match the sha256 they are filed
under) or missing from `model.artifacts` is refused, loudly, and the old champion keeps serving every request —
on the real broker, with the server following `model.promoted` as in production."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import tritonclient.grpc as tc
from inference_helpers import SEA_FEATURES, K, make_onnx, publish_definitions
from mlops.artifacts import publish_artifact
from mlops.bus import KafkaBus, Producer
from mlops.contracts import models_pb2
from mlops.settings import KafkaSettings
from mlops.topics import MODEL_ARTIFACTS, MODEL_PROMOTED, topic_name
from testkit import wait_until


def _announce(kafka: KafkaSettings, producer: Producer, sha: str, version: str) -> None:
    producer.send(topic_name(MODEL_PROMOTED, kafka), models_pb2.ModelPromoted(
        model_name="sea", version=version, artifact_sha256=sha, feature_names=list(SEA_FEATURES),
        action="promote"), key="sea")
    producer.flush()


def _rows() -> tc.InferInput:
    inp = tc.InferInput("input", [8, K], "FP32")
    inp.set_data_from_numpy(np.random.default_rng(0).uniform(0, 10, (8, K)).astype(np.float32))
    return inp


def test_tampered_or_missing_artifacts_leave_the_champion_serving(server_factory, kafka_settings) -> None:  # type: ignore[no-untyped-def]
    bus = KafkaBus(kafka_settings)
    publish_definitions(bus)
    producer = Producer(kafka_settings, client_id="test-registry")
    champion = make_onnx(seed=1)
    _announce(kafka_settings, producer, publish_artifact(producer, kafka_settings, champion), "1")
    running = server_factory(bus, watch_promotions=True, artifact_timeout_s=5.0)
    client = tc.InferenceServerClient(running.url)
    wait_until(lambda: running.server.repository.champion_version("sea") == "1", timeout=120)
    before = client.infer("sea", [_rows()]).as_numpy("probabilities")
    follower = running.server.promotions

    # tampered: v2's real bytes are announced, but what sits under their hash on the topic is other bytes
    genuine = make_onnx(seed=2, flip=True)
    sha = hashlib.sha256(genuine).hexdigest()
    producer.send(topic_name(MODEL_ARTIFACTS, kafka_settings), make_onnx(seed=3, flip=True), key=sha,
                  headers={"content-type": "application/onnx", "sha256": sha})
    _announce(kafka_settings, producer, sha, "2")
    wait_until(lambda: follower.errors == 1, timeout=120)
    # missing: v3 names an artifact nobody published
    _announce(kafka_settings, producer, hashlib.sha256(os.urandom(16)).hexdigest(), "3")
    wait_until(lambda: follower.errors == 2, timeout=120)

    assert running.server.repository.champion_version("sea") == "1"
    assert running.server.repository.versions("sea") == ["1"]
    result = client.infer("sea", [_rows()])
    assert result.get_response().model_version == "1"
    assert np.array_equal(result.as_numpy("probabilities"), before)  # the same model answers, unchanged

    # and the follower still works: a genuine v4 is served (other bytes than v2's: a reader takes the first record
    # under a key, and v2's key holds the tampered bytes until compaction)
    _announce(kafka_settings, producer, publish_artifact(producer, kafka_settings, make_onnx(seed=4)), "4")
    wait_until(lambda: running.server.repository.champion_version("sea") == "4", timeout=120)
    assert client.infer("sea", [_rows()]).get_response().model_version == "4"
    client.close()
