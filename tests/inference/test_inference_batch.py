"""Integration: `mlops score` against the real Kafka and Redis scores the same rows exactly as the running service
does — by entity id (online features) from CSV and by declared feature columns from Parquet. The registry is a
stand-in answering GetModel (the CLI only asks it which version and artifact to use)."""

from __future__ import annotations

import csv
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tritonclient.grpc as tc
from inference_helpers import SEA, SEA_COLUMNS, SEA_FEATURES, K, make_onnx, publish_definitions, wait_until
from mlops.artifacts import publish_artifact
from mlops.bus import KafkaBus, Producer
from mlops.contracts import models_pb2
from mlops.contracts.v1 import registry_service_pb2 as api
from mlops.contracts.v1 import registry_service_pb2_grpc as api_grpc
from mlops.online_store import RedisOnlineStore, SyncRedisOnlineStore, ViewLayout
from mlops.topics import MODEL_PROMOTED, topic_name
from mlops_tools.cli import main as mlops

ROOT = Path(__file__).resolve().parents[2]


class OneModelRegistry(api_grpc.ModelRegistryServicer):
    def __init__(self, name: str, versions: dict[str, str], champion: str):
        self.name, self.versions, self.champion = name, versions, champion

    def GetModel(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802 (gRPC method name)
        if request.name != self.name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model {request.name!r}")
        return api.GetModelResponse(name=self.name, champion_version=self.champion, versions=[
            api.ModelVersion(version=v, artifact_sha256=sha, status="champion" if v == self.champion else "retired")
            for v, sha in self.versions.items() if not request.version or v == request.version])


@pytest.fixture
def registry_factory():  # type: ignore[no-untyped-def]
    servers: list[grpc.Server] = []

    def make(servicer: api_grpc.ModelRegistryServicer) -> str:
        server = grpc.server(futures.ThreadPoolExecutor(2))
        api_grpc.add_ModelRegistryServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield make
    for server in servers:
        server.stop(0)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_batch_scoring_equals_online_scoring(server_factory, registry_factory, kafka_settings, redis_settings,
                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    bus = KafkaBus(kafka_settings)
    publish_definitions(bus)
    producer = Producer(kafka_settings, client_id="test-registry")
    shas = {v: publish_artifact(producer, kafka_settings, make_onnx(seed=s, flip=bool(s)))
            for v, s in (("1", 0), ("2", 1))}
    producer.send(topic_name(MODEL_PROMOTED, kafka_settings), models_pb2.ModelPromoted(
        model_name="sea", version="2", artifact_sha256=shas["2"], feature_names=list(SEA_FEATURES)), key="sea")
    producer.flush()
    rng = np.random.default_rng(11)
    ids = [f"e{i}" for i in range(30)]
    layout = ViewLayout.of(SEA, "entity_activity", 1)
    x = rng.uniform(0, 10, (len(ids), K)).astype(np.float32)
    store = SyncRedisOnlineStore(redis_settings)
    for e, row in zip(ids, x.tolist(), strict=True):
        store.write(layout, e, dict(zip(SEA_COLUMNS, row, strict=True)), 1)
    store.close()

    running = server_factory(bus, RedisOnlineStore(redis_settings), watch_promotions=True)
    client = tc.InferenceServerClient(running.url)
    wait_until(client.is_server_ready)
    inp = tc.InferInput("entity_id", [len(ids)], "BYTES")
    inp.set_data_from_numpy(np.array([e.encode() for e in ids], dtype=np.object_))
    online = client.infer("sea", [inp]).as_numpy("probabilities")
    client.close()

    # the child process gets the test's prefixes and this worktree's code
    monkeypatch.setenv("MLOPS_KAFKA_BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
    monkeypatch.setenv("MLOPS_KAFKA_TOPIC_PREFIX", kafka_settings.topic_prefix)
    monkeypatch.setenv("MLOPS_REDIS_URL", redis_settings.url)
    monkeypatch.setenv("MLOPS_REDIS_KEY_PREFIX", redis_settings.key_prefix)
    monkeypatch.setenv("MLOPS_INFERENCE_USE_CUDA", "false")
    monkeypatch.setenv("PYTHONPATH", f"{ROOT / 'libs'}:{ROOT}:{ROOT / 'tools'}")
    monkeypatch.setenv("MLOPS_REGISTRY_ADDRESS", registry_factory(OneModelRegistry("sea", shas, champion="2")))

    rows = tmp_path / "rows.csv"
    with rows.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["entity_id", "note"])
        writer.writerows([e, f"row {i}"] for i, e in enumerate(ids))
    out = tmp_path / "scored.csv"
    assert mlops(["score", "--model", "sea", "--input", str(rows), "--output", str(out), "--chunk-rows", "7"]) == 0
    scored = _read_csv(out)
    assert [r["entity_id"] for r in scored] == ids and scored[3]["note"] == "row 3"
    batch = np.array([[float(r["probability_0"]), float(r["probability_1"])] for r in scored])
    assert np.allclose(batch, online, atol=1e-6)
    assert [float(r["score"]) for r in scored] == pytest.approx(online[:, 1].tolist(), abs=1e-6)
    assert [float(r["predicted_label"]) for r in scored] == (online[:, 1] >= 0.5).astype(float).tolist()
    assert {r["model_version"] for r in scored} == {"2"}

    # the same rows by their declared feature columns, from Parquet, with version 1
    pq.write_table(pa.table({name: x[:, j] for j, name in enumerate(SEA_FEATURES)}), tmp_path / "rows.parquet")
    out2 = tmp_path / "scored.parquet"
    assert mlops(["score", "--model", "sea", "--version", "1", "--input", str(tmp_path / "rows.parquet"),
                  "--output", str(out2), "--quiet"]) == 0
    table = pq.read_table(out2).to_pydict()
    expected = _run_onnx(make_onnx(seed=0), x)  # version 1 is not served: scored from its artifact alone
    assert np.allclose(table["probability_1"], expected[:, 1], atol=1e-6) and set(table["model_version"]) == {"1"}

    # a model the registry does not know: a clear refusal, no output
    assert mlops(["score", "--model", "nope", "--input", str(rows), "--output", str(tmp_path / "x.csv")]) == 1


def _run_onnx(data: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(["probabilities"], {"input": x})[0]
