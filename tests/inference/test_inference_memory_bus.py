"""The server's Kafka edges driven by a MemoryBus (no broker): promotions replayed and followed, hot swaps served,
PredictionRecords produced with the request's trace."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import tritonclient.grpc as tc
from inference_helpers import K, make_onnx, wait_until
from mlops.artifacts import publish_artifact
from mlops.bus import MemoryBus
from mlops.contracts import models_pb2
from mlops.schema import FEATURE_SET
from mlops.topics import MODEL_PROMOTED, PREDICTIONS


def _promote(bus: MemoryBus, data: bytes, version: str, name: str = "sea") -> None:
    producer = bus.producer(client_id="test-registry")
    sha = publish_artifact(producer, bus, data)
    producer.send(bus.topic(MODEL_PROMOTED), models_pb2.ModelPromoted(
        model_name=name, version=version, artifact_sha256=sha, feature_names=list(FEATURE_SET.names),
        action="promote"), key=name)
    producer.flush()


def _row_input(n: int = 1) -> tc.InferInput:
    inp = tc.InferInput("input", [n, K], "FP32")
    inp.set_data_from_numpy(np.ones((n, K), np.float32))
    return inp


def test_replayed_history_serves_the_last_promotion_then_follows_new_ones(server_factory) -> None:  # type: ignore[no-untyped-def]
    bus = MemoryBus()
    _promote(bus, make_onnx(seed=1), "1")
    _promote(bus, make_onnx(seed=2), "2")
    running = server_factory(bus, watch_promotions=True)
    client = tc.InferenceServerClient(running.url)
    wait_until(client.is_server_ready)
    assert running.server.repository.champion_version("sea") == "2"
    assert running.server.repository.versions("sea") == ["2"]  # the history collapses: version 1 is never loaded

    _promote(bus, make_onnx(seed=3, flip=True), "3")
    wait_until(lambda: running.server.repository.champion_version("sea") == "3")
    assert client.infer("sea", [_row_input()]).get_response().model_version == "3"
    assert client.infer("sea", [_row_input()], model_version="2").get_response().model_version == "2"
    client.close()


def test_a_bad_promotion_keeps_the_champion(server_factory) -> None:  # type: ignore[no-untyped-def]
    bus = MemoryBus()
    _promote(bus, make_onnx(), "1")
    running = server_factory(bus, watch_promotions=True)
    wait_until(lambda: running.server.repository.champion_version("sea") == "1")
    _promote(bus, b"not an onnx model", "2")
    follower = running.server.promotions
    wait_until(lambda: follower.errors == 1)
    assert running.server.repository.champion_version("sea") == "1"


def test_served_rows_land_on_the_predictions_topic(server_factory, model_file: Path) -> None:  # type: ignore[no-untyped-def]
    bus = MemoryBus()
    running = server_factory(bus, model_path=model_file, log_predictions=True)
    client = tc.InferenceServerClient(running.url)
    trace_id = uuid.uuid4().hex
    client.infer("sea", [_row_input(3)], request_id="mem-1",
                 headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    client.close()
    topic = bus.topic(PREDICTIONS)
    wait_until(lambda: len(bus.records(topic)) == 3)
    records = [r.decode(models_pb2.PredictionRecord) for r in bus.records(topic)]
    assert sorted(r.request_id for r in records) == ["mem-1/0", "mem-1/1", "mem-1/2"]
    assert {r.trace_id for r in records} == {trace_id} and all(len(r.span_id) == 16 for r in records)
    assert all(r.model_name == "sea" and r.inputs == dict.fromkeys(FEATURE_SET.names, 1.0) for r in records)
    assert {r.header("traceparent").split("-")[1] for r in bus.records(topic)} == {trace_id}
