"""Where training rows come from: exact offset ranges of `features.log` and a model's label topic, read from a bus
(`KafkaTrainingData`) or from plain values in memory (`MemoryTrainingData`), then joined point-in-time. A model whose
label joins by request id (`join: request_id`) reads the `predictions` topic instead of `features.log` (its ranges
are the training set's `feature_log_ranges`) and joins each label with the prediction it answers (`request_join`)."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from mlops import contracts
from mlops.bus import HEADER_MESSAGE_TYPE, Bus, BusError, KafkaBus, Record
from mlops.contracts import events_pb2
from mlops.definitions.labels import LabelError, check_label, decode_label
from mlops.errors import MlopsError
from mlops.offline_store._join import OffsetRange, TrainingSet, TrainingSpec, join_views, request_join
from mlops.prediction_log import PredictionColumns, read_predictions
from mlops.settings import KafkaSettings
from mlops.topics import FEATURES_LOG, PREDICTIONS, TopicSpec

__all__ = [
    "KafkaTrainingData",
    "MemoryTrainingData",
    "OfflineStoreError",
    "TrainingDataSource",
    "build_training_set",
    "read_range",
    "snapshot_ranges",
]

log = logging.getLogger("mlops.offline_store")
_LOGGED_BAD_LABELS = 10  # per training set: the first few bad labels are logged one by one, the rest counted


class OfflineStoreError(MlopsError):
    """The requested offset ranges could not be read completely."""

    def __init__(self, what: object, reason: str):
        super().__init__(f"offline store cannot read {what}: {reason}")
        self.what, self.reason = what, reason


class TrainingDataSource(Protocol):
    """Where a trainer gets point-in-time training rows of a model and the offsets they came from (its data
    version)."""

    def snapshot(self, spec: TrainingSpec) -> tuple[list[OffsetRange], list[OffsetRange]]:
        """(feature-log ranges, label ranges) of everything written so far: what a training run pins."""
        ...

    def training_set(
        self,
        spec: TrainingSpec,
        feature_log_ranges: Sequence[OffsetRange] | None = None,
        label_ranges: Sequence[OffsetRange] | None = None,
    ) -> TrainingSet:
        """Exactly the rows of the given ranges (default: a snapshot now), joined point-in-time; the same ranges
        give the same arrays, row for row."""
        ...


@dataclass(frozen=True)
class _Vec:
    entity_id: str
    as_of_ms: int
    values: Mapping[str, float]


@dataclass(frozen=True)
class _Lab:
    entity_id: str
    event_time_ms: int
    label: float
    request_id: str = ""


@dataclass(frozen=True)
class _Pred:
    request_id: str
    entity_id: str
    model_name: str
    timestamp_ms: int
    inputs: Mapping[str, float]


@dataclass
class _Read:
    """What was read: the model's vectors per view (with the range each came from), or its predictions for a
    request-id join, its valid labels, counts."""

    vectors: dict[str, list[tuple[OffsetRange, _Vec]]]
    labels: list[_Lab]
    skipped: dict[str, int]
    predictions: list[_Pred] = field(default_factory=list)


def _new_read(spec: TrainingSpec) -> _Read:
    if spec.by_request:
        return _Read({}, [], {"predictions_other_model": 0, "predictions_mirrored": 0, "undecodable": 0,
                              "labels_invalid": 0})
    return _Read({v: [] for v in spec.views}, [], {"vectors_other_view": 0, "vectors_missing_columns": 0,
                                                  "undecodable": 0, "labels_invalid": 0})


def _offer_prediction(read: _Read, spec: TrainingSpec, p: _Pred) -> None:
    """Keep a prediction of the model (any version: the inputs are named, so each reads as declared now)."""
    if p.model_name != spec.model.name:
        read.skipped["predictions_other_model"] += 1
    else:
        read.predictions.append(p)


def _offer_predictions(read: _Read, spec: TrainingSpec, served: PredictionColumns) -> None:
    """The rows of one logged request (either contract), if they are the model's and were answered to the client
    (mirrored shadow and guard rows repeat a request the champion answered: they would count it twice)."""
    if served.model_name != spec.model.name:
        read.skipped["predictions_other_model"] += served.rows
        return
    if served.role in ("shadow", "guard"):
        read.skipped["predictions_mirrored"] += served.rows
        return
    names, xs = served.feature_names, served.x.tolist()
    for rid, entity, row in zip(served.request_ids(), served.entity_list(), xs, strict=True):
        read.predictions.append(_Pred(rid, entity, served.model_name, served.timestamp_ms,
                                      dict(zip(names, row, strict=True))))


def _offer_vector(read: _Read, spec: TrainingSpec, r: OffsetRange, view: str, vec: _Vec) -> None:
    """Keep a vector of one of the model's views, of any version that has every column the model reads."""
    if view not in read.vectors:
        read.skipped["vectors_other_view"] += 1
    elif any(c not in vec.values for c in spec.columns(view)):
        read.skipped["vectors_missing_columns"] += 1
    else:
        read.vectors[view].append((r, vec))


