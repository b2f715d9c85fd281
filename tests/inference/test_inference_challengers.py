"""Challengers on live traffic, driven by a MemoryBus (no broker): a second version per model announced on
`model.promoted` (key `<model>/challenger`) — shadow mirrored off the response path and logged with role "shadow"
beside the champion's rows (same request and row ids), canary answering its share sticky by entity id, retire
withdrawing it, signatures checked with the role — and the mirror's bounded queue dropping (and counting) work
rather than making a client wait. The same against the real Kafka: test_inference_challengers_kafka.py."""

from __future__ import annotations

import itertools
import os
import threading
import zlib

import numpy as np
import pytest
import tritonclient.grpc as tc
from inference_helpers import SEA, SEA_FEATURES, K, make_onnx, publish_definitions, revision, wait_until
from mlops.artifacts import publish_artifact
from mlops.bus import Bus, MemoryBus
from mlops.contracts import models_pb2
from mlops.definitions import Task
from mlops.prediction_log import PredictionColumns, from_batch
from mlops.security import SecuritySettings, promotion_signature
from mlops.topics import MODEL_PROMOTED, PREDICTIONS
from prometheus_client import REGISTRY
from pydantic import SecretStr

from services.inference import convert
from services.inference.core import Mirror, MirrorJob, ServedBatch, build_catalog, share
from services.inference.core.outputs import Binding

KEY = SecretStr("challenger-hmac-key-for-tests")
CLOCK = itertools.count(1_700_000_000_000)


def announce(bus: Bus, data: bytes | None, version: str, role: str = "", fraction: float = 0.0,
             action: str = "promote", key: SecretStr | None = None, signed_role: str | None = None,
             features: tuple[str, ...] = SEA_FEATURES) -> None:
    """A `model.promoted` record as the registry writes it: keyed `sea` for the champion, `sea/challenger` for a
    second version (`signed_role`: sign with another role than announced, as a replayed record would be)."""
    producer = bus.producer(client_id="test-registry")
    sha = publish_artifact(producer, bus, data) if data is not None else ""
    at_ms = next(CLOCK)  # every announcement is newer than the last: the registry's clock orders them
    signature = promotion_signature(key, "sea", version, sha, role if signed_role is None else signed_role,
                                    promoted_at_ms=at_ms, action=action) if key is not None else ""
    producer.send(bus.topic(MODEL_PROMOTED), models_pb2.ModelPromoted(
        model_name="sea", version=version, artifact_sha256=sha, feature_names=list(features), action=action,
        role=role, traffic_fraction=fraction, signature=signature, promoted_at_ms=at_ms),
        key="sea/challenger" if role not in ("", "champion") or action == "retire" else "sea")
    producer.flush()


def rows(x: np.ndarray, entities: list[str] | None = None) -> list[tc.InferInput]:
    """The request's inputs: the feature matrix, and the entities it names (so canary routing has an entity)."""
    inp = tc.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x.astype(np.float32))
    if entities is None:
        return [inp]
    ids = tc.InferInput("entity_id", [len(entities)], "BYTES")
    ids.set_data_from_numpy(np.array([e.encode() for e in entities], dtype=np.object_))
    return [inp, ids]


def logged(records: list) -> list[tuple[PredictionColumns, list[str]]]:  # type: ignore[type-arg]
    """Each request's rows in each PredictionBatch on the topic (a record may hold several requests), with the
    rows' request ids."""
    return [(c, c.request_ids()) for r in records for c in from_batch(r.decode(models_pb2.PredictionBatch)).split()]


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _served(bus: MemoryBus, server_factory, **overrides):  # type: ignore[no-untyped-def]
    running = server_factory(bus, watch_promotions=True, log_predictions=True, **overrides)
    client = tc.InferenceServerClient(running.url)
    wait_until(client.is_server_ready)
    return running, client


