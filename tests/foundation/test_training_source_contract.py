"""The same assertions against every TrainingDataSource (Feast's universal tests): the offline store on the real
broker, the same code over MemoryBus, and the in-memory source of plain values."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pytest
from mlops.bus import Bus, KafkaBus, MemoryBus
from mlops.contracts import events_pb2
from mlops.definitions import Definitions, Entity, FeatureView, Model, Source, SourceField
from mlops.offline_store import (
    KafkaTrainingData,
    MemoryTrainingData,
    OfflineStoreError,
    OffsetRange,
    TrainingDataSource,
    TrainingSpec,
)
from mlops.topics import FEATURES_LOG, LABELS

COLUMNS = ("x_last", "x_mean")
VIEW = "activity"


def _spec() -> TrainingSpec:
    """A binary model reading both columns of view `activity` (labels on `labels`), beside a view `other`."""
    features = tuple({"name": c, "field": "x", "aggregation": "last"} for c in COLUMNS)
    d = Definitions(
        entities=(Entity(name="thing"),),
        sources=(Source(name="s", topic="raw.s", entity="thing", fields=(SourceField(name="x", type="float"),)),),
        feature_views=(FeatureView(name=VIEW, entity="thing", source="s", features=features),
                       FeatureView(name="other", entity="thing", source="s", features=features)),
        models=(Model(name="m", task="binary", features=tuple(f"{VIEW}.{c}" for c in COLUMNS)),),
    )
    return TrainingSpec.of(d, "m")


SPEC = _spec()


class _BusWriter:
    """Writes what the features service and the labeller would: protobufs keyed by entity."""

    def __init__(self, bus: Bus):
        self.producer = bus.producer(client_id="training-contract")
        self.flog, self.labels = bus.topic(FEATURES_LOG), bus.topic(LABELS)

    def add_vector(self, entity_id: str, as_of_ms: int, values: Mapping[str, float], view: str = VIEW,
                   version: int = 1) -> None:
        self.producer.send(self.flog, events_pb2.FeatureVector(
            entity_id=entity_id, feature_set=view, feature_set_version=version, as_of_ms=as_of_ms, values=values,
            event_id=f"{entity_id}@{as_of_ms}"), key=entity_id)

    def add_label(self, entity_id: str, event_time_ms: int, label: float) -> None:
        self.producer.send(self.labels, events_pb2.Label(entity_id=entity_id, event_time_ms=event_time_ms,
                                                         label=label), key=entity_id)

    def flush(self) -> None:
        self.producer.flush()


class _MemoryWriter:
    def __init__(self, source: MemoryTrainingData):
        self.source = source

    def add_vector(self, entity_id: str, as_of_ms: int, values: Mapping[str, float], view: str = VIEW,
                   version: int = 1) -> None:
        self.source.add_vector(view, entity_id, as_of_ms, values)  # plain values: no version to carry

    def add_label(self, entity_id: str, event_time_ms: int, label: float) -> None:
        self.source.add_label(entity_id, event_time_ms, label)

    def flush(self) -> None:
        """Plain values are visible at once."""


@dataclass
class Backend:
    source: TrainingDataSource
    writer: _BusWriter | _MemoryWriter


Factory = Callable[..., Backend]


@pytest.fixture(params=[pytest.param("kafka", marks=pytest.mark.integration), "memory-bus", "memory"])
def backend_factory(request: pytest.FixtureRequest) -> Factory:
    bus: Bus | None = None
    if request.param == "kafka":
        bus = KafkaBus(request.getfixturevalue("kafka_settings"))
    elif request.param == "memory-bus":
        bus = MemoryBus()

    def make(labels_within_features: bool = False) -> Backend:
        if bus is None:
            source = MemoryTrainingData(labels_within_features=labels_within_features)
            return Backend(source, _MemoryWriter(source))
        return Backend(KafkaTrainingData(bus, timeout=30, labels_within_features=labels_within_features),
                       _BusWriter(bus))

    return make


def _values(x: float) -> dict[str, float]:
    return {n: x for n in COLUMNS}


def test_pinned_ranges_give_the_same_rows_and_never_a_later_value(backend_factory: Factory) -> None:
    b = backend_factory()
    for i in range(20):
        b.writer.add_vector(f"e{i % 4}", 1000 + i * 10, _values(float(i)))
    for i in range(8):
        b.writer.add_label(f"e{i % 4}", 1100 + i * 5, float(i % 2))
    b.writer.flush()
    f_ranges, l_ranges = b.source.snapshot(SPEC)
    assert sum(r.count for r in f_ranges) == 20 and sum(r.count for r in l_ranges) == 8
    assert all(isinstance(r, OffsetRange) for r in f_ranges + l_ranges)
    assert all(r.topic.endswith(FEATURES_LOG.name) for r in f_ranges)
    assert all(r.topic.endswith(LABELS.name) for r in l_ranges)
    # the leak trap: values after every label time, and in-time values outside the pinned ranges
    for e in range(4):
        b.writer.add_vector(f"e{e}", 1_000_000, _values(777.0))
        b.writer.add_vector(f"e{e}", 1101, _values(555.0))
    b.writer.flush()

    ts = b.source.training_set(SPEC, f_ranges, l_ranges)
    assert ts.X.dtype == np.float32 and ts.X.shape == (8, len(COLUMNS)) and ts.y.dtype == np.float64
    assert not np.isin(ts.X, [777.0, 555.0]).any()
    assert list(ts.label_times_ms) == sorted(ts.label_times_ms)
    assert ts.feature_log_ranges == sorted(f_ranges) and ts.label_ranges == sorted(l_ranges)
    [row] = [i for i, (e, t) in enumerate(zip(ts.entity_ids, ts.label_times_ms, strict=True)) if (e, t) == ("e0", 1100)]
    assert ts.X[row, 0] == 8.0  # the latest e0 vector at or before 1100: i=8 (t=1080)
    again = b.source.training_set(SPEC, f_ranges, l_ranges)
    assert np.array_equal(ts.X, again.X) and np.array_equal(ts.y, again.y) and ts.entity_ids == again.entity_ids

    now = b.source.training_set(SPEC)  # default: a snapshot now, which includes the later records
    assert now.vectors_read == 28 and not np.isin(now.X, [777.0]).any()


def test_other_views_unmatched_and_bad_labels_are_counted(backend_factory: Factory) -> None:
    b = backend_factory()
    b.writer.add_vector("a", 100, _values(1.0))
    b.writer.add_vector("a", 150, _values(9.0), view="other")
    b.writer.add_vector("a", 160, {"x_last": 7.0})  # a version without x_mean: not what the model reads
    b.writer.add_vector("a", 170, _values(4.0), version=2)  # a newer version with both columns: used
    b.writer.add_label("a", 165, 1.0)
    b.writer.add_label("a", 200, 1.0)
    b.writer.add_label("b", 200, 0.0)  # no vector of b at all
    b.writer.add_label("a", 50, 0.0)  # before a's first vector
    b.writer.add_label("a", 300, 2.0)  # not a binary label: skipped, never fatal
    b.writer.flush()
    ts = b.source.training_set(SPEC)
    assert [(t, x) for t, x in zip(ts.label_times_ms, ts.X[:, 0], strict=True)] == [(165, 1.0), (200, 4.0)]
    assert ts.stats["vectors_other_view"] == 1 and ts.stats["vectors_missing_columns"] == 1
    assert ts.stats["labels_invalid"] == 1 and ts.labels_without_features == 2
    assert ts.vectors_read == 2 and ts.labels_read == 4


def test_labels_within_features_wait_for_the_feature_watermark(backend_factory: Factory) -> None:
    b = backend_factory(labels_within_features=True)
    for p in range(12):  # vectors of many entities, so every partition has some (its newest at t=500)
        b.writer.add_vector(f"e{p}", 500, _values(float(p)))
    b.writer.add_label("e0", 400, 1.0)
    b.writer.add_label("e0", 900, 0.0)  # after the feature log's watermark: its vector may not be written yet
    b.writer.flush()
    ts = b.source.training_set(SPEC)
    assert ts.stats["labels_after_feature_watermark"] == 1 and ts.labels_read == 1


def test_a_quiet_partition_does_not_hold_back_the_labels_of_the_others(backend_factory: Factory) -> None:
    # every partition gets an entity that goes quiet at t=500; "busy" goes on to t=2000 in its own partition. Its
    # labels up to 2000 have their vectors written; a minimum over the partitions (500) would drop them, and every
    # retrain would train on the same rows until the quiet entities spoke again.
    b = backend_factory(labels_within_features=True)
    for p in range(12):
        b.writer.add_vector(f"e{p}", 500, _values(float(p)))
    for t in (500, 1000, 2000):
        b.writer.add_vector("busy", t, _values(t / 1000))
    b.writer.add_label("busy", 1500, 1.0)  # within its partition: the vector of t=1000 is in force
    b.writer.add_label("busy", 2500, 0.0)  # past it: that vector may not be written yet
    b.writer.flush()
    ts = b.source.training_set(SPEC)
    assert ts.stats["labels_after_feature_watermark"] == 1 and ts.labels_read == 1
    assert ts.entity_ids == ["busy"] and ts.X[0].tolist() == [1.0] * len(COLUMNS)


def test_a_range_past_the_log_end_is_refused(backend_factory: Factory) -> None:
    b = backend_factory()
    b.writer.add_vector("a", 100, _values(1.0))
    b.writer.flush()
    f_ranges, l_ranges = b.source.snapshot(SPEC)
    r = next(r for r in f_ranges if r.count)
    with pytest.raises(OfflineStoreError, match="past the log end"):
        b.source.training_set(SPEC, [OffsetRange(r.topic, r.partition, 0, r.end_offset + 5)], l_ranges)