def _bad_label(read: _Read, where: str, exc: LabelError) -> None:
    read.skipped["labels_invalid"] += 1
    if read.skipped["labels_invalid"] <= _LOGGED_BAD_LABELS:
        log.warning("skipping a bad label", extra={"fields": {"where": where, "field": exc.field,
                                                              "reason": str(exc)}})


def _assemble(spec: TrainingSpec, read: _Read, f_ranges: list[OffsetRange], l_ranges: list[OffsetRange],
              labels_within_features: bool) -> TrainingSet:
    """Join what was read (both in log order: by partition, then offset) into a training set."""
    labels, skipped = read.labels, dict(read.skipped)
    if skipped["labels_invalid"] > _LOGGED_BAD_LABELS:
        log.warning("bad labels skipped", extra={"fields": {"model": spec.model.name,
                                                            "count": skipped["labels_invalid"]}})
    if spec.by_request:  # a prediction precedes its label: one missing from the snapshot is just unmatched
        rows = request_join(read.predictions, labels, spec.feature_names)
        skipped["labels_without_prediction"] = len(labels) - len(rows)
        return _training_set(spec, rows, f_ranges, l_ranges, len(read.predictions), len(labels), skipped)
    if labels_within_features:
        kept = _labels_within_features(read, labels)
        skipped["labels_after_feature_watermark"] = len(labels) - len(kept)
        labels = kept
    rows = join_views({view: [v for _r, v in items] for view, items in read.vectors.items()}, labels, spec.inputs)
    return _training_set(spec, rows, f_ranges, l_ranges, sum(len(items) for items in read.vectors.values()),
                         len(labels), skipped)


def _labels_within_features(read: _Read, labels: list[_Lab]) -> list[_Lab]:
    """The labels whose entity's features.log partition has passed their time (its newest as-of read is not
    older): the vector in force at the label's time is written there. Per partition, not the log's minimum: one
    partition whose entities went quiet would hold back every label and freeze every retrain on the same rows. A
    label of an entity with no vector read stays (it joins nothing: `labels_without_features`)."""
    newest: dict[tuple[str, int], int] = {}  # (topic, partition) → newest as-of time read there
    partitions: dict[str, set[tuple[str, int]]] = {}  # entity → where its vectors are
    for items in read.vectors.values():
        for r, v in items:
            where = (r.topic, r.partition)
            newest[where] = max(newest.get(where, v.as_of_ms), v.as_of_ms)
            partitions.setdefault(v.entity_id, set()).add(where)
    return [lab for lab in labels if lab.entity_id not in partitions
            or lab.event_time_ms <= max(newest[w] for w in partitions[lab.entity_id])]


def _training_set(spec: TrainingSpec, rows: list, f_ranges: list[OffsetRange], l_ranges: list[OffsetRange],
                  vectors_read: int, labels_read: int, stats: dict[str, int]) -> TrainingSet:
    names = spec.feature_names
    X = np.array([r.values for r in rows], dtype=np.float32).reshape(len(rows), len(names))  # noqa: N806
    return TrainingSet(
        X=X,
        y=np.array([r.label for r in rows], dtype=np.float64),
        feature_names=names,
        entity_ids=[r.entity_id for r in rows],
        label_times_ms=np.array([r.label_time_ms for r in rows], dtype=np.int64),
        feature_log_ranges=f_ranges,
        label_ranges=l_ranges,
        labels_without_features=labels_read - len(rows),
        vectors_read=vectors_read,
        labels_read=labels_read,
        stats=stats,
    )


