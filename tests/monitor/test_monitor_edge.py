"""The monitor's edge. Broker-free on MemoryBus: predictions + labels in give one RetrainRequest out and commit
every offset. Integration, on the real broker (fresh topic prefix): `mlops produce` writes raw events and delayed
labels; predictions + labels into the monitor service give exactly one RetrainRequest naming its detector and
statistic; a restarted monitor resumes from the committed offsets and keeps the cool-down."""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
import zlib

import numpy as np
import pytest
from mlops.bus import Consumer, Producer, Record, StopFlag
from mlops.contracts import events_pb2, models_pb2
from mlops.prediction_log import PredictionColumns, to_batch
from mlops.settings import KafkaSettings
from mlops.telemetry import setup_tracing
from mlops.topics import LABELS, PREDICTIONS, RAW_EVENTS, RETRAIN_REQUESTED, topic_name
from mlops_tools.cli.produce_cmd import ProduceOptions, produce
from mlops_tools.datagen import SEA_THRESHOLDS, StreamConfig, generate
from monitor_helpers import SEA, apply_definitions, with_drift
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY
from testkit import committed, end_offsets, read_topic, wait_until

from services.monitor.edge import MonitorService
from services.monitor.settings import MonitorSettings

NEVER_S = 10**9  # a cool-down (s) that never ends within a test stream
PARTITIONS = 3  # of `predictions` on both buses (MemoryBus and the test broker's default)

EXPORTER = InMemorySpanExporter()


def read(kafka: KafkaSettings, spec, want: int, timeout: float = 20.0, settle: float = 0.0) -> list[Record]:
    """Records of `spec` from the beginning until `want` arrived (then `settle` s more) or `timeout` passed."""
    c = Consumer(kafka, group_id=f"t-{uuid.uuid4().hex[:8]}", topics=[topic_name(spec, kafka)], client_id="t")
    out: list[Record] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            out += c.consume(500, 0.5)
            if len(out) >= want:
                deadline = min(deadline, time.monotonic() + settle)
                if settle == 0:
                    break
    finally:
        c.close()
    return out


