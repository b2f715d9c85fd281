"""Unit tests of the transport-free parts and the conversions around them: convert, repository, batcher, data plane,
the error tree and its one status table (no broker, no network)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from inference_helpers import K, make_onnx
from mlops.contracts import models_pb2
from mlops.contracts.oip import pb2
from mlops.errors import MlopsError
from mlops.online_store import OnlineFeatures
from mlops.schema import FEATURE_SET

from services.inference import convert
from services.inference.core import (
    Batcher,
    BatchPolicy,
    DataPlane,
    InferRequest,
    ModelRepository,
    ModelVersion,
    Promotion,
    Tensor,
)
from services.inference.edge import STATUS_CODES, status_code
from services.inference.errors import (
    EntityNotFound,
    InferenceError,
    InvalidInput,
    ModelLoadError,
    ModelNotFound,
    NoOnlineStore,
    ShuttingDown,
    TooLarge,
)
from services.inference.settings import InferenceSettings


@pytest.fixture(scope="module")
def model() -> ModelVersion:
    return ModelVersion.load("sea", "1", make_onnx(), FEATURE_SET.names)


def test_model_metadata_and_cpu_fallback(model: ModelVersion) -> None:
    assert model.input.name == "input" and model.input.datatype == "FP32" and model.n_features == K
    assert [o.name for o in model.outputs] == ["label", "probabilities"]
    assert "CPUExecutionProvider" in model.providers  # this machine has no usable CUDA


def test_decode_raw_and_contents_and_garbage() -> None:
    x = np.arange(2 * K, dtype=np.float32).reshape(2, K)
    msg = pb2.ModelInferRequest(model_name="sea", id="r1")
    msg.inputs.add(name="input", datatype="FP32", shape=[2, K])
    msg.raw_input_contents.append(x.tobytes())
    req = convert.decode_request(msg)
    assert req.id == "r1" and np.array_equal(req.inputs[0].data, x)

    msg2 = pb2.ModelInferRequest(model_name="sea")
    t = msg2.inputs.add(name="entity_id", datatype="BYTES", shape=[2])
    t.contents.bytes_contents.extend([b"a", b"b"])
    assert convert.decode_request(msg2).inputs[0].data == [b"a", b"b"]

    raw_bytes = convert.encode_bytes_tensor([b"e1", b"entity-2"])
    assert convert.decode_bytes_tensor(raw_bytes, 2, "entity_id") == [b"e1", b"entity-2"]
    with pytest.raises(InvalidInput, match="runs past the end"):
        convert.decode_bytes_tensor(b"\xff\x00\x00\x00abc", 1, "entity_id")

    bad = pb2.ModelInferRequest(model_name="sea")
    bad.inputs.add(name="input", datatype="FP32", shape=[2, K])
    bad.raw_input_contents.append(b"\x01\x02\x03")
    with pytest.raises(InvalidInput, match="has 3 bytes"):
        convert.decode_request(bad)
    neg = pb2.ModelInferRequest(model_name="sea")
    neg.inputs.add(name="input", datatype="FP32", shape=[-1, K])
    with pytest.raises(InvalidInput, match="negative"):
        convert.decode_request(neg)


def test_repository_retains_last_versions(model: ModelVersion) -> None:
    repo = ModelRepository(retain=2)
    data = make_onnx(1)
    for v in ("1", "2", "3"):
        repo.promote(ModelVersion.load("sea", v, data, FEATURE_SET.names))
    assert repo.champion_version("sea") == "3" and repo.versions("sea") == ["2", "3"]
    assert repo.get("sea", "2").version == "2"
    with pytest.raises(ModelNotFound, match="version '1'"):
        repo.get("sea", "1")
    with pytest.raises(ModelNotFound):
        repo.get("other")


class FakeFeatures:
    """An in-memory stand-in for AsyncOnlineStore's read interface (unit tests only; integration uses Redis)."""

    def __init__(self, rows: dict[str, dict[str, float]]):
        self.rows, self.calls = rows, 0

    async def read_many(self, ids):  # type: ignore[no-untyped-def]
        self.calls += 1
        return [OnlineFeatures(e, self.rows[e], 123, 1) if e in self.rows else None for e in ids]


