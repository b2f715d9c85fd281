"""The monitor service under the definitions in force, broker-free (MemoryBus): nothing is read before a revision;
two declared models (a SEA-like binary one with protobuf labels, a delivery-like regression one with JSON labels on
its own topic) are watched at once and a drift in one retrains that one only; bad labels are counted and logged,
never stopping the loop; a new revision (a cool-down, a model with a new label topic) is taken up while running."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid

import pytest
from mlops.bus import Bus, Consumer, MemoryBus, Producer, StopFlag
from mlops.contracts import events_pb2, models_pb2
from mlops.topics import LABELS, PREDICTIONS, RETRAIN_REQUESTED, TopicSpec
from monitor_helpers import (
    DELIVERY,
    SEA,
    Sample,
    apply_definitions,
    delivery_samples,
    interleave,
    sea_samples,
    with_drift,
)
from prometheus_client import REGISTRY

from services.monitor.edge import MonitorService
from services.monitor.settings import MonitorSettings

DELIVERED = TopicSpec("orders.delivered", "labels of delivery_time")
NEVER_S = 10**9


def send(bus: Bus, samples: list[Sample], *, predictions: bool = True, labels: bool = True) -> None:
    """What inference writes for each prediction, and each label as its source writes it: a `Label` protobuf on
    `labels` for SEA, JSON holding the customer id, the time the label is about and the minutes on
    `orders.delivered`."""
    p: Producer = bus.producer(client_id="t-inference")
    for s in samples:
        pr, lab = s.prediction, s.label
        if predictions:
            p.send(bus.topic(PREDICTIONS), models_pb2.PredictionRecord(
                request_id=pr.request_id, entity_id=pr.entity_id, model_name=pr.model_name,
                model_version=pr.model_version, inputs=pr.inputs, score=pr.score,
                predicted_label=pr.predicted_label, timestamp_ms=pr.timestamp_ms,
                features_as_of_ms=pr.features_as_of_ms, trace_id=pr.trace_id, span_id=pr.span_id), key=pr.entity_id)
        if not labels:
            continue
        if pr.model_name == "sea":
            p.send(bus.topic(LABELS), events_pb2.Label(entity_id=lab.entity_id, event_time_ms=lab.event_time_ms,
                                                       label=lab.label), key=lab.entity_id)
        else:
            doc = {"customer_id": lab.entity_id, "event_time": lab.event_time_ms, "minutes": lab.label}
            p.send(bus.topic(DELIVERED), json.dumps(doc).encode(), key=lab.entity_id)
    p.flush()


class Running:
    """The service on a thread, as `python -m services.monitor` runs it."""

    def __init__(self, service: MonitorService):
        self.service = service
        self.stop = StopFlag(install_signals=False)
        self.thread = threading.Thread(target=service.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def until(self, condition, timeout: float = 60.0) -> None:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.thread.is_alive(), "the monitor loop stopped"
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.02)

    def handled(self, n: int) -> None:
        m = self.service.monitor
        self.until(lambda: m.predictions + m.labels >= n)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture
def running():
    made: list[Running] = []

    def start(bus: Bus, settings: MonitorSettings | None = None) -> Running:
        r = Running(MonitorService(settings or MonitorSettings(poll_timeout_s=0.05), bus))
        made.append(r)
        return r

    yield start
    for r in made:
        if r.thread.is_alive():
            r.close()


def requests(bus: MemoryBus) -> list[models_pb2.RetrainRequest]:
    return [r.decode(models_pb2.RetrainRequest) for r in bus.records(bus.topic(RETRAIN_REQUESTED))]


def test_nothing_is_read_before_a_revision_then_everything_is(running):
    bus = MemoryBus(partitions=1)
    send(bus, sea_samples(100, None))
    r = running(bus)
    r.until(r.service.follower.alive)  # it read the definitions topic to its end: no revision
    assert r.service.monitor.predictions == 0 and not r.service.ready()  # records wait in Kafka
    apply_definitions(bus, SEA)
    r.handled(200)
    r.until(r.service.ready)
    assert r.service.monitor.predictions == 100 and r.service.monitor.labels == 100


@pytest.mark.parametrize("drifted", ["sea", "delivery_time"])
def test_two_models_at_once_a_drift_in_one_requests_a_retrain_of_that_one_only(running, drifted):
    bus = MemoryBus(partitions=1)
    apply_definitions(bus, SEA, DELIVERY)
    samples = interleave(sea_samples(8_000, 4_000 if drifted == "sea" else None),
                         delivery_samples(8_000, 4_000 if drifted == "delivery_time" else None))
    r = running(bus)
    send(bus, samples, labels=False)
    r.handled(16_000)
    send(bus, samples, predictions=False)  # the labels come later
    r.handled(32_000)
    r.close()

    [request] = bus.records(bus.topic(RETRAIN_REQUESTED))
    req = request.decode(models_pb2.RetrainRequest)
    assert request.key == drifted.encode() and req.model_name == drifted
    assert req.statistic == ("error_rate" if drifted == "sea" else "mae") and "concept drift" in req.reason
    m = r.service.monitor
    assert {name: j.counts.joined for name, j in m.joiners.items()} == {"sea": 8_000, "delivery_time": 8_000}
    for topic in (bus.topic(PREDICTIONS), bus.topic(LABELS), bus.topic(DELIVERED)):  # every label topic committed
        assert bus.committed(r.service.settings.group_id, topic, 0) == len(bus.records(topic))


def test_bad_labels_are_counted_and_logged_and_the_loop_goes_on(running, caplog):
    bus = MemoryBus(partitions=1)
    apply_definitions(bus, SEA, DELIVERY)
    good = delivery_samples(50, None)
    send(bus, good)
    p = bus.producer(client_id="t-labels")
    bad = [b"not json", json.dumps({"event_time": 1, "minutes": 3.0}).encode(),
           json.dumps({"customer_id": "c1", "event_time": 1, "minutes": "late"}).encode()]
    for value in bad:
        p.send(bus.topic(DELIVERED), value, key="c1")
    p.send(bus.topic(LABELS), events_pb2.Label(entity_id="e1", event_time_ms=1, label=2.0), key="e1")
    p.flush()
    before = {f: REGISTRY.get_sample_value("mlops_monitor_bad_labels_total", {"model": model, "field": f}) or 0.0
              for model, f in (("delivery_time", ""), ("delivery_time", "customer_id"),
                               ("delivery_time", "minutes"), ("sea", "label"))}
    with caplog.at_level(logging.WARNING, logger="mlops.monitor"):
        r = running(bus)
        r.handled(50 + 50)  # the good ones: 50 predictions, 50 labels
        send(bus, delivery_samples(10, None, seed=6, start_ms=good[-1].prediction.timestamp_ms + 10))
        r.handled(100 + 20)  # the loop went on after the bad ones
    after = {f: REGISTRY.get_sample_value("mlops_monitor_bad_labels_total", {"model": model, "field": f})
             for model, f in (("delivery_time", ""), ("delivery_time", "customer_id"),
                              ("delivery_time", "minutes"), ("sea", "label"))}
    assert {f: after[f] - before[f] for f in after} == {"": 1, "customer_id": 1, "minutes": 1, "label": 1}
    logged = [rec for rec in caplog.records if rec.getMessage() == "bad label skipped"]
    assert logged and {rec.fields["model"] for rec in logged} == {"delivery_time", "sea"}
    assert all(rec.fields["reason"] for rec in logged)


def test_a_new_cool_down_is_taken_up_while_running(running):
    bus = MemoryBus(partitions=1)
    apply_definitions(bus, SEA, sea=with_drift(SEA, cooldown_s=NEVER_S))
    samples = sea_samples(16_000, 3_000, seed=31)  # the drift persists: it asks again whenever allowed
    settings = MonitorSettings(poll_timeout_s=0.05, retrain_timeout_ms=20_000)
    r = running(bus, settings)
    send(bus, samples[:8_000], labels=False)
    r.handled(8_000)
    send(bus, samples[:8_000], predictions=False)
    r.handled(16_000)
    assert len(requests(bus)) == 1  # the retrain timeout passed long ago, the cool-down holds
    state = r.service.monitor.models["sea"]

    apply_definitions(bus, sea=with_drift(SEA, cooldown_s=30))
    r.until(lambda: state.policy.cooldown_ms == 30_000)
    send(bus, samples[8_000:], labels=False)
    r.handled(24_000)
    send(bus, samples[8_000:], predictions=False)
    r.handled(32_000)
    made = requests(bus)
    assert len(made) >= 2 and {q.model_name for q in made} == {"sea"}
    ends = [q.window_end_ms for q in made]
    assert all(b - a >= 30_000 for a, b in zip(ends, ends[1:], strict=False))
    assert r.service.monitor.models["sea"] is state  # the same statistics: a cool-down changes none of them
    assert r.thread.is_alive()


def test_a_model_with_a_new_label_topic_is_read_without_a_restart(running):
    bus = MemoryBus(partitions=1)
    apply_definitions(bus, SEA)
    r = running(bus)
    send(bus, sea_samples(100, None))
    r.handled(200)
    apply_definitions(bus, DELIVERY)
    r.until(lambda: r.service.monitor.config.revision == 2)
    send(bus, delivery_samples(100, None))
    r.until(lambda: r.service.monitor.joiners.get("delivery_time") is not None
            and r.service.monitor.joiners["delivery_time"].counts.joined == 100)
    assert bus.committed(r.service.settings.group_id, bus.topic(DELIVERED), 0) == 100


def test_on_the_broker_a_model_added_while_running_is_watched_on_its_own_label_topic(kafka_bus, running):
    """The real broker: the monitor starts with SEA only; the delivery model (JSON labels on its own topic) is
    applied while it runs; the consumer re-subscribes, and the delivery model's drift retrains it alone."""
    settings = MonitorSettings(group_id=f"monitor-{uuid.uuid4().hex[:6]}", poll_timeout_s=0.2)
    apply_definitions(kafka_bus, SEA)
    r = running(kafka_bus, settings)
    send(kafka_bus, sea_samples(1_000, None))
    r.handled(2_000)
    apply_definitions(kafka_bus, DELIVERY)
    r.until(lambda: "delivery_time" in r.service.monitor.config.policies)
    samples = delivery_samples(6_000, 3_000)
    send(kafka_bus, samples, labels=False)
    r.handled(8_000)
    send(kafka_bus, samples, predictions=False)
    r.handled(14_000)
    r.close()
    reader = Consumer(kafka_bus.settings, group_id=f"t-{uuid.uuid4().hex[:8]}", client_id="t",
                      topics=[kafka_bus.topic(RETRAIN_REQUESTED)])
    try:
        got = reader.consume(10, 10.0)
    finally:
        reader.close()
    assert [(g.key, g.decode(models_pb2.RetrainRequest).statistic) for g in got] == [(b"delivery_time", "mae")]
    assert r.service.monitor.joiners["delivery_time"].counts.joined == 6_000