def test_stable_share_is_uniform_and_the_same_on_every_call() -> None:
    keys = [f"user-{i}" for i in range(20_000)]
    shares = np.array([share(k) for k in keys])
    assert ((shares >= 0) & (shares < 1)).all()
    assert [share(k) for k in keys[:100]] == shares[:100].tolist()  # deterministic (no per-process salt)
    assert 0.28 < (shares < 0.3).mean() < 0.32 and 0.68 < (shares < 0.7).mean() < 0.72


def test_shadow_is_scored_off_the_response_and_logged_beside_the_champion(server_factory) -> None:  # type: ignore
    bus = MemoryBus()
    publish_definitions(bus)
    announce(bus, make_onnx(seed=1), "1")
    announce(bus, make_onnx(seed=2, flip=True), "2", role="shadow", fraction=1.0)
    running, client = _served(bus, server_factory)
    wait_until(lambda: running.server.repository.challenger("sea") is not None)
    before = metric("mlops_inference_challenger_requests_total", model="sea", version="2", role="shadow")
    x = np.random.default_rng(0).uniform(0, 10, (3, K))
    result = client.infer("sea", rows(x), request_id="req-1")
    assert result.get_response().model_version == "1"  # the client gets the champion's answer
    topic = bus.topic(PREDICTIONS)
    wait_until(lambda: len(bus.records(topic)) == 2)
    by_role = {msg.role: (msg, ids) for msg, ids in logged(bus.records(topic))}
    assert set(by_role) == {"champion", "shadow"}
    champion, shadow = by_role["champion"], by_role["shadow"]
    assert (champion[0].model_version, shadow[0].model_version) == ("1", "2")
    assert champion[1] == shadow[1] == ["req-1/0", "req-1/1", "req-1/2"]
    assert shadow[0].request_id == "req-1" and np.array_equal(shadow[0].x, champion[0].x)
    assert shadow[0].trace_id == champion[0].trace_id  # logged under the request's trace
    shadow_scores = shadow[0].scores
    expected = running.server.repository.get("sea", "2").run(x.astype(np.float32))[1][:, 1]
    assert np.allclose(shadow_scores, expected, atol=1e-6)
    assert not np.allclose(shadow_scores, champion[0].scores)  # the flipped model: another answer
    assert metric("mlops_inference_challenger_requests_total", model="sea", version="2", role="shadow") == before + 1
    client.close()


def test_canary_answers_its_share_sticky_by_entity_then_retire_withdraws_it(server_factory) -> None:  # type: ignore
    bus = MemoryBus()
    publish_definitions(bus)
    announce(bus, make_onnx(seed=1), "1")
    announce(bus, make_onnx(seed=2, flip=True), "2", role="canary", fraction=0.5)
    running, client = _served(bus, server_factory)
    wait_until(lambda: running.server.repository.challenger("sea") is not None)
    x = np.ones((2, K))
    entities = [f"customer-{i}" for i in range(40)]
    answered: dict[str, set[str]] = {e: set() for e in entities}
    for round_ in range(3):
        for e in entities:  # several entities in one request: the first one decides, the whole request follows
            response = client.infer("sea", rows(x, [e, "someone-else"]), request_id=f"{e}-{round_}").get_response()
            answered[e].add(response.model_version)
    assert all(len(v) == 1 for v in answered.values())  # sticky: an entity always meets the same version
    assert {e for e, v in answered.items() if v == {"2"}} == {e for e in entities if share(e) < 0.5}
    assert 0 < sum(v == {"2"} for v in answered.values()) < len(entities)
    # explicitly naming a version bypasses the canary
    canaried = next(e for e in entities if answered[e] == {"2"})
    assert client.infer("sea", rows(x[:1], [canaried]), model_version="1").get_response().model_version == "1"
    topic = bus.topic(PREDICTIONS)
    wait_until(lambda: len({m.request_id for m, _ in logged(bus.records(topic))}) == 3 * len(entities) + 1)
    roles = {(msg.role, msg.model_version) for msg, _ in logged(bus.records(topic))}
    assert roles == {("champion", "1"), ("canary", "2")}  # canary rows say so; nothing is mirrored
    assert metric("mlops_inference_challenger_traffic_fraction", model="sea", version="2", role="canary") == 0.5

    announce(bus, None, "2", action="retire", role="canary")
    wait_until(lambda: running.server.repository.challenger("sea") is None)
    assert client.infer("sea", rows(x[:1], [canaried])).get_response().model_version == "1"
    assert metric("mlops_inference_challenger_traffic_fraction", model="sea", version="2", role="canary") == 0
    client.close()