async def test_dataplane_raw_entity_and_errors(model: ModelVersion) -> None:
    repo = ModelRepository()
    repo.promote(model)
    features = FakeFeatures({"e1": dict.fromkeys(FEATURE_SET.names, 9.0),
                             "e2": dict.fromkeys(FEATURE_SET.names, 1.0)})
    with ThreadPoolExecutor(2) as ex:
        batcher = Batcher(ex, BatchPolicy(max_rows=64, max_wait_s=0.0, max_in_flight=2))
        dp = DataPlane(InferenceSettings(max_request_rows=10), repo, batcher, features)
        x = np.full((1, K), 9.0, dtype=np.float32)
        raw = await dp.infer(InferRequest("sea", inputs=[Tensor("input", "FP32", (1, K), x)]))
        ids = Tensor("entity_id", "BYTES", (2,), [b"e1", b"e2"])
        by_entity = await dp.infer(InferRequest("sea", inputs=[ids]))
        assert features.calls == 1  # one round trip for the batch
        probs = by_entity.outputs[1].data
        assert probs.shape == (2, 2) and np.allclose(probs[0], raw.outputs[1].data[0], atol=1e-6)
        assert by_entity.id  # generated when the request had none
        with pytest.raises(EntityNotFound, match="'nope'"):
            await dp.infer(InferRequest("sea", parameters={"entity_id": "e1,nope"}))
        with pytest.raises(InvalidInput, match="shape"):
            narrow = Tensor("input", "FP32", (1, 3), np.zeros((1, 3), np.float32))
            await dp.infer(InferRequest("sea", inputs=[narrow]))
        with pytest.raises(InvalidInput, match="must be FP32"):
            await dp.infer(InferRequest("sea", inputs=[Tensor("input", "FP64", (1, K), np.zeros((1, K)))]))
        nan = x.copy()
        nan[0, 2] = np.nan
        with pytest.raises(InvalidInput, match="NaN"):
            await dp.infer(InferRequest("sea", inputs=[Tensor("input", "FP32", (1, K), nan)]))
        with pytest.raises(TooLarge):
            big = Tensor("input", "FP32", (11, K), np.zeros((11, K), np.float32))
            await dp.infer(InferRequest("sea", inputs=[big]))
        with pytest.raises(InvalidInput, match="unknown output"):
            await dp.infer(InferRequest("sea", inputs=[Tensor("input", "FP32", (1, K), x)], outputs=["nope"]))
        dflt = DataPlane(InferenceSettings(missing_entity_default=0.0), repo, batcher, features)
        out = await dflt.infer(InferRequest("sea", parameters={"entity_id": "nope"}))
        assert out.outputs[0].data.shape == (1,)
        await batcher.close()


async def test_batcher_merges_concurrent_requests(model: ModelVersion) -> None:
    calls: list[int] = []
    original = model.run

    def counting(x: np.ndarray) -> list[np.ndarray]:
        calls.append(len(x))
        return original(x)

    rng = np.random.default_rng(3)
    xs = [rng.uniform(0, 10, (1 + i % 3, K)).astype(np.float32) for i in range(40)]
    with ThreadPoolExecutor(1) as ex:
        batcher = Batcher(ex, BatchPolicy(max_rows=64, max_wait_s=0.002, max_in_flight=1))
        model.run = counting  # type: ignore[method-assign]
        try:
            results = await asyncio.gather(*(batcher.submit(model, x) for x in xs))
        finally:
            model.run = original  # type: ignore[method-assign]
            await batcher.close()
    for x, outs in zip(xs, results, strict=True):  # every caller got exactly its own rows
        assert np.allclose(outs[1], original(x)[1], atol=1e-6)
    assert sum(calls) == sum(len(x) for x in xs) and len(calls) < len(xs)


def test_errors_root_at_mlops_error_and_each_has_its_status() -> None:
    assert issubclass(InferenceError, MlopsError)
    classes = {InvalidInput, ModelNotFound, EntityNotFound, TooLarge, ShuttingDown, NoOnlineStore, ModelLoadError}
    assert {type(e) for e in (InvalidInput("x"), ModelNotFound("m"), EntityNotFound(["e"]), TooLarge(2, 1),
                              ShuttingDown(), NoOnlineStore(), ModelLoadError("m:1", "x"))} == classes
    assert status_code(ShuttingDown()) == status_code(NoOnlineStore()) == grpc.StatusCode.UNAVAILABLE
    assert status_code(InvalidInput("bad", tensor="input")) == grpc.StatusCode.INVALID_ARGUMENT
    assert str(InvalidInput("bad", tensor="input")) == "input 'input': bad"
    assert set(STATUS_CODES.values()) >= {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED}


def test_promotion_from_its_message() -> None:
    msg = models_pb2.ModelPromoted(model_name="sea", version="3", artifact_sha256="ab", feature_names=["x0", "x1"])
    assert convert.promotion(msg) == Promotion("sea", "3", "ab", ("x0", "x1"), "promote")
