"""The offline store: point-in-time-correct training data of a declared model, from `features.log` joined with the
model's label topic.

A training set is defined by offset ranges (its data version): the same ranges give the same arrays, row for row.
For each label (entity, t) the join takes, for each of the model's feature views, the latest FeatureVector of that
entity and view with `as_of_ms <= t` (ties: the later one in the log) — never a vector from after the label time,
so no feature value leaks from the future. A vector counts for its view whatever its view version, as long as it
holds every column the model reads (a column's meaning never changes while a model reads it). Labels with no
earlier vector are left out (and counted); labels that do not fit the model (`decode_label`) are skipped and
counted, never fatal.

A model whose label names the prediction request it answers (`join: request_id`) joins its labels with the
prediction log instead (`request_join`): each label with the served row of that model, request id and entity (read
from `PredictionBatch` records, or the per-row `PredictionRecord`s written before them), its features exactly as
served; labels with no such prediction are left out and counted. The predictions topic's ranges are that training
set's `feature_log_ranges` (each range names its topic).
"""

from mlops.offline_store._join import (
    JoinedRow,
    LabelLike,
    OffsetRange,
    PredictionLike,
    RequestLabelLike,
    TrainingSet,
    TrainingSpec,
    VectorLike,
    join_views,
    point_in_time_join,
    request_join,
)
from mlops.offline_store._sources import (
    KafkaTrainingData,
    MemoryTrainingData,
    OfflineStoreError,
    TrainingDataSource,
    build_training_set,
    read_range,
    snapshot_ranges,
)

__all__ = [
    "JoinedRow",
    "KafkaTrainingData",
    "LabelLike",
    "MemoryTrainingData",
    "OffsetRange",
    "OfflineStoreError",
    "PredictionLike",
    "RequestLabelLike",
    "TrainingDataSource",
    "TrainingSet",
    "TrainingSpec",
    "VectorLike",
    "build_training_set",
    "join_views",
    "point_in_time_join",
    "read_range",
    "request_join",
    "snapshot_ranges",
]
