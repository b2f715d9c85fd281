"""The offline store: point-in-time-correct training data from `features.log` joined with `labels`.

A training set is defined by offset ranges (its data version): the same ranges give the same arrays, row for row.
For each label (entity, t) the join takes the latest FeatureVector of that entity with `as_of_ms <= t` (ties: the
later one in the log) — never a vector from after the label time, so no feature value leaks from the future.
Labels with no earlier vector are left out (and counted).
"""

from __future__ import annotations

import bisect
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from confluent_kafka import Consumer as _KafkaConsumer
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from mlops import contracts
from mlops.bus import watermarks
from mlops.contracts import common_pb2, events_pb2
from mlops.schema import FEATURE_SET, FeatureSet
from mlops.settings import KafkaSettings
from mlops.topics import FEATURES_LOG, LABELS, TopicSpec, topic_name

__all__ = [
    "JoinedRow",
    "OffsetRange",
    "OfflineStoreError",
    "TrainingSet",
    "build_training_set",
    "point_in_time_join",
    "read_range",
    "snapshot_ranges",
]

log = logging.getLogger("mlops.offline_store")


class OfflineStoreError(RuntimeError):
    """The requested offset ranges could not be read completely."""


@dataclass(frozen=True, order=True)
class OffsetRange:
    """Half-open [start_offset, end_offset) of one partition."""

    topic: str
    partition: int
    start_offset: int
    end_offset: int

    @property
    def count(self) -> int:
        return max(0, self.end_offset - self.start_offset)

    def to_proto(self) -> common_pb2.OffsetRange:
        return common_pb2.OffsetRange(
            topic=self.topic, partition=self.partition, start_offset=self.start_offset, end_offset=self.end_offset
        )

    @classmethod
    def from_proto(cls, msg: common_pb2.OffsetRange) -> OffsetRange:
        return cls(msg.topic, msg.partition, msg.start_offset, msg.end_offset)


class VectorLike(Protocol):
    entity_id: str
    as_of_ms: int
    values: Mapping[str, float]


class LabelLike(Protocol):
    entity_id: str
    event_time_ms: int
    label: float


@dataclass(frozen=True)
class JoinedRow:
    entity_id: str
    label_time_ms: int
    label: float
    values: tuple[float, ...]
    vector_as_of_ms: int
    order: int  # position of the label in its input (its log position): the last sort key


@dataclass
class TrainingSet:
    X: np.ndarray  # float32, n x k, columns = feature_names  # noqa: N815 (conventional name)
    y: np.ndarray  # float64
    feature_names: tuple[str, ...]
    entity_ids: list[str]
    label_times_ms: np.ndarray  # int64
    feature_log_ranges: list[OffsetRange]
    label_ranges: list[OffsetRange]
    labels_without_features: int = 0
    vectors_read: int = 0
    labels_read: int = 0
    stats: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.X.shape[0])


def point_in_time_join(
    vectors: Iterable[VectorLike], labels: Iterable[LabelLike], feature_names: Sequence[str]
) -> list[JoinedRow]:
    """Pure join. `vectors` in log order (per entity, which Kafka keeps by key). Rows sorted by
    (label time, entity, label order). A label with no vector at or before its time gives no row."""
    by_entity: dict[str, list[tuple[int, int, Mapping[str, float]]]] = {}
    for i, v in enumerate(vectors):
        by_entity.setdefault(v.entity_id, []).append((int(v.as_of_ms), i, v.values))
    times: dict[str, list[int]] = {}
    for eid, items in by_entity.items():
        items.sort(key=lambda t: (t[0], t[1]))  # by time, then log order: the later of equal times wins
        times[eid] = [t[0] for t in items]
    rows: list[JoinedRow] = []
    for order, lab in enumerate(labels):
        items = by_entity.get(lab.entity_id)
        if not items:
            continue
        t = int(lab.event_time_ms)
        idx = bisect.bisect_right(times[lab.entity_id], t) - 1
        if idx < 0:
            continue
        as_of, _, values = items[idx]
        row_values = tuple(float(values.get(n, math.nan)) for n in feature_names)
        rows.append(JoinedRow(lab.entity_id, t, float(lab.label), row_values, as_of, order))
    rows.sort(key=lambda r: (r.label_time_ms, r.entity_id, r.order))
    return rows


# --- reading exact offset ranges ---------------------------------------------------------------------------------


def _assigned_consumer(settings: KafkaSettings) -> _KafkaConsumer:
    """A consumer that is only ever assigned partitions: it joins no group and commits nothing."""
    return _KafkaConsumer(
        settings.client_config()
        | {
            "group.id": "mlops-offline-reader",  # required by librdkafka's config; unused without subscribe/commit
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            "fetch.max.bytes": settings.max_message_bytes,
            "max.partition.fetch.bytes": settings.max_message_bytes,
        }
    )


def snapshot_ranges(kafka_settings: KafkaSettings, spec: TopicSpec) -> list[OffsetRange]:
    """[low, high watermark) of every partition of `spec` now: what a training run pins as its data version."""
    consumer = _assigned_consumer(kafka_settings)
    try:
        name = topic_name(spec, kafka_settings)
        meta = consumer.list_topics(name, timeout=10)
        tmeta = meta.topics.get(name)
        if tmeta is None or tmeta.error is not None:
            raise OfflineStoreError(f"topic {name} not found: {tmeta.error if tmeta else 'no metadata'}")
        ranges = []
        for p in sorted(tmeta.partitions):
            low, high = watermarks(consumer, name, p)
            ranges.append(OffsetRange(name, p, low, high))
        return ranges
    finally:
        consumer.close()


