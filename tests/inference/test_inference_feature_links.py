"""Integration with the real Redis: features written with a trace context (as the features service does) are
joined by entity id, and the prediction's server span links to that feature update's span."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as tc
from mlops.online_store import RedisOnlineStore, SyncRedisOnlineStore
from mlops.schema import FEATURE_SET
from mlops.telemetry import setup_tracing
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.inference.edge.tracing import INFER_METHOD

UPDATE_TRACE, UPDATE_SPAN = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"


def test_prediction_links_to_the_feature_update(server_factory, model_file: Path, redis_settings) -> None:  # type: ignore[no-untyped-def]
    if "traceparent" not in inspect.signature(SyncRedisOnlineStore.write).parameters:
        pytest.skip("this online store does not carry trace context yet")
    exporter = InMemorySpanExporter()
    setup_tracing("inference-test", exporter=exporter)
    store = SyncRedisOnlineStore(redis_settings)
    values = dict.fromkeys(FEATURE_SET.names, 3.0)
    store.write("linked", values, as_of_ms=1_700_000_000_000, traceparent=f"00-{UPDATE_TRACE}-{UPDATE_SPAN}-01")
    store.write("plain", values, as_of_ms=1_700_000_000_000)
    store.close()
    running = server_factory(store=RedisOnlineStore(redis_settings), model_path=model_file)
    client = tc.InferenceServerClient(running.url)
    inp = tc.InferInput("entity_id", [2], "BYTES")
    inp.set_data_from_numpy(np.array([b"linked", b"plain"], dtype=np.object_))
    result = client.infer("sea", [inp])
    client.close()
    assert result.as_numpy("probabilities").shape == (2, 2)
    spans = [s for s in exporter.get_finished_spans() if s.name == INFER_METHOD]
    assert spans, "no ModelInfer server span"
    links = [(format(lk.context.trace_id, "032x"), format(lk.context.span_id, "016x"), lk.attributes["mlops.entity_id"])
             for lk in spans[-1].links]
    assert links == [(UPDATE_TRACE, UPDATE_SPAN, "linked")]