def test_a_second_version_on_fewer_features_reads_its_own_columns(server_factory) -> None:  # type: ignore
    bus = MemoryBus()
    publish_definitions(bus)
    announce(bus, make_onnx(seed=1), "1")
    fewer = SEA_FEATURES[2:]  # trained after two features were dropped: its inputs are a subset, reordered below
    announce(bus, make_onnx(seed=2, k=len(fewer)), "2", role="shadow", fraction=1.0, features=fewer)
    running, client = _served(bus, server_factory)
    wait_until(lambda: running.server.repository.challenger("sea") is not None)
    x = np.random.default_rng(5).uniform(0, 10, (2, K))
    client.infer("sea", rows(x), request_id="fewer")
    topic = bus.topic(PREDICTIONS)
    wait_until(lambda: {m.role for m, _ in logged(bus.records(topic))} == {"champion", "shadow"})
    shadow = next(m for m, _ in logged(bus.records(topic)) if m.role == "shadow")
    assert shadow.feature_names == fewer and np.allclose(shadow.x, x[:, 2:])
    expected = running.server.repository.get("sea", "2").run(x[:, 2:].astype(np.float32))[1]
    assert np.allclose(shadow.outputs, expected, atol=1e-6)

    announce(bus, make_onnx(seed=2, k=len(fewer)), "2", role="canary", fraction=1.0, features=fewer)
    wait_until(lambda: (c := running.server.repository.challenger("sea")) is not None and c.role == "canary")
    result = client.infer("sea", rows(x, ["a", "b"]))  # the client sends the champion's inputs; the canary its own
    assert result.get_response().model_version == "2"
    assert np.allclose(result.as_numpy("probabilities"), expected, atol=1e-6)
    client.close()


def test_replay_keeps_the_last_record_per_slot(server_factory) -> None:  # type: ignore[no-untyped-def]
    bus = MemoryBus()
    publish_definitions(bus)
    announce(bus, make_onnx(seed=1), "1")
    announce(bus, make_onnx(seed=2), "2", role="shadow", fraction=1.0)
    announce(bus, None, "2", action="retire", role="shadow")  # retired before this replica started
    announce(bus, make_onnx(seed=3), "3", role="canary", fraction=0.2)
    announce(bus, make_onnx(seed=4), "4")  # a later champion does not clear the challenger slot
    running, client = _served(bus, server_factory)
    wait_until(lambda: running.server.repository.challenger("sea") is not None)
    second = running.server.repository.challenger("sea")
    assert running.server.repository.champion_version("sea") == "4"
    assert second is not None and (second.model.version, second.role, second.fraction) == ("3", "canary", 0.2)
    assert "2" not in running.server.repository.versions("sea")  # the retired shadow was never loaded

    # the challenger promoted: the champion now, no longer a second version; the old champion returns as guard
    announce(bus, make_onnx(seed=3), "3")
    wait_until(lambda: running.server.repository.champion_version("sea") == "3")
    assert running.server.repository.challenger("sea") is None
    announce(bus, make_onnx(seed=4), "4", role="guard", fraction=1.0)
    wait_until(lambda: running.server.repository.challenger("sea") is not None)
    guard = running.server.repository.challenger("sea")
    assert guard is not None and (guard.model.version, guard.role) == ("4", "guard")
    client.infer("sea", rows(np.ones((1, K))), request_id="after-promotion")
    topic = bus.topic(PREDICTIONS)
    wait_until(lambda: {m.role for m, ids in logged(bus.records(topic)) if ids == ["after-promotion"]} ==
               {"champion", "guard"})
    client.close()


