"""The monitor's settings (env prefix MLOPS_MONITOR_).

What differs per model comes from the definitions in force, not from here: which signals run (`drift.signals`),
the data-drift significance (`drift.alpha`: the KS window test and KSWIN) and the cool-down (`drift.cooldown_s`).
These settings tune the detectors every model shares."""

from __future__ import annotations

from typing import Annotated, Literal

from mlops.settings import settings_config
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

DetectorName = Literal["adwin", "kswin", "pagehinkley", "none"]
# Durations are stream time (prediction timestamps), so replays and tests behave like live runs.
StreamMs = Annotated[int, Field(ge=0)]
# Significance levels, detector confidences and rate increases: strictly between 0 and 1.
Fraction = Annotated[float, Field(gt=0, lt=1)]

DEFAULT_METRICS_PORT = 9106


class MonitorSettings(BaseSettings):
    model_config = settings_config("MLOPS_MONITOR_")

    group_id: str = Field("monitor", description="Kafka consumer group of the monitor processes.")
    batch_size: int = Field(1000, ge=1, description="Records handled per consume batch (one commit per batch).")
    poll_timeout_s: float = Field(0.5, gt=0, description="Consume poll timeout in seconds.")

    # --- drift detectors -------------------------------------------------------------------------------------
    data_detector: DetectorName = Field(
        "adwin", description="Per-feature detector on standardized inputs: adwin | kswin | pagehinkley | none."
    )
    score_detector: DetectorName = Field("adwin", description="Detector on the prediction-score stream.")
    adwin_delta: Fraction = Field(0.0002, description="ADWIN confidence for feature and score streams.")
    error_adwin_delta: Fraction = Field(
        0.002, description="ADWIN confidence on the error stream (0/1 errors; regression: absolute errors in units "
        "of the reference mean absolute error)."
    )
    pagehinkley_delta: float = Field(
        0.25, ge=0, description="PageHinkley tolerated drift magnitude, in reference standard deviations."
    )
    pagehinkley_threshold: float = Field(
        40.0, gt=0, description="PageHinkley alarm threshold, in reference standard deviations (defaults of river "
        "false-alarm on noise; these are tuned on standardized values)."
    )
    kswin_window: int = Field(300, ge=60, description="KSWIN window size.")
    kswin_stride: int = Field(10, ge=1, description="KSWIN sees every k-th value (it costs ~0.5 ms per update).")

    # --- reference vs current windows --------------------------------------------------------------------------
    window_size: int = Field(
        1000, ge=100, description="Records per window: the first window after a model-version change is the "
        "reference, later tumbling windows are compared with it (PSI and KS per feature and on the score)."
    )
    psi_bins: int = Field(10, ge=2, description="PSI bins (reference quantiles).")
    psi_threshold: float = Field(0.25, gt=0, description="PSI above this is a detection (0.25 = major shift).")

    # --- concept drift on the error stream ---------------------------------------------------------------------
    error_reference_labels: int = Field(
        200, ge=20, description="Joined labels that set a model version's reference error rate."
    )
    error_recent_labels: int = Field(200, ge=20, description="Labels in the recent error-rate window.")
    error_min_increase: Fraction = Field(
        0.05, description="Classification: a concept drift is confirmed when the recent error rate exceeds the "
        "reference by at least this much after the error detector fired."
    )
    error_min_relative_increase: float = Field(
        0.25, gt=0, description="Regression: a concept drift is confirmed when the recent mean absolute error "
        "exceeds the reference one by at least this fraction after the error detector fired."
    )

    # --- debounce ----------------------------------------------------------------------------------------------
    min_records: int = Field(2000, ge=0, description="Predictions of a model version before it may trigger a retrain.")
    min_agreeing: int = Field(
        2, ge=1, description="Distinct data/prediction-drift signals (detector × stream) needed without a "
        "confirmed concept drift."
    )
    evidence_records: int = Field(
        3000, ge=1, description="Data-drift signals count as agreeing if fired within this many predictions."
    )
    retrain_timeout_ms: StreamMs = Field(
        600_000, description="After a request, no new one until the model version changes or this passes."
    )
    version_grace_ms: StreamMs = Field(
        30_000, description="After a version change, predictions of the previous version (in flight) are ignored "
        "for this long instead of being taken for a rollback."
    )

    # --- label join (bounded memory) ---------------------------------------------------------------------------
    join_window_ms: StreamMs = Field(
        600_000, gt=0, description="Predictions wait this long for their label, then are evicted."
    )
    join_tolerance_ms: StreamMs = Field(
        2_000, description="A label without request id joins the entity's prediction whose as-of time is closest "
        "to its event time, if within this tolerance."
    )
    join_capacity: int = Field(200_000, ge=100, description="Most predictions held for the join, per model.")
    label_capacity: int = Field(
        50_000, ge=100, description="Most early labels held waiting for their prediction, per model."
    )
    evidence_traces: int = Field(8, ge=0, description="Prediction traces linked from a retrain request's span.")

    @model_validator(mode="after")
    def _consistent(self) -> MonitorSettings:
        if self.min_records and self.min_records < self.window_size:
            raise ValueError("min_records must be 0 or >= window_size (the reference window must be complete)")
        return self
