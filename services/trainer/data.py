"""Where training data comes from: the offline store (features.log ⋈ labels), bounded by recorded offsets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mlops.settings import KafkaSettings

from services.trainer.core import TrainingSetLike
from services.trainer.errors import DataUnavailable

# (feature_log_ranges, label_ranges) → training set; None ranges mean "snapshot the topics now"
LoadData = Callable[[Sequence[Any] | None, Sequence[Any] | None], TrainingSetLike]


def offline_store_loader(
    kafka_settings: KafkaSettings, timeout: float = 60.0, labels_within_features: bool = True
) -> LoadData:
    """A loader reading the offline store on the broker. The snapshot (high watermarks of features.log and labels
    when the training starts) is the data version recorded in the candidate's lineage. `labels_within_features`:
    labels newer than the feature log's watermark wait for a later training (see build_training_set)."""

    def load(feature_ranges: Sequence[Any] | None, label_ranges: Sequence[Any] | None) -> TrainingSetLike:
        from mlops import offline_store
        from mlops.schema import FEATURE_SET

        try:
            return offline_store.build_training_set(
                kafka_settings, FEATURE_SET, feature_log_ranges=feature_ranges, label_ranges=label_ranges,
                timeout=timeout, labels_within_features=labels_within_features,
            )
        except offline_store.OfflineStoreError as exc:
            raise DataUnavailable(f"offline store: {exc}") from exc

    return load