class _RangeSource:
    """A TrainingDataSource that can snapshot a topic and read exact ranges; the rest is the same for all."""

    def __init__(self, labels_within_features: bool):
        self.labels_within_features = labels_within_features

    def _snapshot(self, spec: TopicSpec) -> list[OffsetRange]:
        raise NotImplementedError(f"{type(self).__name__}._snapshot")

    def _read(self, spec: TrainingSpec, f_ranges: list[OffsetRange], l_ranges: list[OffsetRange]) -> _Read:
        raise NotImplementedError(f"{type(self).__name__}._read")

    def snapshot(self, spec: TrainingSpec) -> tuple[list[OffsetRange], list[OffsetRange]]:
        return self._snapshot(spec.feature_topic), self._snapshot(spec.label_topic)

    def training_set(
        self,
        spec: TrainingSpec,
        feature_log_ranges: Sequence[OffsetRange] | None = None,
        label_ranges: Sequence[OffsetRange] | None = None,
    ) -> TrainingSet:
        f_ranges = sorted(feature_log_ranges if feature_log_ranges is not None
                          else self._snapshot(spec.feature_topic))
        l_ranges = sorted(label_ranges if label_ranges is not None else self._snapshot(spec.label_topic))
        return _assemble(spec, self._read(spec, f_ranges, l_ranges), f_ranges, l_ranges,
                         self.labels_within_features)


# --- on a bus: exact offset ranges read with a bus Reader ---------------------------------------------------------


def _bus(where: KafkaSettings | Bus) -> Bus:
    return KafkaBus(where) if isinstance(where, KafkaSettings) else where


def snapshot_ranges(where: KafkaSettings | Bus, spec: TopicSpec) -> list[OffsetRange]:
    """[low, high watermark) of every partition of `spec` now: what a training run pins as its data version."""
    bus = _bus(where)
    name = bus.topic(spec)
    try:
        reader = bus.reader([name], client_id="mlops-offline-store", start={})  # assigned nothing: only asks
        try:
            marks = reader.watermarks([name])
        finally:
            reader.close()
    except BusError as exc:
        raise OfflineStoreError(name, str(exc)) from exc
    return [OffsetRange(t, p, low, high) for (t, p), (low, high) in sorted(marks.items())]


def read_range(where: KafkaSettings | Bus, ranges: Sequence[OffsetRange], timeout: float = 60.0
               ) -> list[tuple[OffsetRange, Record]]:
    """Every record in `ranges` with the range it belongs to, by partition then offset."""
    todo = {(r.topic, r.partition): r for r in ranges if r.count > 0}
    if not todo:
        return []
    try:
        reader = _bus(where).reader(sorted({t for t, _p in todo}), client_id="mlops-offline-store",
                                    start={tp: r.start_offset for tp, r in todo.items()})
    except BusError as exc:
        raise OfflineStoreError(sorted(todo.values()), str(exc)) from exc
    try:
        highs = reader.watermarks()
        for tp, r in todo.items():
            if r.end_offset > highs[tp][1]:
                raise OfflineStoreError(r, f"it ends past the log end {highs[tp][1]}")
        records = reader.read_until({tp: r.end_offset for tp, r in todo.items()}, timeout)
    except BusError as exc:
        raise OfflineStoreError(sorted(todo.values()), str(exc)) from exc
    finally:
        reader.close()
    return [(todo[(rec.topic, rec.partition)], rec) for rec in records]


class KafkaTrainingData(_RangeSource):
    """The offline store on a bus: features.log and each model's label topic (KafkaBus in a service, MemoryBus in
    a test). Labels are `Label` protobufs or JSON, read as the model declares (`decode_label`)."""

    def __init__(self, where: KafkaSettings | Bus, *, timeout: float = 60.0, labels_within_features: bool = False):
        super().__init__(labels_within_features)
        self.bus, self.timeout = _bus(where), timeout

    def _snapshot(self, spec: TopicSpec) -> list[OffsetRange]:
        return snapshot_ranges(self.bus, spec)

    def _read(self, spec: TrainingSpec, f_ranges: list[OffsetRange], l_ranges: list[OffsetRange]) -> _Read:
        read = _new_read(spec)
        for r, rec in read_range(self.bus, f_ranges, self.timeout):
            if spec.by_request:
                if (served := self._decode(rec, read, None)) is not None:
                    for request in served.split():  # a request's timestamp is its own
                        _offer_predictions(read, spec, request)
            elif (fv := self._decode(rec, read, events_pb2.FeatureVector)) is not None:
                _offer_vector(read, spec, r, fv.feature_set, _Vec(fv.entity_id, fv.as_of_ms, dict(fv.values)))
        for _r, rec in read_range(self.bus, l_ranges, self.timeout):
            try:
                row = decode_label(rec.value, spec.model, spec.id_field, rec.header(HEADER_MESSAGE_TYPE))
            except LabelError as exc:
                _bad_label(read, rec.where, exc)
                continue
            read.labels.append(_Lab(row.entity_id, row.event_time_ms, row.value, row.request_id))
        return read

    @staticmethod
    def _decode(rec: Record, read: _Read, message_type: type | None) -> Any:
        """`message_type`, or (None) a record of `predictions` in either contract; None when undecodable."""
        try:
            return read_predictions(rec) if message_type is None else rec.decode(message_type)
        except contracts.ContractError as exc:
            read.skipped["undecodable"] += 1
            log.warning("skipping undecodable record", extra={"fields": {"error": str(exc)}})
            return None


