"""The server's Kafka edges driven by a MemoryBus (no broker): definitions followed (a newly declared model served
without a restart), promotions replayed and followed, hot swaps served, PredictionRecords produced with the
request's trace and the task's score."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as tc
from inference_helpers import (
    DELIVERY,
    SEA_FEATURES,
    K,
    make_onnx,
    make_regression_onnx,
    publish_definitions,
    wait_until,
)
from mlops.artifacts import publish_artifact
from mlops.bus import HEADER_MESSAGE_TYPE, MemoryBus
from mlops.contracts import models_pb2
from mlops.online_store import MemoryOnlineStore, ViewLayout, ViewUpdate
from mlops.prediction_log import read_predictions
from mlops.topics import MODEL_PROMOTED, PREDICTIONS
from tritonclient.utils import InferenceServerException


def _promote(bus: MemoryBus, data: bytes, version: str, name: str = "sea",
             features: tuple[str, ...] = SEA_FEATURES) -> None:
    producer = bus.producer(client_id="test-registry")
    sha = publish_artifact(producer, bus, data)
    producer.send(bus.topic(MODEL_PROMOTED), models_pb2.ModelPromoted(
        model_name=name, version=version, artifact_sha256=sha, feature_names=list(features),
        action="promote"), key=name)
    producer.flush()


def _declared_bus() -> MemoryBus:
    bus = MemoryBus()
    publish_definitions(bus)
    return bus


def _row_input(n: int = 1) -> tc.InferInput:
    inp = tc.InferInput("input", [n, K], "FP32")
    inp.set_data_from_numpy(np.ones((n, K), np.float32))
    return inp


def test_replayed_history_serves_the_last_promotion_then_follows_new_ones(server_factory) -> None:  # type: ignore[no-untyped-def]
    bus = _declared_bus()
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
    bus = _declared_bus()
    _promote(bus, make_onnx(), "1")
    running = server_factory(bus, watch_promotions=True)
    wait_until(lambda: running.server.repository.champion_version("sea") == "1")
    _promote(bus, b"not an onnx model", "2")
    follower = running.server.promotions
    wait_until(lambda: follower.errors == 1)
    _promote(bus, make_onnx(k=4), "3")  # loads, but does not fit the declared 6 inputs
    wait_until(lambda: follower.errors == 2)
    assert running.server.repository.champion_version("sea") == "1"


def test_served_rows_land_on_the_predictions_topic(server_factory, model_file: Path) -> None:  # type: ignore[no-untyped-def]
    bus = _declared_bus()
    running = server_factory(bus, model_path=model_file, log_predictions=True)
    client = tc.InferenceServerClient(running.url)
    trace_id = uuid.uuid4().hex
    client.infer("sea", [_row_input(3)], request_id="mem-1",
                 headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    client.close()
    topic = bus.topic(PREDICTIONS)
    wait_until(lambda: len(bus.records(topic)) == 1)  # one columnar record for the request's three rows
    (record,) = bus.records(topic)
    assert record.header(HEADER_MESSAGE_TYPE) == "mlops.v1.PredictionBatch" and record.key == b"mem-1"
    served = read_predictions(record)
    assert served.request_ids() == ["mem-1/0", "mem-1/1", "mem-1/2"] and served.entity_list() == [""] * 3
    assert served.trace_id == trace_id and len(served.span_id) == 16
    assert served.model_name == "sea" and served.feature_names == SEA_FEATURES
    assert served.x.tolist() == [[1.0] * len(SEA_FEATURES)] * 3 and served.outputs.shape == (3, 2)
    assert (served.scores == served.outputs[:, 1]).all()
    assert (served.predicted_labels == (served.scores >= 0.5)).all()
    assert record.header("traceparent").split("-")[1] == trace_id


def test_a_newly_declared_model_is_served_without_a_restart(server_factory) -> None:  # type: ignore[no-untyped-def]
    bus = MemoryBus()
    first = publish_definitions(bus)
    store = MemoryOnlineStore()
    running = server_factory(bus, store, watch_promotions=True, log_predictions=True)
    _promote(bus, make_onnx(), "1")
    client = tc.InferenceServerClient(running.url)
    wait_until(client.is_server_ready)
    with pytest.raises(InferenceServerException) as exc:
        client.get_model_metadata("delivery_time")
    assert "'delivery_time' is not declared; served models: sea" in exc.value.message()

    second = publish_definitions(bus, DELIVERY, current=first)  # merged: sea stays, delivery_time arrives
    wait_until(lambda: running.server.dataplane.catalog.revision == second.number)
    with pytest.raises(InferenceServerException) as exc:
        client.get_model_metadata("delivery_time")
    assert "declared but has no promoted version yet" in exc.value.message()
    spec = running.server.dataplane.catalog.models["delivery_time"]
    _promote(bus, make_regression_onnx(spec.k), "1", name="delivery_time", features=spec.feature_names)
    wait_until(lambda: client.is_model_ready("delivery_time"))
    meta = client.get_model_metadata("delivery_time")
    assert [(o.name, list(o.shape)) for o in meta.outputs] == [("predictions", [-1, 1])]
    assert [(i.name, i.datatype, list(i.shape)) for i in meta.inputs] == [
        ("entity_id", "BYTES", [-1]), ("input", "FP32", [-1, spec.k])]

    layout = ViewLayout.of(DELIVERY, "customer_orders", second.view_versions["customer_orders"])
    values = {c: float(i) for i, c in enumerate(layout.columns)}
    running.call(store.write_many([ViewUpdate(layout, "c1", values, 1_700_000_000_000)]))
    ids = tc.InferInput("entity_id", [1], "BYTES")
    ids.set_data_from_numpy(np.array([b"c1"], dtype=np.object_))
    result = client.infer("delivery_time", [ids], request_id="d-1")
    x = np.array([[values[ref.partition(".")[2]] for ref in spec.feature_names]], dtype=np.float32)
    expected = running.server.repository.get("delivery_time").run(x)[0]
    assert result.as_numpy("predictions").shape == (1, 1)
    assert np.allclose(result.as_numpy("predictions"), expected, atol=1e-5)
    client.close()
    topic = bus.topic(PREDICTIONS)
    wait_until(lambda: any(read_predictions(r).request_id == "d-1" for r in bus.records(topic)))
    (served,) = [c for c in map(read_predictions, bus.records(topic)) if c.request_id == "d-1"]
    assert served.request_ids() == ["d-1"] and served.entity_list() == ["c1"]
    assert served.as_of_list() == [1_700_000_000_000]
    assert served.scores[0] == served.predicted_labels[0] == served.outputs[0, 0] == pytest.approx(
        float(expected[0, 0]))
    assert served.feature_names == tuple(spec.feature_names)
