"""Unit tests of the transport-free parts and the conversions around them: convert, repository, batcher, data plane,
the error tree and its one status table (no broker, no network)."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from inference_helpers import SEA, SEA_COLUMNS, SEA_FEATURES, K, make_onnx, revision
from mlops.contracts import models_pb2
from mlops.contracts.oip import pb2
from mlops.definitions.model import ServingPolicy
from mlops.errors import MlopsError
from mlops.online_store import MemoryOnlineStore, ViewLayout, ViewUpdate

from services.inference import convert
from services.inference.core import (
    Batcher,
    BatchPolicy,
    DataPlane,
    InferRequest,
    ModelRepository,
    ModelVersion,
    Promotion,
    SessionOptions,
    Tensor,
    build_catalog,
)
from services.inference.core import models as models_module
from services.inference.edge import STATUS_CODES, status_code
from services.inference.errors import (
    EntityNotFound,
    InferenceError,
    InvalidInput,
    ModelLoadError,
    ModelMismatch,
    ModelNotFound,
    NoDefinitions,
    NoOnlineStore,
    ShuttingDown,
    TooLarge,
)
from services.inference.settings import InferenceSettings


@pytest.fixture(scope="module")
def model() -> ModelVersion:
    return ModelVersion.load("sea", "1", make_onnx(), SEA_FEATURES)


def test_model_metadata_and_outputs_match_a_fresh_onnxruntime_session(model: ModelVersion) -> None:
    assert model.input.name == "input" and model.input.datatype == "FP32" and model.n_features == K
    assert [o.name for o in model.outputs] == ["label", "probabilities"]
    # what the service computes is what plain onnxruntime computes on the same bytes
    x = np.random.default_rng(3).uniform(0, 10, (257, K)).astype(np.float32)
    plain = ort.InferenceSession(make_onnx(), providers=["CPUExecutionProvider"]).run(None, {"input": x})
    got = model.run(x)
    assert np.array_equal(got[0], plain[0]) and np.allclose(got[1], plain[1], rtol=0, atol=1e-6)
    assert len(set(got[0].tolist())) == 2  # both classes occur: the comparison is not of constants


def test_cuda_that_fails_falls_back_to_cpu_and_says_so(monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """CUDA asked for and failing (as on a machine without a GPU, whatever onnxruntime-gpu lists): the model is served
    on CPU, the log says so, and later loads stop asking for CUDA."""
    real, asked = ort.InferenceSession, []

    def session(data: bytes, sess_options: object = None, providers: list[str] = ()) -> ort.InferenceSession:  # type: ignore[assignment]
        asked.append(list(providers))
        if "CUDAExecutionProvider" in providers:
            raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected")
        return real(data, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(models_module, "_cuda_works", None)  # as in a fresh process
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", session)
    caplog.set_level(logging.WARNING, logger="mlops.inference")
    first = ModelVersion.load("sea", "7", make_onnx(), SEA_FEATURES, options=SessionOptions(use_cuda=True))
    assert asked[:2] == [["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]]
    assert first.providers == ["CPUExecutionProvider"]
    messages = [r.getMessage() for r in caplog.records]
    assert "CUDA session failed; using CPU" in messages
    assert any(m.startswith("CUDAExecutionProvider unavailable") for m in messages)
    asked.clear()
    ModelVersion.load("sea", "8", make_onnx(), SEA_FEATURES, options=SessionOptions(use_cuda=True))
    assert asked == [["CPUExecutionProvider"]]  # learnt once: no second CUDA attempt


def test_cuda_requested_gets_what_onnxruntime_really_provides(monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """The real onnxruntime-gpu: on a GPU machine the session runs on CUDA; without one (CUDA listed, not loadable)
    on CPU, with the warning. A fresh plain session with the same request is the independent view."""
    monkeypatch.setattr(models_module, "_cuda_works", None)
    caplog.set_level(logging.WARNING, logger="mlops.inference")
    data = make_onnx()
    if "CUDAExecutionProvider" in ort.get_available_providers():
        wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        expected = ort.InferenceSession(data, providers=wanted).get_providers()
    else:
        expected = ["CPUExecutionProvider"]
    mv = ModelVersion.load("sea", "9", data, SEA_FEATURES, options=SessionOptions(use_cuda=True))
    assert mv.providers == expected
    warned = any(r.getMessage().startswith("CUDAExecutionProvider unavailable") for r in caplog.records)
    assert warned == ("CUDAExecutionProvider" not in expected and "CUDAExecutionProvider" in
                      ort.get_available_providers())
    x = np.ones((4, K), dtype=np.float32)
    plain = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"input": x})
    assert np.allclose(mv.run(x)[1], plain[1], atol=1e-5)


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
        repo.promote(ModelVersion.load("sea", v, data, SEA_FEATURES))
    assert repo.champion_version("sea") == "3" and repo.versions("sea") == ["2", "3"]
    assert repo.get("sea", "2").version == "2"
    with pytest.raises(ModelNotFound, match="version '1'"):
        repo.get("sea", "1")
    with pytest.raises(ModelNotFound):
        repo.get("other")


SEA_CATALOG = build_catalog(revision(SEA))
LAYOUT = ViewLayout.of(SEA, "entity_activity", 1)


async def _store(rows: dict[str, float]) -> MemoryOnlineStore:
    store = MemoryOnlineStore()
    await store.write_many([ViewUpdate(LAYOUT, e, dict.fromkeys(SEA_COLUMNS, v), 123) for e, v in rows.items()])
    return store


class Counting:
    """The memory store, counting reads (one per view for a request's whole batch)."""

    def __init__(self, store: MemoryOnlineStore):
        self.store, self.calls = store, 0

    async def read_many(self, layout, ids):  # type: ignore[no-untyped-def]
        self.calls += 1
        return await self.store.read_many(layout, ids)


async def test_dataplane_raw_entity_and_errors(model: ModelVersion) -> None:
    repo = ModelRepository()
    repo.promote(model)
    features = Counting(await _store({"e1": 9.0, "e2": 1.0}))
    with ThreadPoolExecutor(2) as ex:
        batcher = Batcher(ex, BatchPolicy(max_rows=64, max_wait_s=0.0, max_in_flight=2))
        dp = DataPlane(InferenceSettings(max_request_rows=10), repo, batcher, features, catalog=SEA_CATALOG)
        x = np.full((1, K), 9.0, dtype=np.float32)
        raw = await dp.infer(InferRequest("sea", inputs=[Tensor("input", "FP32", (1, K), x)]))
        ids = Tensor("entity_id", "BYTES", (2,), [b"e1", b"e2"])
        by_entity = await dp.infer(InferRequest("sea", inputs=[ids]))
        assert features.calls == 1  # one round trip for the batch
        (probs,) = [t.data for t in by_entity.outputs if t.name == "probabilities"]
        assert probs.shape == (2, 2) and np.allclose(probs[0], raw.outputs[0].data[0], atol=1e-6)
        assert by_entity.id  # generated when the request had none
        with pytest.raises(EntityNotFound, match="'nope'.*missing_entity: error"):
            await dp.infer(InferRequest("sea", parameters={"entity_id": "e1,nope"}))
        with pytest.raises(InvalidInput, match="shape"):
            narrow = Tensor("input", "FP32", (1, 3), np.zeros((1, 3), np.float32))
            await dp.infer(InferRequest("sea", inputs=[narrow]))
        with pytest.raises(InvalidInput, match="must be FP32"):
            await dp.infer(InferRequest("sea", inputs=[Tensor("input", "FP64", (1, K), np.zeros((1, K)))]))
        nan = x.copy()
        nan[0, 2] = np.nan
        with pytest.raises(InvalidInput, match="NaN.*x2_last"):
            await dp.infer(InferRequest("sea", inputs=[Tensor("input", "FP32", (1, K), nan)]))
        with pytest.raises(TooLarge):
            big = Tensor("input", "FP32", (11, K), np.zeros((11, K), np.float32))
            await dp.infer(InferRequest("sea", inputs=[big]))
        with pytest.raises(InvalidInput, match="unknown output"):
            await dp.infer(InferRequest("sea", inputs=[Tensor("input", "FP32", (1, K), x)], outputs=["label"]))
        with pytest.raises(ModelNotFound, match="'nope' is not declared; served models: sea"):
            await dp.infer(InferRequest("nope", inputs=[Tensor("input", "FP32", (1, K), x)]))
        lenient = SEA.model_copy(update={"models": (SEA.models[0].model_copy(
            update={"serving": ServingPolicy(missing_entity="defaults")}),)})
        dflt = DataPlane(InferenceSettings(), repo, batcher, features, catalog=build_catalog(revision(lenient)))
        out = await dflt.infer(InferRequest("sea", parameters={"entity_id": "nope"}))
        assert out.outputs[0].data.shape == (1, 2)  # served on NaN features (the model's own handling)
        with pytest.raises(NoDefinitions):
            await DataPlane(InferenceSettings(), repo, batcher, features).infer(InferRequest("sea"))
        await batcher.close()


async def test_a_version_that_does_not_fit_its_declaration_is_refused() -> None:
    repo = ModelRepository()
    repo.promote(ModelVersion.load("sea", "1", make_onnx(k=4), ()))
    with ThreadPoolExecutor(1) as ex:
        dp = DataPlane(InferenceSettings(), repo, Batcher(ex, BatchPolicy()), catalog=SEA_CATALOG)
        with pytest.raises(ModelMismatch, match="4 columns; the declaration has 6 features"):
            await dp.infer(InferRequest("sea", inputs=[Tensor("input", "FP32", (1, K), np.ones((1, K), np.float32))]))
        assert not dp.model_ready("sea")  # a misfit is not ready


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
    classes = {InvalidInput, ModelNotFound, EntityNotFound, TooLarge, ShuttingDown, NoOnlineStore, ModelLoadError,
               ModelMismatch, NoDefinitions}
    assert {type(e) for e in (InvalidInput("x"), ModelNotFound("m"), EntityNotFound(["e"]), TooLarge(2, 1),
                              ShuttingDown(), NoOnlineStore(), ModelLoadError("m:1", "x"), ModelMismatch("m:1", "x"),
                              NoDefinitions())} == classes
    assert status_code(ShuttingDown()) == status_code(NoOnlineStore()) == grpc.StatusCode.UNAVAILABLE
    assert status_code(NoDefinitions()) == grpc.StatusCode.UNAVAILABLE
    assert status_code(ModelMismatch("m:1", "x")) == grpc.StatusCode.FAILED_PRECONDITION
    assert status_code(InvalidInput("bad", tensor="input")) == grpc.StatusCode.INVALID_ARGUMENT
    assert str(InvalidInput("bad", tensor="input")) == "input 'input': bad"
    assert set(STATUS_CODES.values()) >= {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED}


def test_promotion_from_its_message() -> None:
    msg = models_pb2.ModelPromoted(model_name="sea", version="3", artifact_sha256="ab", feature_names=["x0", "x1"])
    assert convert.promotion(msg) == Promotion("sea", "3", "ab", ("x0", "x1"), "promote")


def test_metadata_carries_the_input_feature_names_on_the_wire() -> None:
    from services.inference.core.domain import ModelInfo, TensorInfo

    info = ModelInfo("sea", ("3",), "onnxruntime_onnx",
                     (TensorInfo("input", "FP32", (-1, 2), {"feature_names": "v.a,v.b"}),),
                     (TensorInfo("probabilities", "FP32", (-1, 2)),))
    wire = pb2.ModelMetadataResponse.FromString(convert.encode_metadata(info).SerializeToString())
    assert wire.inputs[0].parameters["feature_names"].string_param == "v.a,v.b"
    assert not wire.outputs[0].parameters