def build_training_set(
    where: KafkaSettings | Bus,
    spec: TrainingSpec,
    feature_log_ranges: Sequence[OffsetRange] | None = None,
    label_ranges: Sequence[OffsetRange] | None = None,
    timeout: float = 60.0,
    labels_within_features: bool = False,
) -> TrainingSet:
    """Read exactly the given ranges (default: a snapshot now) and join them point-in-time for `spec`'s model.

    `labels_within_features`: leave out labels newer than the newest as-of time of their entity's feature log
    partition: their feature vectors may not have been written yet when the snapshot was taken (labels can
    overtake a lagging feature pipeline), and joining them would pair a label with an older, unrelated vector of the
    entity. Deterministic for given ranges."""
    source = KafkaTrainingData(where, timeout=timeout, labels_within_features=labels_within_features)
    return source.training_set(spec, feature_log_ranges, label_ranges)


# --- in process: plain values in partitioned logs -----------------------------------------------------------------


class MemoryTrainingData(_RangeSource):
    """A feature log and label topics held in memory as plain values, partitioned by entity and addressed by offset
    like the topics: a trainer test feeds rows without a broker or protobuf."""

    def __init__(self, *, partitions: int = 3, labels_within_features: bool = False):
        super().__init__(labels_within_features)
        self.partitions = partitions
        self._logs: dict[str, list[list]] = {}  # topic → partitions of (view, _Vec), _Pred or _Lab

    def _append(self, topic: str, entity_id: str, item: object) -> None:
        logs = self._logs.setdefault(topic, [[] for _ in range(self.partitions)])
        logs[zlib.crc32(entity_id.encode()) % len(logs)].append(item)

    def add_vector(self, view: str, entity_id: str, as_of_ms: int, values: Mapping[str, float]) -> None:
        self._append(FEATURES_LOG.name, entity_id, (view, _Vec(entity_id, as_of_ms, dict(values))))

    def add_label(self, entity_id: str, event_time_ms: int, label: float, *, topic: str = "labels",
                  request_id: str = "") -> None:
        self._append(topic, entity_id, _Lab(entity_id, event_time_ms, label, request_id))

    def add_prediction(self, request_id: str, entity_id: str, model_name: str, timestamp_ms: int,
                       inputs: Mapping[str, float]) -> None:
        """A served row as the prediction log holds it: the inputs by declared name `view.column`."""
        self._append(PREDICTIONS.name, entity_id or request_id,
                     _Pred(request_id, entity_id, model_name, timestamp_ms, dict(inputs)))

    def _snapshot(self, spec: TopicSpec) -> list[OffsetRange]:
        logs = self._logs.setdefault(spec.name, [[] for _ in range(self.partitions)])
        return [OffsetRange(spec.name, p, 0, len(log)) for p, log in enumerate(logs)]

    def _read(self, spec: TrainingSpec, f_ranges: list[OffsetRange], l_ranges: list[OffsetRange]) -> _Read:
        read = _new_read(spec)
        for r in f_ranges:
            for item in self._slice(r):
                if spec.by_request:
                    _offer_prediction(read, spec, item)
                else:
                    _offer_vector(read, spec, r, *item)
        for r in l_ranges:
            for i, lab in enumerate(self._slice(r)):
                try:
                    check_label(spec.model, lab.label)
                except LabelError as exc:
                    _bad_label(read, f"{r.topic}/{r.partition}@{r.start_offset + i}", exc)
                    continue
                read.labels.append(lab)
        return read

    def _slice(self, r: OffsetRange) -> list:
        logs = self._logs.get(r.topic, [])
        if not 0 <= r.partition < len(logs):
            raise OfflineStoreError(r, "no such topic partition")
        if r.end_offset > len(logs[r.partition]):
            raise OfflineStoreError(r, f"it ends past the log end {len(logs[r.partition])}")
        return logs[r.partition][r.start_offset:r.end_offset]