def test_a_bad_share_or_role_is_refused_and_what_serves_stays(server_factory) -> None:  # type: ignore
    bus = MemoryBus()
    publish_definitions(bus)
    announce(bus, make_onnx(seed=1), "1")
    running, client = _served(bus, server_factory)
    announce(bus, make_onnx(seed=2), "2", role="shadow", fraction=1.5)
    announce(bus, make_onnx(seed=3), "3", role="shadowy", fraction=0.5)
    follower = running.server.promotions
    wait_until(lambda: follower.errors == 2)  # each refused, also when both arrive in one read
    assert running.server.repository.challenger("sea") is None
    assert running.server.repository.champion_version("sea") == "1"
    client.close()


def test_a_bad_record_after_a_good_one_does_not_hide_it(server_factory) -> None:  # type: ignore
    bus = MemoryBus()
    publish_definitions(bus)
    announce(bus, make_onnx(seed=1), "1")
    announce(bus, make_onnx(seed=2), "2", role="shadow", fraction=0.5)
    announce(bus, make_onnx(seed=3), "3", role="canary", fraction=2.0)  # same slot, later: the replay's last
    running, client = _served(bus, server_factory)
    wait_until(lambda: running.server.repository.challenger("sea") is not None)
    second = running.server.repository.challenger("sea")
    assert second is not None and (second.model.version, second.role, second.fraction) == ("2", "shadow", 0.5)
    assert running.server.promotions.errors == 1
    client.close()


def test_unsigned_or_wrongly_signed_challengers_are_refused(server_factory) -> None:  # type: ignore
    bus = MemoryBus()
    publish_definitions(bus)
    announce(bus, make_onnx(seed=1), "1", key=KEY)
    running, client = _served(bus, server_factory, security=SecuritySettings(promotion_key=KEY))
    refused = metric("mlops_inference_promotions_refused_total")
    announce(bus, make_onnx(seed=2), "2", role="shadow", fraction=1.0)  # unsigned
    announce(bus, make_onnx(seed=3), "3", role="canary", fraction=1.0, key=KEY, signed_role="")  # signed as champion
    announce(bus, make_onnx(seed=4), "4", role="shadow", fraction=1.0, key=SecretStr("another-key"))
    wait_until(lambda: metric("mlops_inference_promotions_refused_total") == refused + 3)
    assert running.server.repository.challenger("sea") is None
    announce(bus, make_onnx(seed=5), "5", role="shadow", fraction=1.0, key=KEY)
    wait_until(lambda: running.server.repository.challenger("sea") is not None)
    announce(bus, None, "5", action="retire", role="shadow")  # an unsigned retire cannot withdraw it either
    wait_until(lambda: metric("mlops_inference_promotions_refused_total") == refused + 4)
    assert running.server.repository.challenger("sea") is not None
    assert {"2", "3", "4"}.isdisjoint(running.server.repository.versions("sea"))
    client.close()


class _BlockingModel:
    """A model whose run waits until released: the mirror's thread stays busy while requests keep coming."""

    name, version = "sea", "9"

    def __init__(self) -> None:
        self.release, self.entered = threading.Event(), threading.Event()

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        self.entered.set()
        self.release.wait(30)
        return [np.zeros(len(x), np.int64), np.full((len(x), 2), 0.5, np.float32)]


