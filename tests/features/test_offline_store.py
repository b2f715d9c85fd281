"""Point-in-time join (pure) and build_training_set against the real broker, with a leak trap; the request-id join
with the prediction log on the in-process bus and in memory."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np
from mlops.bus import MemoryBus, Producer
from mlops.contracts import events_pb2, models_pb2
from mlops.definitions import Definitions, Entity, FeatureView, Model, Source, SourceField
from mlops.offline_store import (
    KafkaTrainingData,
    MemoryTrainingData,
    OffsetRange,
    TrainingSpec,
    build_training_set,
    join_views,
    point_in_time_join,
    snapshot_ranges,
)
from mlops.prediction_log import PredictionColumns, to_batch
from mlops.settings import KafkaSettings
from mlops.topics import FEATURES_LOG, LABELS, PREDICTIONS, topic_name

NAMES = ("f",)
COLUMNS = ("a", "b")


def definitions(join: str = "entity_time") -> Definitions:
    """A binary model `m` reading columns a and b of view `v`, labels on the `labels` topic joined by `join`."""
    return Definitions(
        entities=(Entity(name="thing"),),
        sources=(Source(name="s", topic="raw.s", entity="thing",
                        fields=(SourceField(name="x", type="float"),)),),
        feature_views=(FeatureView(name="v", entity="thing", source="s", features=tuple(
            {"name": c, "field": "x", "aggregation": "last"} for c in COLUMNS)),),
        models=(Model(name="m", task="binary", features=("v.a", "v.b"), label={"join": join}),),
    )


def spec() -> TrainingSpec:
    return TrainingSpec.of(definitions(), "m")


def request_spec() -> TrainingSpec:
    """Model `m`, its label declared `join: request_id`."""
    return TrainingSpec.of(definitions("request_id"), "m")


@dataclass
class V:
    entity_id: str
    as_of_ms: int
    values: dict


@dataclass
class L:
    entity_id: str
    event_time_ms: int
    label: float


def test_join_never_takes_a_later_vector() -> None:
    vectors = [
        V("a", 100, {"f": 1.0}),
        V("a", 200, {"f": 2.0}),
        V("a", 300, {"f": 999.0}),
        V("b", 150, {"f": 5.0}),
    ]
    labels = [L("a", 250, 1.0), L("a", 200, 0.0), L("a", 99, 1.0), L("b", 400, 1.0), L("c", 500, 0.0)]
    rows = point_in_time_join(vectors, labels, NAMES)
    assert [(r.entity_id, r.label_time_ms, r.values, r.vector_as_of_ms) for r in rows] == [
        ("a", 200, (2.0,), 200),  # as_of == label time is allowed
        ("a", 250, (2.0,), 200),  # the 300 vector (999) is after the label: never used
        ("b", 400, (5.0,), 150),
    ]
    assert all(999.0 not in r.values for r in rows)


def test_join_ties_take_the_later_log_record() -> None:
    rows = point_in_time_join([V("a", 100, {"f": 1.0}), V("a", 100, {"f": 2.0})], [L("a", 100, 1.0)], NAMES)
    assert rows[0].values == (2.0,)


def test_join_over_several_views_needs_each_view_at_the_label_time() -> None:
    vectors = {"u": [V("a", 100, {"p": 1.0}), V("a", 300, {"p": 3.0})], "w": [V("a", 200, {"q": 20.0})]}
    labels = [L("a", 150, 0.0), L("a", 250, 1.0), L("a", 350, 1.0)]
    rows = join_views(vectors, labels, [("w", "q"), ("u", "p")])
    assert [(r.label_time_ms, r.values, r.vector_as_of_ms) for r in rows] == [
        (250, (20.0, 1.0), 200),  # at 150 view w had no vector yet: no row
        (350, (20.0, 3.0), 300),
    ]


def _vector(entity: str, t: int, x: float) -> events_pb2.FeatureVector:
    return events_pb2.FeatureVector(
        entity_id=entity, feature_set="v", feature_set_version=1, as_of_ms=t, values={n: x for n in COLUMNS},
        event_id=f"{entity}@{t}",
    )


def test_build_training_set_from_ranges(kafka_settings: KafkaSettings) -> None:
    p = Producer(kafka_settings, client_id="offline-test")
    flog, labels = topic_name(FEATURES_LOG, kafka_settings), topic_name(LABELS, kafka_settings)
    for i in range(20):
        p.send(flog, _vector(f"e{i % 4}", 1000 + i * 10, float(i)), key=f"e{i % 4}")
    for i in range(8):
        p.send(
            labels,
            events_pb2.Label(entity_id=f"e{i % 4}", event_time_ms=1100 + i * 5, label=float(i % 2)),
            key=f"e{i % 4}",
        )
    p.flush()
    f_ranges, l_ranges = snapshot_ranges(kafka_settings, FEATURES_LOG), snapshot_ranges(kafka_settings, LABELS)
    s = spec()
    assert sum(r.count for r in f_ranges) == 20 and all(isinstance(r, OffsetRange) for r in f_ranges)
    # the leak trap: values written AFTER every label time, after the snapshot and inside a later range
    for e in range(4):
        p.send(flog, _vector(f"e{e}", 1_000_000, 777.0), key=f"e{e}")
        p.send(flog, _vector(f"e{e}", 1101, 555.0), key=f"e{e}")  # in time, but outside the pinned ranges
    p.flush()
    ts = build_training_set(kafka_settings, s, f_ranges, l_ranges)
    assert ts.X.dtype == np.float32 and ts.X.shape == (8, len(COLUMNS)) and ts.y.dtype == np.float64
    assert ts.feature_names == ("v.a", "v.b")
    assert not np.isin(ts.X, [777.0, 555.0]).any()
    assert list(ts.label_times_ms) == sorted(ts.label_times_ms)
    # label (e0, 1100): latest e0 vector at or before 1100 is i=8 (t=1080) → value 8
    row = [
        i for i, (e, t) in enumerate(zip(ts.entity_ids, ts.label_times_ms, strict=True)) if (e, t) == ("e0", 1100)
    ]
    assert ts.X[row[0], 0] == 8.0
    again = build_training_set(kafka_settings, s, f_ranges, l_ranges)
    assert np.array_equal(ts.X, again.X) and np.array_equal(ts.y, again.y) and ts.entity_ids == again.entity_ids
    now = build_training_set(kafka_settings, s)  # default: a snapshot now, which includes the later records
    assert now.vectors_read == 28 and not np.isin(now.X, [777.0]).any()  # 777 is after every label time


# --- join: request_id — labels joined with the prediction log, the features exactly as served -------------------


# (request id, entity, model, served at, inputs by declared name)
PREDICTIONS_LOGGED = [
    ("r1", "e1", "m", 1000, {"v.a": 1.0, "v.b": 2.0}),
    ("r2", "e1", "m", 1100, {"v.a": 3.0}),                       # v.b not served: NaN
    ("r3", "e2", "m", 1200, {"v.a": 5.0, "v.b": 6.0}),           # one request, two rows: entities e2 and e3
    ("r3", "e3", "m", 1200, {"v.a": 7.0, "v.b": 8.0}),
    ("r1", "e1", "other", 1000, {"v.a": 100.0, "v.b": 100.0}),   # another model's prediction, same request id
    ("r9", "e9", "other", 1050, {"v.a": 100.0, "v.b": 100.0}),
    ("r5/1", "e5", "m", 1250, {"v.a": 9.0, "v.b": 10.0, "v.z": 0.0}),  # row 1 of batch request r5
]
# (entity, request id, label time, label)
LABELS_LOGGED = [
    ("e3", "r3", 1500, 1.0),
    ("e1", "r1", 1300, 0.0),
    ("e2", "r3", 1400, 1.0),
    ("e1", "r2", 1600, 1.0),
    ("e4", "r404", 1350, 1.0),  # answers no prediction
    ("e9", "r9", 1450, 0.0),    # answers only another model's prediction
    ("e5", "r5", 1700, 0.0),
    ("e2", "", 1800, 1.0),      # names no request
]
# written out by hand: by label time; (entity, label time, label, a, b)
EXPECTED_ROWS = [
    ("e1", 1300, 0.0, 1.0, 2.0),
    ("e2", 1400, 1.0, 5.0, 6.0),
    ("e3", 1500, 1.0, 7.0, 8.0),
    ("e1", 1600, 1.0, 3.0, float("nan")),
    ("e5", 1700, 0.0, 9.0, 10.0),
]


def _check_request_rows(ts, records: int = len(PREDICTIONS_LOGGED)) -> None:
    assert ts.feature_names == ("v.a", "v.b")
    assert ts.entity_ids == [e for e, *_ in EXPECTED_ROWS]
    assert ts.label_times_ms.tolist() == [t for _e, t, *_ in EXPECTED_ROWS]
    assert ts.y.tolist() == [y for _e, _t, y, *_ in EXPECTED_ROWS]
    np.testing.assert_array_equal(ts.X, np.array([r[3:] for r in EXPECTED_ROWS], dtype=np.float32))
    assert ts.labels_read == 8 and ts.vectors_read == 5 and ts.labels_without_features == 3
    assert ts.stats["labels_without_prediction"] == 3 and ts.stats["predictions_other_model"] == 2
    assert {r.topic for r in ts.feature_log_ranges} == {"predictions"}
    assert sum(r.count for r in ts.feature_log_ranges) == records
    assert {r.topic for r in ts.label_ranges} == {"labels"}
    assert sum(r.count for r in ts.label_ranges) == len(LABELS_LOGGED)


def test_request_id_join_reads_the_prediction_log_on_a_bus() -> None:
    bus, s = MemoryBus(), request_spec()
    producer = bus.producer(client_id="test")
    for rid, entity, model, t, inputs in PREDICTIONS_LOGGED:
        producer.send(bus.topic(PREDICTIONS), models_pb2.PredictionRecord(
            request_id=rid, entity_id=entity, model_name=model, model_version="1", inputs=inputs, timestamp_ms=t),
            key=entity)
    for i, (entity, rid, t, y) in enumerate(LABELS_LOGGED):  # protobuf and JSON labels alike
        value = (events_pb2.Label(entity_id=entity, event_time_ms=t, label=y, request_id=rid) if i % 2 else
                 json.dumps({s.id_field: entity, "event_time": t, "label": y, "request_id": rid}).encode())
        producer.send(bus.topic(LABELS), value, key=entity)
    producer.flush()
    data = KafkaTrainingData(bus, timeout=5)
    ts = data.training_set(s)
    _check_request_rows(ts)
    again = data.training_set(s, ts.feature_log_ranges, ts.label_ranges)  # the same ranges: the same rows
    np.testing.assert_array_equal(again.X, ts.X)
    assert data.snapshot(s)[0] == ts.feature_log_ranges


def test_request_id_join_reads_columnar_prediction_batches_beside_older_records() -> None:
    """The log as inference writes it now (one PredictionBatch per request: r3's two rows in one record, r5's row 1
    as a share of a two-row request, each request mirrored to a shadow challenger too), with another model's rows
    still in per-row PredictionRecords (a topic mid-upgrade): the same training rows."""
    bus, s = MemoryBus(), request_spec()
    producer, topic = bus.producer(client_id="test"), bus.topic(PREDICTIONS)
    by_request: dict[str, list] = {}
    mirrored_rows = 0
    for rid, entity, model, t, inputs in PREDICTIONS_LOGGED:
        by_request.setdefault((rid.split("/")[0], model), []).append((rid, entity, t, inputs))
    for (rid, model), rows in by_request.items():
        if model == "other":
            for row_id, entity, t, inputs in rows:
                producer.send(topic, models_pb2.PredictionRecord(request_id=row_id, entity_id=entity,
                                                                 model_name=model, inputs=inputs, timestamp_ms=t))
            continue
        names = tuple(rows[0][3])
        n = len(rows)
        cols = PredictionColumns(
            request_id=rid, model_name=model, model_version="1", feature_names=names,
            x=np.array([[inputs[k] for k in names] for *_, inputs in rows]), outputs=np.zeros((n, 2)),
            scores=np.zeros(n), predicted_labels=np.zeros(n), entity_ids=[e for _, e, _, _ in rows],
            timestamp_ms=rows[0][2], **({"request_rows": 2, "row_index": np.array([1])} if rid == "r5" else {}))
        producer.send(topic, to_batch(cols), key=rows[0][1])
        # a challenger mirrored the same request: its rows repeat the request and must not become training rows
        mirrored = dataclasses.replace(cols, model_version="2", x=cols.x + 1000.0, role="shadow")
        producer.send(topic, to_batch(mirrored), key=rows[0][1])
        mirrored_rows += n
    for entity, rid, t, y in LABELS_LOGGED:
        producer.send(bus.topic(LABELS), events_pb2.Label(entity_id=entity, event_time_ms=t, label=y,
                                                          request_id=rid), key=entity)
    producer.flush()
    ts = KafkaTrainingData(bus, timeout=5).training_set(s)
    _check_request_rows(ts, records=len(PREDICTIONS_LOGGED) - 1 + len([k for k in by_request if k[1] == "m"]))
    assert ts.stats["predictions_mirrored"] == mirrored_rows


def test_request_id_join_in_memory_gives_the_same_rows() -> None:
    data = MemoryTrainingData()
    for rid, entity, model, t, inputs in PREDICTIONS_LOGGED:
        data.add_prediction(rid, entity, model, t, inputs)
    for entity, rid, t, y in LABELS_LOGGED:
        data.add_label(entity, t, y, request_id=rid)
    _check_request_rows(data.training_set(request_spec()))
