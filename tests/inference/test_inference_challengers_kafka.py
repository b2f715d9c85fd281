"""Integration: challengers on live traffic with the real Kafka — shadow rows on `predictions` with their role and
the champion's request ids, canary sticky by entity, retire withdrawing the second version, zero failed requests
while the second version switches role under concurrent traffic, and unsigned or badly signed challengers refused
when a promotion key is set."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import tritonclient.grpc as tc
from inference_helpers import K, make_onnx, publish_definitions, wait_until
from mlops.bus import Consumer, KafkaBus
from mlops.contracts import models_pb2
from mlops.prediction_log import from_batch
from mlops.security import SecuritySettings
from mlops.topics import PREDICTIONS, topic_name
from pydantic import SecretStr
from test_inference_challengers import KEY, announce, metric, rows

from services.inference.core import share


def _predictions(kafka, until, timeout: float = 60.0) -> list[tuple[models_pb2.PredictionBatch, int]]:  # type: ignore
    """Every PredictionBatch on the run's `predictions` topic with its partition, read until `until(batches)`."""
    consumer = Consumer(kafka, group_id=f"test-{uuid.uuid4().hex[:6]}", topics=[topic_name(PREDICTIONS, kafka)],
                        client_id="test")
    batches: list[tuple[models_pb2.PredictionBatch, int]] = []
    deadline = time.monotonic() + timeout
    try:
        while not until(batches) and time.monotonic() < deadline:
            batches += [(r.decode(models_pb2.PredictionBatch), r.partition) for r in consumer.consume(100, 0.5)]
    finally:
        consumer.close()
    assert until(batches), f"{len(batches)} batches read"
    return batches


def test_shadow_canary_and_retire_on_the_real_broker(server_factory, kafka_settings) -> None:  # type: ignore
    bus = KafkaBus(kafka_settings)
    publish_definitions(bus)
    announce(bus, make_onnx(seed=1), "1")
    announce(bus, make_onnx(seed=2, flip=True), "2", role="shadow", fraction=1.0)
    running = server_factory(bus, watch_promotions=True, log_predictions=True)
    client = tc.InferenceServerClient(running.url)
    wait_until(client.is_server_ready)
    wait_until(lambda: running.server.repository.challenger("sea") is not None)
    x = np.random.default_rng(3).uniform(0, 10, (2, K))
    for i in range(5):
        assert client.infer("sea", rows(x, [f"e{i}", f"f{i}"]), request_id=f"s-{i}").get_response() \
            .model_version == "1"
    batches = _predictions(kafka_settings, lambda bs: sum(b.rows for b, _ in bs) >= 20)
    by_role: dict[str, dict[str, tuple[str, int]]] = {}  # role -> row request id -> (entity, partition)
    for b, partition in batches:
        cols = from_batch(b)
        for rid, entity in zip(cols.request_ids(), cols.entity_list(), strict=True):
            by_role.setdefault(b.role, {})[rid] = (entity, partition)
        assert b.model_version == {"champion": "1", "shadow": "2"}[b.role]
    assert set(by_role) == {"champion", "shadow"}
    assert by_role["shadow"] == by_role["champion"]  # the same rows, entities and partitions
    assert set(by_role["shadow"]) == {f"s-{i}/{r}" for i in range(5) for r in (0, 1)}

    # the shadow replaced by a canary on half the entities, sticky
    announce(bus, make_onnx(seed=3), "3", role="canary", fraction=0.5)
    wait_until(lambda: (c := running.server.repository.challenger("sea")) is not None and c.role == "canary")
    entities = [f"user-{i}" for i in range(30)]
    for _ in range(2):
        for e in entities:
            version = client.infer("sea", rows(x[:1], [e])).get_response().model_version
            assert version == ("3" if share(e) < 0.5 else "1"), e
    announce(bus, None, "3", role="canary", action="retire")
    wait_until(lambda: running.server.repository.challenger("sea") is None)
    assert {client.infer("sea", rows(x[:1], [e])).get_response().model_version for e in entities} == {"1"}
    assert metric("mlops_inference_challenger_traffic_fraction", model="sea", version="3", role="canary") == 0
    client.close()


