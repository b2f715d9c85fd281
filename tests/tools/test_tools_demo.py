"""The demo's traffic and watcher without a broker: the stream goes out through `mlops produce`'s code onto an
in-process bus, and the outcome topics become the timeline and the figures of the summary."""

from __future__ import annotations

import io
import threading
import time
from typing import Any

from mlops.bus import MemoryBus
from mlops.contracts import models_pb2
from mlops.topics import EVENTS_DLQ, LABELS, MODEL_PROMOTED, PREDICTIONS, RAW_EVENTS, RETRAIN_REQUESTED
from mlops_tools.demo import DemoConfig, DemoResult, ModelLoop
from mlops_tools.demo.challengers import Challenger, LiveVerdict
from mlops_tools.demo.loop import Stream, Traffic
from mlops_tools.demo.timeline import Timeline
from mlops_tools.demo.watch import watch


def _traffic(bus: MemoryBus, out: io.StringIO) -> Traffic:
    cfg = DemoConfig(records=40, rate=10_000, drift_at=20, bootstrap_rows=5, entities=5, label_delay_ms=0)
    result = DemoResult("demo-test")
    timeline = Timeline(result, out)
    timeline.start_clock()
    return Traffic(cfg, bus, 0, result, timeline)


def test_the_stream_goes_out_with_its_labels_and_marks_the_drift() -> None:
    bus, out = MemoryBus(), io.StringIO()
    traffic = _traffic(bus, out)
    traffic.stream()
    assert (traffic.produced, traffic.labels) == (40, 40)
    assert len(bus.records(bus.topic(RAW_EVENTS))) == 40 and len(bus.records(bus.topic(LABELS))) == 40
    s = traffic.streams["sea"]
    assert len(s.truth) == 40 and len(s.entities) == 5
    assert s.loop.drift_t_s is not None and s.loop.records_produced == 40
    assert "DRIFT injected at record 20" in out.getvalue() and "stream done: 40 records, 40 labels" in out.getvalue()


def test_a_stopped_stream_ends_at_once() -> None:
    traffic = _traffic(MemoryBus(), io.StringIO())
    traffic.stop.set()
    traffic.stream()
    assert traffic.produced == 0


def test_the_watcher_turns_outcomes_into_the_timeline_and_figures() -> None:
    bus, out = MemoryBus(), io.StringIO()
    traffic = _traffic(bus, out)
    traffic.stream()
    r = traffic.streams["sea"].loop
    (entity, as_of), (_, label, drifted) = next((k, v) for k, v in traffic.streams["sea"].truth.items() if v[2])
    producer = bus.producer(client_id="test")
    producer.send(bus.topic(PREDICTIONS), models_pb2.PredictionRecord(
        entity_id=entity, features_as_of_ms=as_of, model_name="sea", model_version="1", predicted_label=float(label),
        trace_id="t1"))
    producer.send(bus.topic(RETRAIN_REQUESTED), models_pb2.RetrainRequest(
        model_name="sea", requested_by="monitor", reason="error rate rose"), key="sea")
    producer.send(bus.topic(MODEL_PROMOTED), models_pb2.ModelPromoted(model_name="sea", version="2"), key="sea")
    producer.send(bus.topic(EVENTS_DLQ), b"not an event")
    producer.flush()
    watcher = threading.Thread(target=watch, args=(traffic,), daemon=True)
    watcher.start()
    deadline = time.monotonic() + 10
    while not (r.promoted and traffic.result.dlq and r.quality) and time.monotonic() < deadline:
        time.sleep(0.05)
    traffic.stop.set()
    watcher.join(5)
    assert r.quality == {("1", drifted): [1, 1]} and traffic.result.example_trace_id == "t1"
    assert r.monitor_requests == 1 and r.detections and r.detections[0][2] == "error rate rose"
    assert [v for _, v in r.promoted] == ["2"] and traffic.result.dlq == 1
    assert "DRIFT DETECTED by the monitor" in out.getvalue() and "v2 promoted (previous v-)" in out.getvalue()


def test_two_examples_stream_side_by_side_and_outcomes_go_to_their_own_model() -> None:
    bus, out = MemoryBus(), io.StringIO()
    cfg = DemoConfig(example="all", records=30, rate=10_000, drift_at=10, bootstrap_rows=5, entities=4,
                     label_delay_ms=0)
    result = DemoResult("demo-all")
    timeline = Timeline(result, out)
    timeline.start_clock()
    traffic = Traffic(cfg, bus, 0, result, timeline)
    assert set(traffic.streams) == set(result.loops) == {"sea", "delivery_time"}
    for model in traffic.streams:
        traffic.stream(model)
    assert len(bus.records(bus.topic(RAW_EVENTS))) == 30
    delivery = traffic.streams["delivery_time"]
    assert len(bus.records(bus.topic(delivery.example.raw_topic))) == 30
    assert len(bus.records(bus.topic(delivery.example.label_topic))) == 30
    (entity, as_of), (_, label, drifted) = next((k, v) for k, v in delivery.truth.items() if v[2])
    producer = bus.producer(client_id="test")
    producer.send(bus.topic(PREDICTIONS), models_pb2.PredictionRecord(
        entity_id=entity, features_as_of_ms=as_of, model_name="delivery_time", model_version="1",
        predicted_label=label + 4.0))
    producer.send(bus.topic(MODEL_PROMOTED), models_pb2.ModelPromoted(model_name="delivery_time", version="1"))
    producer.send(bus.topic(MODEL_PROMOTED), models_pb2.ModelPromoted(model_name="other_team", version="7"))
    producer.flush()
    watcher = threading.Thread(target=watch, args=(traffic,), daemon=True)
    watcher.start()
    deadline = time.monotonic() + 10
    while not (delivery.loop.promoted and delivery.loop.quality) and time.monotonic() < deadline:
        time.sleep(0.05)
    traffic.stop.set()
    watcher.join(5)
    assert delivery.loop.value("1", drifted) == 4.0 and delivery.loop.metric == "MAE"
    assert traffic.streams["sea"].loop.promoted == [] and "[delivery_time] v1 promoted" in out.getvalue()
    assert "MAE" in result.table()


