"""Unit tests of the fast paths (inline onnxruntime calls, merging while the pool is busy, failures, shutdown) and
of the tracing glue: the ModelInfer server span and span links from a prediction to the feature updates it used.
No broker, no network."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pytest
from inference_helpers import K, make_onnx
from mlops.schema import FEATURE_SET
from mlops.telemetry import setup_tracing
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.inference.core import (
    Batcher,
    BatchPolicy,
    DataPlane,
    InferRequest,
    ModelRepository,
    ModelVersion,
    Tensor,
)
from services.inference.edge import tracing
from services.inference.errors import NotReady
from services.inference.settings import InferenceSettings, effective_inline_max_rows, usable_cpus

FEATURE_TRACE = "0af7651916cd43dd8448eb211c80319c"
FEATURE_SPAN = "b7ad6b7169203331"


@pytest.fixture(scope="module")
def model() -> ModelVersion:
    return ModelVersion.load("sea", "1", make_onnx(), FEATURE_SET.names)


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    exp = InMemorySpanExporter()
    setup_tracing("inference-test", exporter=exp)
    return exp


class Recorder:
    """Wraps model.run: which thread ran each call and with how many rows."""

    def __init__(self, model: ModelVersion, fail: bool = False, slow_rows: int = 0):
        self.model, self.original, self.fail, self.slow_rows = model, model.run, fail, slow_rows
        self.calls: list[tuple[int, str]] = []

    def __enter__(self) -> Recorder:
        def run(x: np.ndarray) -> list[np.ndarray]:
            self.calls.append((len(x), threading.current_thread().name))
            if self.fail:
                raise RuntimeError("onnxruntime exploded")
            if self.slow_rows and len(x) > self.slow_rows:
                time.sleep(0.3)  # a long pool call: what arrives meanwhile must queue and merge
            return self.original(x)

        self.model.run = run  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self.model.run = self.original  # type: ignore[method-assign]


async def test_small_batches_run_inline_large_ones_in_the_pool(model: ModelVersion) -> None:
    rng = np.random.default_rng(5)
    small = [rng.uniform(0, 10, (1, K)).astype(np.float32) for _ in range(6)]
    big = rng.uniform(0, 10, (40, K)).astype(np.float32)
    loop_thread = threading.current_thread().name
    with ThreadPoolExecutor(1, thread_name_prefix="ort") as ex, Recorder(model, slow_rows=32) as rec:
        batcher = Batcher(ex, BatchPolicy(max_rows=32, max_wait_s=0.0, max_in_flight=2, inline_max_rows=8))
        idle = await asyncio.gather(*(batcher.submit(model, x) for x in small))
        # an idle batcher runs each small request at once, on the loop thread, without suspending it
        assert rec.calls == [(1, loop_thread)] * 6
        rec.calls.clear()
        alone = asyncio.ensure_future(batcher.submit(model, big))  # >= max_batch_size: its own call, in the pool
        await asyncio.sleep(0)
        busy = await asyncio.gather(*(batcher.submit(model, x) for x in small))
        alone_outs = await alone
        await batcher.close()
    # while the pool call ran (slowly), the six small requests queued and merged into one inline call
    assert sorted(n for n, _ in rec.calls) == [6, 40]
    assert [n for n, t in rec.calls if t == loop_thread] == [6]
    assert [n for n, t in rec.calls if t.startswith("ort")] == [40]
    for x, a, b in zip(small, idle, busy, strict=True):
        assert np.allclose(a[1], rec.original(x)[1], atol=1e-6) and np.allclose(b[1], a[1], atol=1e-6)
    assert np.allclose(alone_outs[1], rec.original(big)[1], atol=1e-6)


async def test_requests_merge_while_the_pool_is_busy(model: ModelVersion) -> None:
    rng = np.random.default_rng(6)
    xs = [rng.uniform(0, 10, (1 + i % 4, K)).astype(np.float32) for i in range(60)]
    with ThreadPoolExecutor(1) as ex, Recorder(model) as rec:
        batcher = Batcher(ex, BatchPolicy(max_rows=16, max_wait_s=0.0, max_in_flight=1, inline_max_rows=0))

        async def later(i: int, x: np.ndarray) -> list[np.ndarray]:
            await asyncio.sleep(0.0005 * (i % 10))  # arrivals spread while calls run
            return await batcher.submit(model, x)

        results = await asyncio.gather(*(later(i, x) for i, x in enumerate(xs)))
        await batcher.close()
    for x, outs in zip(xs, results, strict=True):
        assert np.allclose(outs[1], rec.original(x)[1], atol=1e-6) and len(outs[0]) == len(x)
    sizes = [n for n, _ in rec.calls]
    assert sum(sizes) == sum(len(x) for x in xs) and max(sizes) <= 16 and len(sizes) < len(xs)


async def test_a_failing_call_fails_its_callers_only_and_close_refuses_new_work(model: ModelVersion) -> None:
    x = np.ones((2, K), np.float32)
    with ThreadPoolExecutor(1) as ex:
        for inline in (0, 8):
            batcher = Batcher(ex, BatchPolicy(max_rows=32, max_wait_s=0.0, max_in_flight=1,
                              inline_max_rows=inline))
            with Recorder(model, fail=True):
                results = await asyncio.gather(batcher.submit(model, x), batcher.submit(model, x),
                                               return_exceptions=True)
            assert all(isinstance(r, RuntimeError) and "exploded" in str(r) for r in results)
            ok = await batcher.submit(model, x)  # the batcher goes on after a failed call
            assert ok[1].shape == (2, 2)
            await batcher.close()
            with pytest.raises(NotReady):
                await batcher.submit(model, x)


async def test_max_wait_collects_a_batch_and_a_full_batch_does_not_wait(model: ModelVersion) -> None:
    with ThreadPoolExecutor(1) as ex, Recorder(model) as rec:
        batcher = Batcher(ex, BatchPolicy(max_rows=8, max_wait_s=5.0, max_in_flight=1, inline_max_rows=0))
        xs = [np.ones((2, K), np.float32) for _ in range(4)]  # 8 rows: full, flushed at once despite 5 s
        await asyncio.wait_for(asyncio.gather(*(batcher.submit(model, x) for x in xs)), 2.0)
        await batcher.close()
    assert [n for n, _ in rec.calls] == [8]


def test_inline_rows_default_follows_the_cpus_the_process_may_use(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = InferenceSettings(max_batch_size=128)
    assert effective_inline_max_rows(s, cpus=2) == 128  # no core for a pool thread: run merged batches inline
    assert effective_inline_max_rows(s, cpus=8) == 16
    assert effective_inline_max_rows(s.model_copy(update={"inline_max_rows": 0}), cpus=2) == 0  # set: kept
    affinity = len(os.sched_getaffinity(0))
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")  # a Kubernetes limit of 1.5 CPUs: 2 usable
    assert usable_cpus(quota) == min(affinity, 2)
    quota.write_text("max 100000\n")
    assert usable_cpus(quota) == affinity
    assert usable_cpus(tmp_path / "absent") == affinity


@dataclass(frozen=True)
class TracedFeatures:  # OnlineFeatures plus the `traceparent` field newer online stores carry
    entity_id: str
    values: dict[str, float]
    as_of_ms: int
    feature_set_version: int
    traceparent: str = ""


class LinkedStore:
    def __init__(self, rows: dict[str, TracedFeatures]):
        self.rows = rows

    async def read_many(self, ids):  # type: ignore[no-untyped-def]
        return [self.rows.get(e) for e in ids]


async def test_prediction_span_links_to_the_feature_updates_it_used(model: ModelVersion,
                                                                    exporter: InMemorySpanExporter) -> None:
    values = dict.fromkeys(FEATURE_SET.names, 2.0)
    other = "00-11111111111111111111111111111111-2222222222222222-01"
    store = LinkedStore({
        "e1": TracedFeatures("e1", values, 1, 1, f"00-{FEATURE_TRACE}-{FEATURE_SPAN}-01"),
        "e2": TracedFeatures("e2", values, 1, 1, f"00-{FEATURE_TRACE}-{FEATURE_SPAN}-01"),  # same update: 1 link
        "e3": TracedFeatures("e3", values, 1, 1, other),
        "e4": TracedFeatures("e4", values, 1, 1, "garbage"),  # malformed: no link, no failure
        "e5": TracedFeatures("e5", values, 1, 1),  # no trace context (an old writer)
    })
    repo = ModelRepository()
    repo.promote(model)
    exporter.clear()
    with ThreadPoolExecutor(1) as ex:
        batcher = Batcher(ex, BatchPolicy(max_rows=64, max_wait_s=0.0, max_in_flight=1))
        dp = DataPlane(InferenceSettings(), repo, batcher, store, on_features=tracing.link_feature_updates)
        ids = Tensor("entity_id", "BYTES", (5,), [b"e1", b"e2", b"e3", b"e4", b"e5"])
        caller = f"00-{'ab' * 16}-{'cd' * 8}-01"
        with tracing.infer_span([("traceparent", caller), ("user-agent", "test")]):
            out = await dp.infer(InferRequest("sea", inputs=[ids]))
        await batcher.close()
    assert out.outputs[1].data.shape == (5, 2)
    (span,) = [s for s in exporter.get_finished_spans() if s.name == tracing.INFER_METHOD]
    assert span.kind == trace.SpanKind.SERVER and format(span.context.trace_id, "032x") == "ab" * 16
    assert format(span.parent.span_id, "016x") == "cd" * 8
    linked = {(format(lk.context.trace_id, "032x"), format(lk.context.span_id, "016x")) for lk in span.links}
    assert linked == {(FEATURE_TRACE, FEATURE_SPAN), ("1" * 32, "2" * 16)}
    assert {lk.attributes["mlops.entity_id"] for lk in span.links} == {"e1", "e3"}
    assert all(lk.attributes["mlops.link"] == "feature_update" for lk in span.links)


def test_feature_links_work_with_plain_online_features_and_are_capped() -> None:
    from mlops.online_store import OnlineFeatures

    plain = [OnlineFeatures("e", {}, 1, 1), None]  # before or after the store gains `traceparent`
    assert tracing.feature_links(plain) == []
    many = [TracedFeatures(f"e{i}", {}, 1, 1, f"00-{i + 1:032x}-{i + 1:016x}-01") for i in range(100)]
    assert len(tracing.feature_links(many)) == tracing.MAX_FEATURE_LINKS
    assert tracing.parse_traceparent("") is None and tracing.parse_traceparent("00-zz-yy-01") is None
    ctx = tracing.parse_traceparent(f"00-{FEATURE_TRACE}-{FEATURE_SPAN}-01")
    assert ctx is not None and ctx.is_remote and format(ctx.span_id, "016x") == FEATURE_SPAN


def test_without_a_recording_span_no_links_are_made() -> None:
    tp = f"00-{FEATURE_TRACE}-{FEATURE_SPAN}-01"
    assert tracing.link_feature_updates([TracedFeatures("e", {}, 1, 1, tp)]) == 0  # no current span
