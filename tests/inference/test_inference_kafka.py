"""Integration: the server with the real Kafka and Redis — online join by entity id, PredictionRecords on
`predictions` carrying the request's trace id, the champion loaded from model.promoted at start, and hot swaps
under concurrent load with zero failed requests."""

from __future__ import annotations

import threading
import time
import uuid
import zlib

import numpy as np
import pytest
import tritonclient.grpc as tc
from inference_helpers import SEA, SEA_COLUMNS, SEA_FEATURES, K, make_onnx, publish_definitions, wait_until
from mlops.artifacts import publish_artifact
from mlops.bus import Consumer, KafkaBus, Producer
from mlops.contracts import models_pb2
from mlops.online_store import RedisOnlineStore, SyncRedisOnlineStore, ViewLayout
from mlops.prediction_log import read_predictions
from mlops.topics import MODEL_PROMOTED, PREDICTIONS, topic_name
from tritonclient.utils import InferenceServerException

LAYOUT = ViewLayout.of(SEA, "entity_activity", 1)


def _promote(kafka, data: bytes, version: str, name: str = "sea") -> None:  # type: ignore[no-untyped-def]
    publish_definitions(KafkaBus(kafka))  # the model is declared (revision 1 of a fresh prefix)
    producer = Producer(kafka, client_id="test-registry")
    sha = publish_artifact(producer, kafka, data)
    producer.send(topic_name(MODEL_PROMOTED, kafka), models_pb2.ModelPromoted(
        model_name=name, version=version, artifact_sha256=sha, feature_names=list(SEA_FEATURES),
        action="promote"), key=name)
    producer.flush()


def _entity_input(ids: list[str]) -> tc.InferInput:
    inp = tc.InferInput("entity_id", [len(ids)], "BYTES")
    inp.set_data_from_numpy(np.array([i.encode() for i in ids], dtype=np.object_))
    return inp


def test_entity_join_and_prediction_records(server_factory, kafka_settings, redis_settings) -> None:  # type: ignore[no-untyped-def]
    _promote(kafka_settings, make_onnx(), "1")  # published before start: the champion is rebuilt from the topic
    store = SyncRedisOnlineStore(redis_settings)
    values = {n: float(i + 1) for i, n in enumerate(SEA_COLUMNS)}
    store.write(LAYOUT, "user-1", values, as_of_ms=1_700_000_000_000)
    store.write(LAYOUT, "user-2", dict.fromkeys(SEA_COLUMNS, 9.0), as_of_ms=1_700_000_000_500)
    store.close()
    running = server_factory(KafkaBus(kafka_settings), RedisOnlineStore(redis_settings), watch_promotions=True,
                             log_predictions=True)
    client = tc.InferenceServerClient(running.url)
    wait_until(client.is_server_ready)
    assert running.server.repository.champion_version("sea") == "1"

    trace_id = uuid.uuid4().hex
    result = client.infer("sea", [_entity_input(["user-1", "user-2"])], request_id="join-1",
                          headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    x = np.array([[values[n] for n in SEA_COLUMNS], [9.0] * K], dtype=np.float32)
    assert np.allclose(result.as_numpy("probabilities"), running.server.repository.get("sea").run(x)[1], atol=1e-6)

    with pytest.raises(InferenceServerException) as exc:
        client.infer("sea", [_entity_input(["user-1", "ghost"])])
    assert str(exc.value.status()) == "StatusCode.NOT_FOUND" and "'ghost'" in exc.value.message()
    client.close()

    consumer = Consumer(kafka_settings, group_id=f"test-{uuid.uuid4().hex[:6]}",
                        topics=[topic_name(PREDICTIONS, kafka_settings)], client_id="test")
    records = []
    deadline = time.monotonic() + 30
    while len(records) < 2 and time.monotonic() < deadline:
        records += consumer.consume(10, 0.5)
    consumer.close()
    # the two entities hash to different partitions: one record each, keyed by its entity, in the entity's partition
    assert sorted(r.key for r in records) == [b"user-1", b"user-2"]
    assert all(r.partition == zlib.crc32(r.key) % kafka_settings.default_partitions for r in records)
    by_key = {r.key: read_predictions(r) for r in records}
    served = by_key[b"user-1"]
    assert served.trace_id == trace_id and len(served.span_id) == 16 and served.request_ids() == ["join-1/0"]
    assert by_key[b"user-2"].request_ids() == ["join-1/1"] and by_key[b"user-2"].entity_list() == ["user-2"]
    assert served.model_name == "sea" and served.model_version == "1"
    assert served.as_of_list() == [1_700_000_000_000] and served.entity_list() == ["user-1"]
    assert dict(zip(served.feature_names, served.x[0].tolist(), strict=True)) == pytest.approx(
        {f"entity_activity.{n}": v for n, v in values.items()})
    assert 0.0 <= served.scores[0] <= 1.0 and served.outputs.shape == (1, 2)
    assert served.latency_us > 0
    assert {r.header("traceparent").split("-")[1] for r in records} == {trace_id}


def test_hot_swap_under_concurrent_load(server_factory, kafka_settings) -> None:  # type: ignore[no-untyped-def]
    models = [make_onnx(seed=s, flip=bool(s % 2)) for s in range(4)]
    _promote(kafka_settings, models[0], "1")
    running = server_factory(KafkaBus(kafka_settings), watch_promotions=True, retain_versions=2)
    client = tc.InferenceServerClient(running.url)
    wait_until(client.is_server_ready)

    stop = threading.Event()
    failures: list[str] = []
    served_versions: set[str] = set()
    counts = [0]

    def load() -> None:
        c = tc.InferenceServerClient(running.url)
        x = np.random.default_rng(1).uniform(0, 10, (4, K)).astype(np.float32)
        inp = tc.InferInput("input", [4, K], "FP32")
        inp.set_data_from_numpy(x)
        while not stop.is_set():
            try:
                served_versions.add(c.infer("sea", [inp]).get_response().model_version)
                counts[0] += 1
            except Exception as exc:  # any failure is a test failure
                failures.append(str(exc))
        c.close()

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        for i, data in enumerate(models[1:], start=2):
            _promote(kafka_settings, data, str(i))
            wait_until(lambda v=str(i): running.server.repository.champion_version("sea") == v)
            wait_until(lambda v=str(i): v in served_versions)
    finally:
        stop.set()
        for w in workers:
            w.join(10)
    assert not failures, failures[:3]
    assert {"1", "2", "3", "4"} <= served_versions and counts[0] > 50
    # the last two versions are retained and can be named; older ones are gone
    inp = tc.InferInput("input", [1, K], "FP32")
    inp.set_data_from_numpy(np.ones((1, K), np.float32))
    assert client.infer("sea", [inp], model_version="3").get_response().model_version == "3"
    with pytest.raises(InferenceServerException) as exc:
        client.infer("sea", [inp], model_version="1")
    assert str(exc.value.status()) == "StatusCode.NOT_FOUND"
    client.close()