def test_a_stream_ends_early_once_done_is_set_and_its_labels_still_go_out() -> None:
    bus, out = MemoryBus(), io.StringIO()
    traffic = _traffic(bus, out)
    on_produced = traffic._on_produced

    def tenth_ends_it(s: Stream, rec: Any) -> None:  # what Demo._loop does once every loop is done
        on_produced(s, rec)
        if rec.index == 9:
            traffic.done.set()

    traffic._on_produced = tenth_ends_it  # type: ignore[method-assign]
    traffic.stream()
    assert (traffic.produced, traffic.labels) == (10, 10)
    assert len(bus.records(bus.topic(LABELS))) == 10
    assert "stream done: 10 records, 10 labels (ended early" in out.getvalue()
    assert not DemoConfig().end_when_done  # `mlops demo` streams every record


def _verdict(version: str, verdict: str) -> LiveVerdict:
    return LiveVerdict(5.0, f"sea/1/{version}/shadow", "shadow", verdict, "1", version, "accuracy", 0.9, 0.8, -0.1,
                       -0.2, -0.01, 150, "paired mSPRT", 0.95, "")


def _drifted_loop() -> ModelLoop:
    r = ModelLoop("sea", drift_at=20)
    r.drift_t_s = 1.0
    r.promoted.append((0.5, "1"))
    return r


def test_a_loop_is_done_once_the_new_version_served_enough_post_drift_predictions() -> None:
    r = _drifted_loop()
    assert not r.done(2, 3, 4)  # drift, no new version yet
    r.promoted.append((5.0, "2"))
    assert not r.done(2, 3, 4)  # promoted, not serving
    r.serving["2"] = 6.0
    r.add("2", True, 1.0, 1.0)
    r.add("2", False, 1.0, 1.0)  # a pre-drift record does not count
    assert not r.done(2, 3, 4)
    r.add("2", True, 0.0, 1.0)
    assert r.done(2, 3, 4)
    r.live.challengers.append(Challenger("2", "shadow", 1.0, 3.0, outcome="promoted"))
    assert not r.done(2, 3, 4)  # on a live rollout: the verdict that promoted it has not come in yet
    r.live.challengers[0].verdict = _verdict("2", "promote")
    assert r.done(2, 3, 4)
    r.live.guard_version = "1"  # the previous champion guards it: the guard's verdict is due
    r.live.challengers[0].guard_rows = 2
    assert not r.done(2, 3, 4)
    r.live.challengers[0].guard_rows = 3  # undecided after mirroring 3 requests: it did not roll back
    assert r.done(2, 3, 4)
    r.live.challengers[0].guard_rows = 0
    r.live.guard_version = ""  # judged (keep), or replaced by a later retrain's challenger (still undecided)
    r.live.challengers.append(Challenger("3", "shadow", 1.0, 9.0))
    assert r.done(2, 3, 4)


def test_a_control_run_is_done_once_v1_answered_the_watched_requests_without_a_retrain() -> None:
    r = ModelLoop("sea", drift_at=None)
    assert not r.done(2, 3, 4)  # nothing served yet
    r.promoted.append((0.5, "1"))
    for _ in range(3):
        r.add("1", False, 1.0, 1.0)
    assert not r.done(2, 3, 4)  # 3 of the 4 watched requests
    r.add("1", False, 0.0, 1.0)
    assert r.done(2, 3, 4)
    r.monitor_requests = 1  # a false alarm: the run goes on to its end, and the test says so
    assert not r.done(2, 3, 4)
    assert DemoConfig(monitor_min_records=1_000, monitor_window=500).watched_requests == 2_000


def test_a_loop_with_a_live_rollout_is_done_once_the_drifts_challenger_is_decided() -> None:
    r = _drifted_loop()
    r.live.challengers.append(Challenger("2", "shadow", 1.0, 3.0))
    assert not r.done(2, 3, 4)  # judging
    r.live.challengers[0].outcome = "retired"
    assert not r.done(2, 3, 4)  # the verdict that retired it has not come in yet
    r.live.challengers[0].verdict = _verdict("2", "retire")
    assert r.done(2, 3, 4)
    r.live.challengers.append(Challenger("3", "shadow", 1.0, 9.0))
    assert r.done(2, 3, 4)  # a later retrain's challenger is another story