def test_no_failed_request_while_roles_switch_under_load(server_factory, kafka_settings) -> None:  # type: ignore
    bus = KafkaBus(kafka_settings)
    publish_definitions(bus)
    announce(bus, make_onnx(seed=1), "1")
    running = server_factory(bus, watch_promotions=True, log_predictions=True)
    client = tc.InferenceServerClient(running.url)
    wait_until(client.is_server_ready)
    stop = threading.Event()
    failures: list[str] = []
    versions: set[str] = set()
    count = [0]

    def load(worker: int) -> None:
        c = tc.InferenceServerClient(running.url)
        x = np.random.default_rng(worker).uniform(0, 10, (1, K))
        i = 0
        while not stop.is_set():
            i += 1
            try:
                versions.add(c.infer("sea", rows(x, [f"w{worker}-{i % 50}"])).get_response().model_version)
                count[0] += 1
            except Exception as exc:  # any failure fails the test
                failures.append(str(exc))
        c.close()

    workers = [threading.Thread(target=load, args=(w,)) for w in range(4)]
    for w in workers:
        w.start()
    models = {v: make_onnx(seed=int(v)) for v in ("2", "3")}
    try:
        steps = [("2", "shadow", 1.0, "promote"), ("3", "canary", 0.5, "promote"), ("3", "canary", 0.5, "retire"),
                 ("2", "canary", 1.0, "promote"), ("2", "", 0.0, "promote"), ("1", "guard", 1.0, "promote")]
        for version, role, fraction, action in steps:
            served_before = count[0]
            announce(bus, models.get(version) if action == "promote" and version != "1" else None, version, role,
                     fraction, action)
            if role == "":
                wait_until(lambda v=version: running.server.repository.champion_version("sea") == v)
            elif action == "retire":
                wait_until(lambda: running.server.repository.challenger("sea") is None)
            else:
                wait_until(lambda v=version, r=role: (c := running.server.repository.challenger("sea")) is not None
                           and (c.model.version, c.role) == (v, r))
            wait_until(lambda n=served_before: count[0] > n + 50)  # traffic flows through each state
    finally:
        stop.set()
        for w in workers:
            w.join(10)
    assert not failures, failures[:3]
    assert versions == {"1", "2", "3"}
    assert running.server.promotions.errors == 0
    client.close()


def test_challengers_must_be_signed_when_a_key_is_set(server_factory, kafka_settings) -> None:  # type: ignore
    bus = KafkaBus(kafka_settings)
    publish_definitions(bus)
    announce(bus, make_onnx(seed=1), "1", key=KEY)
    running = server_factory(bus, watch_promotions=True, security=SecuritySettings(promotion_key=KEY))
    client = tc.InferenceServerClient(running.url)
    wait_until(client.is_server_ready)
    refused = metric("mlops_inference_promotions_refused_total")
    announce(bus, make_onnx(seed=2), "2", role="shadow", fraction=1.0)
    announce(bus, make_onnx(seed=3), "3", role="canary", fraction=1.0, key=SecretStr("not-the-key"))
    announce(bus, make_onnx(seed=4), "4", role="canary", fraction=1.0, key=KEY, signed_role="shadow")
    wait_until(lambda: metric("mlops_inference_promotions_refused_total") == refused + 3)
    announce(bus, make_onnx(seed=5), "5", role="canary", fraction=1.0, key=KEY)
    wait_until(lambda: running.server.repository.challenger("sea") is not None)
    assert client.infer("sea", rows(np.ones((1, K)), ["e"])).get_response().model_version == "5"
    assert {"2", "3", "4"}.isdisjoint(running.server.repository.versions("sea"))
    client.close()
