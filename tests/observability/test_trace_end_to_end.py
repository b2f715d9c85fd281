"""Integration: one OpenTelemetry trace follows a record from its producer through ingest and features (Redis write
and features.log) as real processes with the file exporter; the online view carries the update's traceparent;
each running service's ops endpoint serves its key metrics; `mlops trace` renders the trace as one tree."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlops.bus import Producer, Reader, Record
from mlops.definitions import load
from mlops.online_store import SyncRedisOnlineStore, ViewLayout
from mlops.settings import KafkaSettings, RedisSettings
from mlops.telemetry import JsonLinesSpanExporter, current_trace_ids, messaging_attributes, setup_tracing, tracer
from mlops.topics import EVENTS, FEATURES_LOG, RAW_EVENTS, topic_name
from mlops_tools.traceview import Span, render
from obs_helpers import ROOT, ServiceProcess, metric_names, running, spans_in, wait_for
from opentelemetry import trace
from opentelemetry.trace import SpanKind

READY_S = 60.0  # faust joins its group and recovers its tables; on a busy 2-core machine this takes a while
FLOW_S = 45.0

pytestmark = pytest.mark.slow


@pytest.fixture
def pipeline(kafka_settings: KafkaSettings, redis_settings: RedisSettings,
             tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    """ingest, features and monitor as real processes; terminated even when the test fails."""
    with running(("ingest", "features", "monitor"), kafka_settings, redis_settings, tmp_path, READY_S) as procs:
        yield procs


def _read_features_log(kafka: KafkaSettings, entity: str, timeout: float) -> Record | None:
    reader = Reader(kafka, [topic_name(FEATURES_LOG, kafka)], client_id="obs-test")
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for record in reader.consume(100, 0.5):
                if record.key == entity.encode():
                    return record
    finally:
        reader.close()
    return None


def _one(spans: list[Span], name: str, trace_id: str) -> Span:
    found = [s for s in spans if s.name == name and s.trace_id == trace_id]
    assert len(found) == 1, f"expected one span {name!r} in trace {trace_id}, got {[s.name for s in spans]}"
    return found[0]


def test_one_trace_from_producer_to_features_log(
    pipeline: dict[str, ServiceProcess], kafka_settings: KafkaSettings, redis_settings: RedisSettings,
    tmp_path: Path,
) -> None:
    producer_file = tmp_path / "spans-producer.jsonl"
    setup_tracing("obs-producer", exporter=JsonLinesSpanExporter(producer_file))
    raw_topic = topic_name(RAW_EVENTS, kafka_settings)
    entity = f"obs-{uuid.uuid4().hex[:8]}"
    record = {"entity_id": entity, "event_time": int(time.time() * 1000), "schema_version": 1,
              "values": {"x0": 1.0, "x1": 2.0, "x2": 3.0}}
    producer = Producer(kafka_settings, client_id="obs-test")
    with tracer("mlops.test").start_as_current_span(
        f"send {raw_topic}", kind=SpanKind.PRODUCER,
        attributes=messaging_attributes("send", raw_topic, key=entity),
    ):
        trace_id, producer_span_id = current_trace_ids()
        producer.send(raw_topic, json.dumps(record).encode(), key=entity,
                      headers={"content-type": "application/json"})
    producer.flush()
    assert trace_id, "the test's tracer provider did not sample the producer span"

    # the record reaches features.log, carrying the same trace in its headers
    msg = _read_features_log(kafka_settings, entity, FLOW_S)
    assert msg is not None, f"no features.log record for {entity}:\n{pipeline['features'].log_tail()}"
    headers = {k: v.decode() for k, v in msg.headers.items()}
    assert headers.get("traceparent", "").split("-")[1] == trace_id

    # the online view carries the traceparent of the feature update
    store = SyncRedisOnlineStore(redis_settings)
    try:
        sea = load(ROOT / "examples" / "sea" / "definitions.yaml")  # revision 1 on every test prefix
        view = store.read_many(ViewLayout.of(sea, "entity_activity", 1), [entity])[0]
    finally:
        store.close()
    assert view is not None and view.traceparent.split("-")[1] == trace_id

    # spans reach the files (the batch processor exports every ~5 s)
    files = [producer_file, pipeline["ingest"].span_file, pipeline["features"].span_file]
    # span names per the OpenTelemetry conventions: `{operation} {topic}` for messaging, the command for Redis
    log_send = f"send {topic_name(FEATURES_LOG, kafka_settings)}"
    ingest_name, update_name = f"process {raw_topic}", f"process {topic_name(EVENTS, kafka_settings)}"
    names = {ingest_name, update_name, "MULTI", log_send}

    def complete() -> list[Span] | None:
        trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
        got = [s for s in spans_in(files) if s.trace_id == trace_id]
        return got if names <= {s.name for s in got} else None

    spans = wait_for(complete, 20.0, 0.5)
    assert spans, f"spans of trace {trace_id} incomplete: {[s.name for s in spans_in(files)]}"
    assert isinstance(spans, list)
    root = _one(spans, f"send {raw_topic}", trace_id)
    ingest = _one(spans, ingest_name, trace_id)
    update = _one(spans, update_name, trace_id)
    write = _one(spans, "MULTI", trace_id)
    publish = _one(spans, log_send, trace_id)
    assert root.span_id == producer_span_id and root.parent_id is None
    assert ingest.parent_id == root.span_id and ingest.service == "ingest" and ingest.kind == "CONSUMER"
    assert ingest.attributes["messaging.system"] == "kafka"
    assert ingest.attributes["messaging.operation.type"] == "process"
    assert ingest.attributes["messaging.destination.name"] == raw_topic
    assert "messaging.kafka.offset" in ingest.attributes and "messaging.destination.partition.id" in ingest.attributes
    assert update.parent_id == ingest.span_id and update.service == "features" and update.kind == "CONSUMER"
    assert write.parent_id == update.span_id and write.kind == "CLIENT" and write.attributes["db.system"] == "redis"
    assert publish.parent_id == update.span_id and publish.kind == "PRODUCER"
    assert publish.attributes["messaging.operation.type"] == "send"
    assert "messaging.kafka.message.key" in publish.attributes
    # what is stored and what features.log carries point at the update / its publish span
    assert view.traceparent.split("-")[2] == update.span_id
    assert headers["traceparent"].split("-")[2] == publish.span_id

    # `mlops trace` renders it as one tree across the three processes
    tree = render(spans, trace_id)
    assert "3 services" in tree and "MULTI [features]" in tree
    out = subprocess.run(
        [sys.executable, "-m", "mlops_tools.cli", "trace", trace_id[:12],
         *(arg for f in files for arg in ("--file", str(f)))],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert f"trace {trace_id}" in out.stdout and f"{update_name} [features]" in out.stdout

    # every running service's ops endpoint serves its key metrics
    expected = {
        "ingest": {"mlops_consumer_lag_records", "mlops_ingest_records_dlq_total", "mlops_ingest_processing_seconds",
                   "mlops_ingest_batch_seconds"},
        "features": {"mlops_consumer_lag_records", "mlops_features_processing_seconds",
                     "mlops_features_freshness_seconds", "mlops_features_updates_total"},
        "monitor": {"mlops_monitor_drift_statistic", "mlops_consumer_lag_records",
                    "mlops_monitor_retrain_requests_total", "mlops_monitor_model_version_info"},
    }
    for name, wanted in expected.items():
        status, body = pipeline[name].get("/metrics")
        assert status == 200, f"{name} /metrics"
        assert wanted <= metric_names(body), f"{name} lacks {wanted - metric_names(body)}"
