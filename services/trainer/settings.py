"""The trainer's settings (environment prefix MLOPS_TRAINER_). What a model trains on and how (window, minimum
rows, holdout fraction, seed, estimator params) is declared per model in the definitions, not here."""

from __future__ import annotations

from mlops.settings import settings_config
from pydantic import Field
from pydantic_settings import BaseSettings

DEFAULT_METRICS_PORT = 9103


class TrainerSettings(BaseSettings):
    model_config = settings_config("MLOPS_TRAINER_")

    default_model: str = Field("", description="Model trained when a retrain request names none (empty: such a "
                               "request fails, naming the declared models).")
    group_id: str = Field("trainer", description="Consumer group on retrain.requested.")
    holdout_max_rows: int = Field(
        5000, ge=10, description="At most this many (latest) holdout rows travel in the ModelCandidate."
    )
    labels_within_features: bool = Field(
        True, description="Leave out labels newer than the newest as-of time of their entity's feature log partition "
        "(they may have overtaken a lagging feature pipeline and would join an older, unrelated vector); they wait "
        "for the next training."
    )
    parity_tolerance: float = Field(
        1e-4, gt=0.0, description="Largest allowed difference between onnxruntime and scikit-learn outputs on the "
        "holdout before publishing (relative to the predictions' scale for a regression)."
    )
    onnx_opset: int = Field(17, description="ONNX opset the model is exported with.")
    artifact_timeout_s: float = Field(
        30.0, gt=0.0, description="How long a bring-your-own registration waits for its ONNX bytes on "
        "model.artifacts."
    )
    definitions_timeout_s: float = Field(
        30.0, gt=0.0, description="How long start-up reads the definitions topic before following it."
    )
    coalesce_window_s: float = Field(
        1.0, ge=0.0, description="After a retrain request, wait until the topic is this long quiet, so a burst "
        "of requests for a model becomes one training."
    )
    coalesce_max_s: float = Field(5.0, ge=0.0, description="Longest a burst can delay its training.")
    poll_timeout_s: float = Field(0.5, gt=0.0, description="Consumer poll timeout.")
    change_point_wait_s: float = Field(
        60.0, ge=0.0, description="A retrain after a concept drift trains on the rows labelled after the estimated "
        "change point only; it waits this long for the model's `training.min_rows` of them (re-reading the data), "
        "then fails (the monitor asks again when its cool-down ends, with more post-change data)."
    )
    change_point_poll_s: float = Field(2.0, gt=0.0, description="How often that wait re-reads the training data.")
    code_version: str | None = Field(
        None, description="Recorded code version; unset: `git describe` of the checkout, else the package version."
    )
