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
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np

from mlops import contracts
from mlops.bus import Bus, BusError, KafkaBus
from mlops.contracts import common_pb2, events_pb2
from mlops.errors import MlopsError
from mlops.schema import FEATURE_SET, FeatureSet
from mlops.settings import KafkaSettings
from mlops.topics import FEATURES_LOG, LABELS, TopicSpec

__all__ = [
    "JoinedRow",
    "KafkaTrainingData",
    "LabelLike",
    "MemoryTrainingData",
    "OffsetRange",
    "OfflineStoreError",
    "TrainingDataSource",
    "TrainingSet",
    "VectorLike",
    "build_training_set",
    "point_in_time_join",
    "read_range",
    "snapshot_ranges",
]

log = logging.getLogger("mlops.offline_store")

PB = TypeVar("PB", events_pb2.FeatureVector, events_pb2.Label)


class OfflineStoreError(MlopsError):
    """The requested offset ranges could not be read completely."""

    def __init__(self, what: object, reason: str):
        super().__init__(f"offline store cannot read {what}: {reason}")
        self.what, self.reason = what, reason


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


# --- the training data a trainer reads --------------------------------------------------------------------------


class TrainingDataSource(Protocol):
    """Where a trainer gets point-in-time training rows and the offsets they came from (its data version)."""

    def snapshot(self) -> tuple[list[OffsetRange], list[OffsetRange]]:
        """(feature-log ranges, label ranges) of everything written so far: what a training run pins."""
        ...

    def training_set(
        self,
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


def _assemble(
    feature_set: FeatureSet,
    vectors: Sequence[tuple[OffsetRange, _Vec]],
    labels: Sequence[_Lab],
    f_ranges: list[OffsetRange],
    l_ranges: list[OffsetRange],
    labels_within_features: bool,
    skipped: dict[str, int],
) -> TrainingSet:
    """Join what was read (both in log order: by partition, then offset) into a training set."""
    if labels_within_features:
        newest: dict[tuple[str, int], int] = {}  # (topic, partition) → newest as-of time read there
        for r, v in vectors:
            newest[(r.topic, r.partition)] = max(newest.get((r.topic, r.partition), v.as_of_ms), v.as_of_ms)
        watermark = min(newest.values()) if newest else -1
        kept = [lab for lab in labels if lab.event_time_ms <= watermark]
        skipped["labels_after_feature_watermark"] = len(labels) - len(kept)
        labels = kept
    names = feature_set.names
    rows = point_in_time_join([v for _r, v in vectors], labels, names)
    X = np.array([r.values for r in rows], dtype=np.float32).reshape(len(rows), len(names))  # noqa: N806
    return TrainingSet(
        X=X,
        y=np.array([r.label for r in rows], dtype=np.float64),
        feature_names=names,
        entity_ids=[r.entity_id for r in rows],
        label_times_ms=np.array([r.label_time_ms for r in rows], dtype=np.int64),
        feature_log_ranges=f_ranges,
        label_ranges=l_ranges,
        labels_without_features=len(labels) - len(rows),
        vectors_read=len(vectors),
        labels_read=len(labels),
        stats=skipped,
    )


# --- on the broker: exact offset ranges read with a bus Reader ----------------------------------------------------


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


def read_range(
    where: KafkaSettings | Bus, ranges: Sequence[OffsetRange], timeout: float = 60.0
) -> list[tuple[OffsetRange, int, bytes | None, bytes | None]]:
    """Every record in `ranges` as (range, offset, key, value), by partition then offset."""
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
    return [(todo[(rec.topic, rec.partition)], rec.offset, rec.key, rec.value) for rec in records]


def build_training_set(
    where: KafkaSettings | Bus,
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
    source = KafkaTrainingData(where, feature_set, timeout=timeout, labels_within_features=labels_within_features)
    return source.training_set(feature_log_ranges, label_ranges)


Read = tuple[list[tuple[OffsetRange, _Vec]], list[_Lab], dict[str, int]]  # vectors, labels, skipped counts


class _RangeSource:
    """A TrainingDataSource that can snapshot a topic and read exact ranges; the rest is the same for all."""

    def __init__(self, feature_set: FeatureSet, labels_within_features: bool):
        self.feature_set, self.labels_within_features = feature_set, labels_within_features

    def _snapshot(self, spec: TopicSpec) -> list[OffsetRange]:
        raise NotImplementedError(f"{type(self).__name__}._snapshot")

    def _read(self, f_ranges: list[OffsetRange], l_ranges: list[OffsetRange]) -> Read:
        raise NotImplementedError(f"{type(self).__name__}._read")

    def _wanted(self, name: str, version: int) -> bool:
        return (name, version) == (self.feature_set.name, self.feature_set.version)

    def snapshot(self) -> tuple[list[OffsetRange], list[OffsetRange]]:
        return self._snapshot(FEATURES_LOG), self._snapshot(LABELS)

    def training_set(
        self,
        feature_log_ranges: Sequence[OffsetRange] | None = None,
        label_ranges: Sequence[OffsetRange] | None = None,
    ) -> TrainingSet:
        f_ranges = sorted(feature_log_ranges if feature_log_ranges is not None else self._snapshot(FEATURES_LOG))
        l_ranges = sorted(label_ranges if label_ranges is not None else self._snapshot(LABELS))
        vectors, labels, skipped = self._read(f_ranges, l_ranges)
        return _assemble(self.feature_set, vectors, labels, f_ranges, l_ranges, self.labels_within_features,
                         skipped)


class KafkaTrainingData(_RangeSource):
    """The offline store on a bus: features.log and labels (KafkaBus in a service, MemoryBus in a test)."""

    def __init__(self, where: KafkaSettings | Bus, feature_set: FeatureSet = FEATURE_SET, *, timeout: float = 60.0,
                 labels_within_features: bool = False):
        super().__init__(feature_set, labels_within_features)
        self.bus, self.timeout = _bus(where), timeout

    def _snapshot(self, spec: TopicSpec) -> list[OffsetRange]:
        return snapshot_ranges(self.bus, spec)

    def _read(self, f_ranges: list[OffsetRange], l_ranges: list[OffsetRange]) -> Read:
        skipped = {"vectors_other_feature_set": 0, "undecodable": 0}
        vectors: list[tuple[OffsetRange, _Vec]] = []
        for r, fv in self._decoded(f_ranges, events_pb2.FeatureVector, skipped):
            if self._wanted(fv.feature_set, fv.feature_set_version):
                vectors.append((r, _Vec(fv.entity_id, fv.as_of_ms, dict(fv.values))))
            else:
                skipped["vectors_other_feature_set"] += 1
        labels = [_Lab(lab.entity_id, lab.event_time_ms, lab.label)
                  for _r, lab in self._decoded(l_ranges, events_pb2.Label, skipped)]
        return vectors, labels, skipped

    def _decoded(self, ranges: list[OffsetRange], message_type: type[PB], skipped: dict[str, int]
                 ) -> Iterator[tuple[OffsetRange, PB]]:
        for r, off, _key, value in read_range(self.bus, ranges, self.timeout):
            try:
                yield r, contracts.decode(message_type, value, f"{r.topic}/{r.partition}@{off}")
            except contracts.ContractError as exc:
                skipped["undecodable"] += 1
                log.warning("skipping undecodable record", extra={"fields": {"error": str(exc)}})


# --- in process: plain values in partitioned logs -----------------------------------------------------------------


class MemoryTrainingData(_RangeSource):
    """A feature log and labels held in memory as plain values, partitioned by entity and addressed by offset like
    the topics: a trainer test feeds rows without a broker or protobuf."""

    def __init__(self, feature_set: FeatureSet = FEATURE_SET, *, partitions: int = 3,
                 labels_within_features: bool = False):
        super().__init__(feature_set, labels_within_features)
        self._logs: dict[str, list[list]] = {
            FEATURES_LOG.name: [[] for _ in range(partitions)],  # (feature set name, version, _Vec)
            LABELS.name: [[] for _ in range(partitions)],  # _Lab
        }

    def _append(self, spec: TopicSpec, entity_id: str, item: object) -> None:
        logs = self._logs[spec.name]
        logs[zlib.crc32(entity_id.encode()) % len(logs)].append(item)

    def add_vector(self, entity_id: str, as_of_ms: int, values: Mapping[str, float], *,
                   feature_set: FeatureSet | None = None) -> None:
        fs = feature_set or self.feature_set
        self._append(FEATURES_LOG, entity_id, (fs.name, fs.version, _Vec(entity_id, as_of_ms, dict(values))))

    def add_label(self, entity_id: str, event_time_ms: int, label: float) -> None:
        self._append(LABELS, entity_id, _Lab(entity_id, event_time_ms, label))

    def _snapshot(self, spec: TopicSpec) -> list[OffsetRange]:
        return [OffsetRange(spec.name, p, 0, len(log)) for p, log in enumerate(self._logs[spec.name])]

    def _read(self, f_ranges: list[OffsetRange], l_ranges: list[OffsetRange]) -> Read:
        skipped = {"vectors_other_feature_set": 0, "undecodable": 0}
        vectors: list[tuple[OffsetRange, _Vec]] = []
        for r in f_ranges:
            for name, version, vec in self._slice(r):
                if self._wanted(name, version):
                    vectors.append((r, vec))
                else:
                    skipped["vectors_other_feature_set"] += 1
        return vectors, [lab for r in l_ranges for lab in self._slice(r)], skipped

    def _slice(self, r: OffsetRange) -> list:
        logs = self._logs.get(r.topic, [])
        if not 0 <= r.partition < len(logs):
            raise OfflineStoreError(r, "no such topic partition")
        if r.end_offset > len(logs[r.partition]):
            raise OfflineStoreError(r, f"it ends past the log end {len(logs[r.partition])}")
        return logs[r.partition][r.start_offset:r.end_offset]
