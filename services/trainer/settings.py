"""The trainer's settings (environment prefix MLOPS_TRAINER_)."""

from __future__ import annotations

from mlops.settings import settings_config
from pydantic import Field
from pydantic_settings import BaseSettings

DEFAULT_METRICS_PORT = 9103


class TrainerSettings(BaseSettings):
    model_config = settings_config("MLOPS_TRAINER_")

    default_model: str = Field("sea", description="Model name used when a retrain request names none.")
    group_id: str = Field("trainer", description="Consumer group on retrain.requested.")
    seed: int = Field(42, description="Random seed of every training (same offsets + seed → same ONNX bytes).")
    holdout_fraction: float = Field(
        0.2, gt=0.0, lt=0.9, description="Share of rows, the latest by label time, held out for evaluation."
    )
    holdout_max_rows: int = Field(
        5000, ge=10, description="At most this many (latest) holdout rows travel in the ModelCandidate."
    )
    min_rows: int = Field(200, ge=10, description="Fewer labelled rows than this → TrainingFailed.")
    max_rows: int = Field(
        0, ge=0, description="Train on at most the latest N labelled rows by label time (a sliding window that "
        "follows a concept drift; 0: every row of the snapshot)."
    )
    labels_within_features: bool = Field(
        True, description="Leave out labels newer than the feature log's watermark (they may have overtaken a "
        "lagging feature pipeline and would join an older, unrelated vector); they wait for the next training."
    )
    max_iter: int = Field(100, ge=1, description="Boosting iterations of HistGradientBoostingClassifier.")
    learning_rate: float = Field(0.1, gt=0.0, description="Learning rate of the booster.")
    max_leaf_nodes: int = Field(31, ge=2, description="Leaves per tree.")
    max_depth: int | None = Field(None, description="Depth limit per tree (None: unlimited).")
    l2_regularization: float = Field(0.0, ge=0.0, description="L2 regularization of leaf values.")
    parity_tolerance: float = Field(
        1e-4, gt=0.0, description="Largest allowed |p_onnx - p_sklearn| on the holdout before publishing."
    )
    onnx_opset: int = Field(17, description="ONNX opset the model is exported with.")
    coalesce_window_s: float = Field(
        1.0, ge=0.0, description="After a retrain request, wait until the topic is this long quiet, so a burst "
        "of requests for a model becomes one training."
    )
    coalesce_max_s: float = Field(5.0, ge=0.0, description="Longest a burst can delay its training.")
    poll_timeout_s: float = Field(0.5, gt=0.0, description="Consumer poll timeout.")
    code_version: str | None = Field(
        None, description="Recorded code version; unset: `git describe` of the checkout, else the package version."
    )