def read_range(
    kafka_settings: KafkaSettings, ranges: Sequence[OffsetRange], timeout: float = 60.0
) -> list[tuple[OffsetRange, int, bytes | None, bytes | None]]:
    """Every record in `ranges` as (range, offset, key, value), by partition then offset."""
    todo = {(r.topic, r.partition): r for r in ranges if r.count > 0}
    if not todo:
        return []
    consumer = _assigned_consumer(kafka_settings)
    out: list[tuple[OffsetRange, int, bytes | None, bytes | None]] = []
    try:
        consumer.assign([TopicPartition(t, p, r.start_offset) for (t, p), r in todo.items()])
        pending = set(todo)
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise OfflineStoreError(f"timed out after {timeout}s reading {sorted(pending)}")
            for msg in consumer.consume(1000, 0.5):
                tp = (msg.topic(), msg.partition())
                r = todo.get(tp)
                if r is None:
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(err)
                    if msg.offset() >= r.end_offset:
                        pending.discard(tp)
                    elif tp in pending:  # EOF before the end of the range: the range was never written
                        raise OfflineStoreError(f"{r} ends past the log end {msg.offset()}")
                    continue
                off = msg.offset()
                if off < r.end_offset:
                    out.append((r, off, msg.key(), msg.value()))
                if off >= r.end_offset - 1:
                    pending.discard(tp)
            for tp in list(pending):  # control records (transactions) can end a range without a data record
                pos = consumer.position([TopicPartition(*tp)])[0].offset
                if pos >= todo[tp].end_offset:
                    pending.discard(tp)
    finally:
        consumer.close()
    out.sort(key=lambda item: (item[0].topic, item[0].partition, item[1]))
    return out


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


def build_training_set(
    kafka_settings: KafkaSettings,
    feature_set: FeatureSet = FEATURE_SET,
    feature_log_ranges: Sequence[OffsetRange] | None = None,
    label_ranges: Sequence[OffsetRange] | None = None,
    timeout: float = 60.0,
    labels_within_features: bool = False,
) -> TrainingSet:
    """Read exactly the given ranges (default: a snapshot now) and join them point-in-time.

    `labels_within_features`: leave out labels newer than the feature log's watermark (the smallest, over its
    partitions, of the newest as-of time): their feature vectors may not have been written yet when the snapshot
    was taken (labels can overtake a lagging feature pipeline), and joining them would pair a label with an older,
    unrelated vector of the entity. Deterministic for given ranges."""
    f_ranges = sorted(feature_log_ranges if feature_log_ranges is not None
                      else snapshot_ranges(kafka_settings, FEATURES_LOG))
    l_ranges = sorted(label_ranges if label_ranges is not None else snapshot_ranges(kafka_settings, LABELS))
    skipped = {"vectors_other_feature_set": 0, "undecodable": 0}
    vectors: list[_Vec] = []
    newest: dict[tuple[str, int], int] = {}  # (topic, partition) → newest as-of time read there
    for r, off, _key, value in read_range(kafka_settings, f_ranges, timeout):
        try:
            fv = contracts.decode(events_pb2.FeatureVector, value, f"{r.topic}/{r.partition}@{off}")
        except contracts.ContractError as exc:
            skipped["undecodable"] += 1
            log.warning("skipping feature vector", extra={"fields": {"error": str(exc)}})
            continue
        if fv.feature_set != feature_set.name or fv.feature_set_version != feature_set.version:
            skipped["vectors_other_feature_set"] += 1
            continue
        vectors.append(_Vec(fv.entity_id, fv.as_of_ms, dict(fv.values)))
        tp = (r.topic, r.partition)
        newest[tp] = max(newest.get(tp, fv.as_of_ms), fv.as_of_ms)
    labels: list[_Lab] = []
    for r, off, _key, value in read_range(kafka_settings, l_ranges, timeout):
        try:
            lab = contracts.decode(events_pb2.Label, value, f"{r.topic}/{r.partition}@{off}")
        except contracts.ContractError as exc:
            skipped["undecodable"] += 1
            log.warning("skipping label", extra={"fields": {"error": str(exc)}})
            continue
        labels.append(_Lab(lab.entity_id, lab.event_time_ms, lab.label))
    if labels_within_features:
        watermark = min(newest.values()) if newest else -1
        kept = [lab for lab in labels if lab.event_time_ms <= watermark]
        skipped["labels_after_feature_watermark"] = len(labels) - len(kept)
        labels = kept
    names = feature_set.names
    rows = point_in_time_join(vectors, labels, names)
    k = len(names)
    X = np.array([r.values for r in rows], dtype=np.float32).reshape(len(rows), k)  # noqa: N806
    return TrainingSet(
        X=X,
        y=np.array([r.label for r in rows], dtype=np.float64),
        feature_names=names,
        entity_ids=[r.entity_id for r in rows],
        label_times_ms=np.array([r.label_time_ms for r in rows], dtype=np.int64),
        feature_log_ranges=list(f_ranges),
        label_ranges=list(l_ranges),
        labels_without_features=len(labels) - len(rows),
        vectors_read=len(vectors),
        labels_read=len(labels),
        stats=skipped,
    )