def test_a_full_mirror_queue_drops_new_work_and_counts_it() -> None:
    spec = build_catalog(revision(SEA)).get("sea")
    assert spec.task is Task.BINARY
    model = _BlockingModel()
    served: list[ServedBatch] = []
    mirror = Mirror(served.append, max_rows=4, batch_rows=256, interval_s=0.0)

    binding = Binding(spec, 1)

    def job(request_id: str, n: int = 2, entities: list[str] | None = None) -> MirrorJob:
        return MirrorJob(model, binding, spec, "shadow", request_id, np.zeros((n, K), np.float32),  # type: ignore
                         entities, None, 0.0, None)

    before = metric("mlops_inference_mirror_dropped_total", model="sea", role="shadow", reason="queue_full")
    try:
        assert mirror.offer(job("busy"))
        assert model.entered.wait(10)  # the thread is inside the model now; what follows waits in the queue
        assert mirror.offer(job("a")) and mirror.offer(job("b", 1, ["e-1"])) and mirror.offer(job("c", 1))
        assert not mirror.offer(job("d"))  # 4 rows wait: a fifth is not queued, and offer returned at once
        assert metric("mlops_inference_mirror_dropped_total", model="sea", role="shadow",
                      reason="queue_full") == before + 1
    finally:
        model.release.set()
        mirror.close()
    assert [b.request_id for b in served] == ["busy", "a"]  # what queued meanwhile is scored and logged together
    merged = served[1]
    assert merged.role == "shadow" and merged.output.shape == (4, 2)
    assert merged.row_request_ids == ["a/0", "a/1", "b", "c"]  # as the champion's rows derive them
    assert merged.entity_ids == ["", "", "e-1", ""] and merged.row_keys == ["a", "a", "e-1", "c"]
    # one record per partition; each row lies where its request's champion record went (its entity, else its id)
    records = convert.prediction_batches(merged, partitions=4)
    placed = {rid: zlib.crc32(key.encode()) % 4 for key, msg in records for rid in from_batch(msg).request_ids()}
    assert placed == {rid: zlib.crc32(k.encode()) % 4 for rid, k in zip(merged.row_request_ids, merged.row_keys,
                                                                       strict=True)}
    assert all(msg.role == "shadow" for _, msg in records)


@pytest.mark.parametrize("features", [SEA_FEATURES[:4], SEA_FEATURES])
def test_columns_for_maps_a_second_versions_inputs(features: tuple[str, ...]) -> None:
    from services.inference.core import columns_for

    catalog = build_catalog(revision(SEA))
    champion = catalog.get("sea")
    second = catalog.for_inputs("sea", tuple(reversed(features)))
    assert [champion.feature_names[i] for i in columns_for(champion, second) or []] == list(reversed(features))


class _BrokenModel(_BlockingModel):
    version = "8"

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        raise RuntimeError("onnxruntime says no")


def test_a_failing_second_version_is_counted_and_the_mirror_lives_on(caplog) -> None:  # type: ignore
    spec = build_catalog(revision(SEA)).get("sea")
    served: list[ServedBatch] = []
    mirror = Mirror(served.append, max_rows=100, batch_rows=256, interval_s=0.0)
    good = _BlockingModel()
    good.release.set()
    before = metric("mlops_inference_mirror_dropped_total", model="sea", role="guard", reason="failed")
    try:
        assert mirror.offer(MirrorJob(_BrokenModel(), Binding(spec, 1), spec, "guard", "r1",  # type: ignore[arg-type]
                                      np.zeros((1, K), np.float32), None, None, 0.0, None))
        wait_until(lambda: metric("mlops_inference_mirror_dropped_total", model="sea", role="guard",
                                  reason="failed") == before + 1)
        assert mirror.offer(MirrorJob(good, Binding(spec, 1), spec, "guard", "r2",  # type: ignore[arg-type]
                                      np.zeros((1, K), np.float32), None, None, 0.0, None))
        wait_until(lambda: [b.request_id for b in served] == ["r2"])
    finally:
        mirror.close()
    (failed,) = [r for r in caplog.records if r.getMessage() == "mirrored scoring failed"]
    assert failed.fields == {"model": "sea", "version": "8", "role": "guard",  # type: ignore[attr-defined]
                             "error": "onnxruntime says no"}


def test_the_mirror_thread_runs_at_a_lower_cpu_priority_than_the_request_path() -> None:
    # the request path's priority is untouched; the mirror's thread (which also runs the onnxruntime call) is niced
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    mirror = Mirror(lambda batch: None, max_rows=10, batch_rows=10, interval_s=0.0, nice=5)
    try:
        tid = mirror._thread.native_id
        assert tid is not None
        wait_until(lambda: os.getpriority(os.PRIO_PROCESS, tid) == min(19, base + 5), 5)
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base
    finally:
        mirror.close()