def send_predictions_and_labels(bus, cfg: StreamConfig, version: str = "1", contract: str = "record",
                                served_late_ms: int = 0) -> None:
    """What inference (a model of SEA variant 2) and the label source would write for the stream `cfg`, onto
    `bus` (a MemoryBus or KafkaBus). `contract`: per-row PredictionRecords (the log before the batch), columnar
    PredictionBatches of four-row requests (split by partition, as inference writes them: an entity's predictions
    stay in its partition, in time order, which the label join relies on), or "mixed" (every other request as a
    batch: a topic mid-upgrade). `served_late_ms`: each prediction served that long after its event (a backfill).
    """
    p: Producer = bus.producer(client_id="t-inference")
    pred_topic, label_topic = bus.topic(PREDICTIONS), bus.topic(LABELS)
    rows: list = []

    def send_batch() -> None:  # one request of four rows, split by partition as inference does (CRC-32 of the key)
        by_partition: dict[int, list[int]] = {}
        for i, (r, _) in enumerate(rows):
            by_partition.setdefault(zlib.crc32(r.entity_id.encode()) % PARTITIONS, []).append(i)
        first = rows[0][0]
        for index in by_partition.values():
            part = [rows[i] for i in index]
            scores = np.array([sc for _, sc in part])
            cols = PredictionColumns(
                request_id=f"req-{first.index}", model_name="sea", model_version=version,
                feature_names=tuple(first.values), x=np.array([list(r.values.values()) for r, _ in part]),
                outputs=np.stack([1 - scores, scores], axis=1), scores=scores,
                predicted_labels=(scores > 0.5).astype(float), entity_ids=[r.entity_id for r, _ in part],
                as_of_ms=np.array([r.event_time_ms for r, _ in part]), request_rows=len(rows),
                row_index=np.array(index), trace_id=f"{first.index + 1:032x}", span_id=f"{first.index + 1:016x}",
                timestamp_ms=part[-1][0].event_time_ms + served_late_ms)
            p.send(pred_topic, to_batch(cols), key=part[0][0].entity_id)
        rows.clear()

    for rec in generate(cfg):
        s = rec.values["x0"] + rec.values["x1"]
        score = 1.0 / (1.0 + math.exp(-(s - SEA_THRESHOLDS[2])))
        as_batch = contract == "batch" or (contract == "mixed" and rec.index // 4 % 2 == 0)
        if as_batch:
            rows.append((rec, score))
            if len(rows) == 4:
                send_batch()
        else:
            p.send(pred_topic, models_pb2.PredictionRecord(
                request_id=f"req-{rec.index}", entity_id=rec.entity_id, model_name="sea", model_version=version,
                inputs=rec.values, score=score, predicted_label=float(score > 0.5),
                timestamp_ms=rec.event_time_ms + served_late_ms,
                features_as_of_ms=rec.event_time_ms, trace_id=f"{rec.index + 1:032x}",
                span_id=f"{rec.index + 1:016x}"), key=rec.entity_id)
        p.send(label_topic, events_pb2.Label(entity_id=rec.entity_id, event_time_ms=rec.event_time_ms,
                                             label=float(rec.label), event_id=rec.event_id), key=rec.entity_id)
    if rows:
        send_batch()
    p.flush()


def run_service(service: MonitorService) -> tuple[StopFlag, threading.Thread]:
    stop = StopFlag(install_signals=False)
    t = threading.Thread(target=service.run, args=(stop,), daemon=True)
    t.start()
    return stop, t


def handle_all(service: MonitorService, records: int, timeout: float = 120.0) -> None:
    """Run `service` until it has handled `records` predictions + labels (AssertionError after `timeout`), then stop
    it."""
    stop, thread = run_service(service)
    try:
        wait_until(lambda: service.monitor.predictions + service.monitor.labels >= records, timeout=timeout)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()


@pytest.mark.parametrize("contract", ["batch", "mixed"])
def test_memory_bus_predictions_and_labels_in_one_retrain_request_out_offsets_committed(memory_bus, contract):
    settings = MonitorSettings(retrain_timeout_ms=10**12, poll_timeout_s=0.05)
    cfg = StreamConfig(count=8_000, drift_at=3_500, covariate_shift=False, seed=9)
    apply_definitions(memory_bus, SEA, sea=with_drift(SEA, cooldown_s=NEVER_S))
    late = 86_400_000  # scored a day after the events: the change point must still be in the labels' time
    send_predictions_and_labels(memory_bus, cfg, contract=contract, served_late_ms=late)
    service = MonitorService(settings, memory_bus)
    handle_all(service, 16_000)
    assert service.monitor.predictions == 8_000 and service.monitor.labels == 8_000

    [request] = memory_bus.records(memory_bus.topic(RETRAIN_REQUESTED))
    req = request.decode(models_pb2.RetrainRequest)
    assert (req.model_name, req.detector, req.statistic, req.requested_by) == (
        "sea", "ErrorWindows", "error_rate", "monitor")
    assert request.key == b"sea" and "concept drift" in req.reason
    drift_ms = cfg.start_ms + 3_500 * int(cfg.interval_ms)  # what the trainer selects rows by: label event times
    assert abs(req.change_point_ms - drift_ms) <= 300 * cfg.interval_ms and req.attempt == 1
    for spec in (PREDICTIONS, LABELS):
        topic = memory_bus.topic(spec)
        ends: dict[int, int] = {}
        for r in memory_bus.records(topic):
            ends[r.partition] = r.offset + 1
        assert ends and {p: memory_bus.committed(settings.group_id, topic, p) for p in ends} == ends

    # a restart reads the request back: the cool-down holds for the model's first predictions
    send_predictions_and_labels(memory_bus, StreamConfig(count=10, seed=10, start_ms=cfg.start_ms + 100_000),
                                served_late_ms=late)
    again = MonitorService(settings, memory_bus)
    handle_all(again, 20)
    assert again.monitor.predictions == 10  # nothing read twice
    assert again.monitor.models["sea"].last_request_ms == req.window_end_ms


def test_produce_writes_json_raw_events_with_traceparent_and_delayed_labels(kafka_settings):
    cfg = StreamConfig(count=40, drift_at=20, entities=5, seed=1)
    t0 = time.monotonic()
    counts = produce(cfg, kafka_settings, ProduceOptions(rate=0, label_delay_ms=300))
    assert counts == {"events": 40, "labels": 40}
    assert time.monotonic() - t0 >= 0.3  # the last labels waited for their delay
    raw = read(kafka_settings, RAW_EVENTS, 40)
    labels = read(kafka_settings, LABELS, 40)
    assert len(raw) == 40 and len(labels) == 40
    docs = {json.loads(r.value)["event_id"]: (r, json.loads(r.value)) for r in raw}
    expected = {rec.event_id: rec for rec in generate(cfg)}
    assert set(docs) == set(expected)
    for event_id, (r, doc) in docs.items():
        assert r.key.decode() == doc["entity_id"] == expected[event_id].entity_id
        assert doc["values"] == expected[event_id].values and doc["schema_version"] == 1
        assert r.header("traceparent") and r.header("traceparent").startswith("00-")
    for r in labels:
        lab = r.decode(events_pb2.Label)
        rec = expected[lab.event_id]
        assert (lab.label, lab.event_time_ms, lab.entity_id) == (rec.label, rec.event_time_ms, rec.entity_id)


def test_produce_protobuf_format(kafka_settings):
    produce(StreamConfig(count=5, drift_at=None, seed=2), kafka_settings,
            ProduceOptions(rate=0, labels=False, fmt="protobuf"))
    raw = read(kafka_settings, RAW_EVENTS, 5)
    assert len(raw) == 5
    assert {r.decode(events_pb2.RawEvent).schema_version for r in raw} == {1}


def test_drift_gives_exactly_one_retrain_request_and_a_restart_keeps_the_cooldown(kafka_settings, kafka_bus):
    setup_tracing("monitor-test", exporter=EXPORTER)
    settings = MonitorSettings(group_id=f"monitor-{uuid.uuid4().hex[:6]}", retrain_timeout_ms=10**12,
                               poll_timeout_s=0.2)
    cfg = StreamConfig(count=8_000, drift_at=3_500, covariate_shift=False, seed=9)
    apply_definitions(kafka_bus, SEA, sea=with_drift(SEA, cooldown_s=NEVER_S))
    send_predictions_and_labels(kafka_bus, cfg, contract="mixed")
    before = REGISTRY.get_sample_value("mlops_monitor_retrain_requests_total",
                                       {"model": "sea", "detector": "ErrorWindows", "statistic": "error_rate"}) or 0.0

    service = MonitorService(settings, kafka_bus)
    stop, thread = run_service(service)
    try:
        # everything handled AND committed (the loop flushes its requests before it commits): then the topic holds
        # every request this stream caused, read to its end without waiting for a consumer group
        for spec in (PREDICTIONS, LABELS):
            topic = topic_name(spec, kafka_settings)
            done = lambda t=topic: committed(kafka_settings, settings.group_id, t) == end_offsets(kafka_settings, t)  # noqa: E731
            wait_until(done, timeout=180, interval=0.2)
        requests = read_topic(kafka_settings, topic_name(RETRAIN_REQUESTED, kafka_settings))
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert service.monitor.predictions == 8_000 and service.monitor.labels == 8_000
    assert len(requests) == 1
    req = requests[0].decode(models_pb2.RetrainRequest)
    named = (req.model_name, req.detector, req.statistic, req.requested_by)
    assert named == ("sea", "ErrorWindows", "error_rate", "monitor")
    assert req.value >= settings.error_min_increase and req.window_start_ms <= req.window_end_ms
    assert "concept drift" in req.reason
    assert len(req.trace_id) == 32 and requests[0].key == b"sea"
    assert requests[0].header("traceparent").split("-")[1] == req.trace_id
    spans = [s for s in EXPORTER.get_finished_spans() if format(s.context.trace_id, "032x") == req.trace_id]
    assert spans and len(spans[0].links) >= 1  # linked to the mispredicted requests that were the evidence
    assert spans[0].attributes["mlops.drift.statistic"] == "error_rate"
    after = REGISTRY.get_sample_value("mlops_monitor_retrain_requests_total",
                                      {"model": "sea", "detector": "ErrorWindows", "statistic": "error_rate"})
    assert after == before + 1

    # restart: same group → resumes after the committed offsets; the request is read back for the cool-down
    more = StreamConfig(count=500, drift_at=0, covariate_shift=False, seed=10, start_ms=cfg.start_ms + 100_000)
    send_predictions_and_labels(kafka_bus, more)
    again = MonitorService(settings, kafka_bus)
    handle_all(again, 1_000)
    assert again.monitor.predictions == 500 and again.monitor.labels == 500  # nothing read twice
    assert again.monitor.models["sea"].last_request_ms == req.window_end_ms
    assert len(read_topic(kafka_settings, topic_name(RETRAIN_REQUESTED, kafka_settings))) == 1  # stopped: flushed
