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

    # --- online detectors (reported only: their levels are not calibrated to the false-alarm budget) -------------
    data_detector: DetectorName = Field(
        "none", description="Per-feature online detector on standardized inputs, reported as a metric and never "
        "a retrain on its own: adwin | kswin | pagehinkley | none."
    )
    score_detector: DetectorName = Field("none", description="Online detector on the prediction-score stream "
                                         "(reported only, as data_detector).")
    adwin_delta: Fraction = Field(0.0002, description="ADWIN confidence for feature and score streams.")
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
        "reference; the latest window is compared with it every `data_window_step` records (KS per feature and "
        "on the score; PSI is reported)."
    )
    data_window_step: int = Field(
        500, ge=1, description="Records between two data-stream KS tests (at most window_size: every record is tested)."
    )
    distinct_state_entities: int = Field(
        100_000, ge=0, description="The KS windows take one value per state of an entity (a prediction with its "
        "entity's last features as-of time and score repeats that state and is skipped: its values are not "
        "independent of the last one); the last state of this many entities is remembered. 0: every prediction "
        "counts."
    )
    psi_bins: int = Field(10, ge=2, description="PSI bins (reference quantiles).")
    psi_threshold: float = Field(
        0.25, gt=0, description="PSI above this is reported as a detection (0.25 = major shift); PSI has no "
        "significance level, so it never asks for a retrain on its own."
    )

    # --- the false-alarm budget (services.monitor.core.budget) -------------------------------------------------
    false_alarms_per_100k: float = Field(
        0.01, gt=0, le=100, description="Bound on the expected false alarms per 100,000 predictions of a model "
        "with no drift: split by a union bound over every error-stream and data-stream test (the guarantee)."
    )
    error_budget_share: Fraction = Field(
        0.5, description="Share of the false-alarm budget given to the error stream (labels); the data streams "
        "(features, score) share the rest."
    )

    # --- concept drift on the error stream ---------------------------------------------------------------------
    error_reference_labels: int = Field(
        200, ge=20, description="Least joined labels of a model version before the recent windows are tested "
        "(the reference is every earlier label of the version, up to an estimated change point; a regression's "
        "first this many labels set its error threshold)."
    )
    error_check_every: int = Field(
        1, ge=1, description="Labels between two tests of the smallest windows; a window of L labels is tested "
        "about every L / 8 labels, never more often than this."
    )
    error_windows: tuple[Annotated[int, Field(ge=2)], ...] = Field(
        tuple(sorted({round(2 * 1.25**k) for k in range(34)})), min_length=1,
        description="Recent windows (labels) tested against the earlier errors: a geometric grid (2 … 3,155, "
        "ratio 1.25) — a large change is caught by a small window, a small one by a large window."
    )
    error_min_increase: Fraction = Field(
        0.02, description="Classification: the least increase of the error rate that counts as a concept drift "
        "(practical significance, on top of the statistical one)."
    )
    error_min_relative_increase: float = Field(
        0.1, gt=0, description="Regression: the least relative increase of the mean absolute error that counts as "
        "a concept drift."
    )

    # --- debounce ----------------------------------------------------------------------------------------------
    min_records: int = Field(2000, ge=0, description="Predictions of a model version before it may trigger a retrain.")
    min_agreeing: int = Field(
        1, ge=1, description="Distinct data/prediction-drift signals (detector × stream) needed without a "
        "confirmed concept drift."
    )
    evidence_records: int = Field(
        3000, ge=1, description="Data-drift signals count as agreeing if fired within this many predictions."
    )
    retrain_timeout_ms: StreamMs = Field(
        30_000, description="After a request, the least time before the same version may be asked for again (the "
        "model's cool-down applies too, whichever is longer); a new version is judged on its own at once."
    )
    max_requests_per_version: int = Field(
        3, ge=1, description="Most retrain requests while one model version serves (a drift the retrains cannot "
        "fix, e.g. a covariate shift the model does not depend on, must not ask forever)."
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

    # --- live judgement of challengers (services.monitor.core.judge; thresholds are each model's `rollout`) ------
    challenger_tuned_labels: int = Field(
        300, ge=10, description="Labelled rows at which the sequential test's interval is tightest (the mixture's "
        "scale): near where a challenger a few points better is expected to be decided."
    )
    challenger_pair_window_ms: StreamMs = Field(
        60_000, gt=0, description="How long a champion row waits for the shadow/guard row of the same request (and "
        "the other way round) before it is dropped unpaired."
    )

    @model_validator(mode="after")
    def _consistent(self) -> MonitorSettings:
        if self.min_records and self.min_records < self.window_size:
            raise ValueError("min_records must be 0 or >= window_size (the reference window must be complete)")
        return self
