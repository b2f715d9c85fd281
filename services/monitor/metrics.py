"""Prometheus metrics of the monitor (registered once per process) and the observer that feeds them."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable

from mlops.definitions import Model, Task
from prometheus_client import Counter, Gauge

from services.monitor.core import Detection, DriftMonitor, RetrainDecision, WindowResult

log = logging.getLogger("mlops.monitor")

DRIFT_STATISTIC = Gauge(
    "mlops_monitor_drift_statistic",
    "Latest reference-vs-current window statistic per model, stream (feature or score) and statistic (psi, ks).",
    ["model", "feature", "statistic"],
)
DETECTIONS = Counter(
    "mlops_monitor_detections_total",
    "Drift detections by detector; outcome is 'retrain' or why it did not (yet) ask for one.",
    ["model", "kind", "detector", "outcome"],
)
RETRAIN_REQUESTS = Counter(
    "mlops_monitor_retrain_requests_total", "RetrainRequests published.", ["model", "detector", "statistic"]
)
RECORDS = Counter("mlops_monitor_records_total", "Records consumed, by kind.", ["kind"])
JOINED = Counter("mlops_monitor_labels_joined_total", "Labels joined to their prediction.")
UNJOINED = Counter(
    "mlops_monitor_join_evictions_total", "Join buffer evictions: predictions without label, labels without "
    "prediction.", ["what"]
)
JOIN_RATIO = Gauge("mlops_monitor_join_ratio", "Joined labels / labels consumed, since start.")
JOIN_BUFFER = Gauge("mlops_monitor_join_buffer", "Records held by the label join.", ["what"])
EVENT_LAG = Gauge("mlops_monitor_event_lag_seconds", "Wall clock minus the last handled prediction's timestamp.")
BAD_LABELS = Counter(
    "mlops_monitor_bad_labels_total", "Labels that could not be read or do not fit their model, by the field at "
    "fault ('' when the record as a whole is unreadable).", ["model", "field"]
)
REVISION = Gauge("mlops_monitor_definitions_revision", "The definitions revision the monitor watches by.")
MODELS = Gauge("mlops_monitor_models_watched", "Models the definitions in force declare (the monitor watches each).")
REALISED = Gauge(
    "mlops_monitor_realised_metric",
    "The serving version's metric over its latest joined labels (MLOPS_MONITOR_WINDOW_SIZE of them): "
    "accuracy (1 - the 0/1 error rate) of a classifier, mae of a regression.", ["model", "version", "metric"],
)
GATE_FLOOR = Gauge(
    "mlops_monitor_gate_floor", "The floor of each model's gate in the definitions in force (declared ones only); "
    "higher_is_better says on which side of it a model fails.", ["model", "metric", "higher_is_better"],
)
ESTIMATED_ACCURACY = Gauge(
    "mlops_monitor_estimated_accuracy", "Expected accuracy of a classifier version from its calibrated confidence "
    "over the latest window of predictions (no labels needed, as NannyML's CBPE).", ["model", "version"]
)
DEFERRED = Counter(
    "mlops_monitor_deferred_drifts_total", "Drift seen during a cool-down: reported now, asked for when it ends.",
    ["model", "kind"]
)
MODEL_VERSION = Gauge("mlops_monitor_model_version_info", "The model version the monitor sees serving.",
                      ["model", "version"])
# the live judgement of a second version (shadow, canary, guard) against the champion, per model and version
_TRIAL = ["model", "challenger", "phase"]
CHALLENGER_LABELLED = Gauge(
    "mlops_monitor_challenger_labelled_rows", "Labelled rows the live test of a challenger rests on (per arm for a "
    "canary: the smaller arm).", _TRIAL)
CHALLENGER_DIFFERENCE = Gauge(
    "mlops_monitor_challenger_difference", "Challenger minus champion on the gate metric's per-row outcome (> 0: "
    "the challenger is better; for a guard, the previous champion minus the new one).", _TRIAL)
CHALLENGER_INTERVAL = Gauge(
    "mlops_monitor_challenger_interval", "Always-valid bounds of the difference (each one-sided at the rollout's "
    "confidence), once min_labels rows are labelled.", [*_TRIAL, "bound"])
VERDICTS = Counter("mlops_monitor_challenger_verdicts_total", "ChallengerVerdicts published.",
                   ["model", "phase", "verdict"])
CHALLENGER_ROWS = Counter("mlops_monitor_challenger_rows_total", "Prediction rows of a second version, by role.",
                          ["role"])


class PrometheusObserver:
    """The DriftMonitor's observer for a service process."""

    # a drift that persists through a cool-down is detected again every few windows: every one is counted, but the
    # log says it once per model, version and kind in this long (else a long cool-down floods the log)
    DEFERRED_LOG_EVERY_S = 60.0

    def __init__(self) -> None:
        self._deferred_logged: dict[tuple[str, str, str], float] = {}

    def on_detection(self, detection: Detection, suppressed: str | None) -> None:
        DETECTIONS.labels(detection.model_name, detection.kind, detection.detector, suppressed or "retrain").inc()
        if suppressed == "deferred":
            DEFERRED.labels(detection.model_name, detection.kind).inc()
            key, now = (detection.model_name, detection.model_version, detection.kind), time.monotonic()
            if now - self._deferred_logged.get(key, -math.inf) < self.DEFERRED_LOG_EVERY_S:
                return
            self._deferred_logged[key] = now
            log.warning("drift during the cool-down: reported, asked for when it ends", extra={"fields": {
                "model": detection.model_name, "version": detection.model_version, "kind": detection.kind,
                "detector": detection.detector, "feature": detection.feature, "value": detection.value}})

    def on_estimate(self, model_name: str, version: str, expected: float, realised: float | None) -> None:
        # the realised side is mlops_monitor_realised_metric (CounterSync), for every task
        ESTIMATED_ACCURACY.labels(model_name, version).set(expected)

    def on_window(self, model_name: str, feature: str, result: WindowResult) -> None:
        DRIFT_STATISTIC.labels(model_name, feature, "psi").set(result.psi)
        DRIFT_STATISTIC.labels(model_name, feature, "ks").set(result.ks)

    def on_version(self, model_name: str, version: str, previous: str | None) -> None:
        if previous is not None:
            MODEL_VERSION.labels(model_name, previous).set(0)
        MODEL_VERSION.labels(model_name, version).set(1)

    @staticmethod
    def on_retrain(decision: RetrainDecision) -> None:
        RETRAIN_REQUESTS.labels(decision.model_name, decision.detector, decision.statistic).inc()


def show_gate_floors(models: Iterable[Model]) -> None:
    """The declared gate floors of a new definitions revision (a floor no longer declared disappears)."""
    GATE_FLOOR.clear()
    for m in models:
        if m.gate.floor is not None:
            GATE_FLOOR.labels(m.name, m.metric, str(m.higher_is_better).lower()).set(m.gate.floor)


class CounterSync:
    """Moves the core's plain counters into Prometheus by difference (the hot path never touches a metric)."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._realised: set[tuple[str, str, str]] = set()
        self._trials: set[tuple[str, str, str]] = set()

    def _delta(self, name: str, value: int) -> int:
        d = value - self._last.get(name, 0)
        self._last[name] = value
        return d

    def sync(self, monitor: DriftMonitor) -> None:
        RECORDS.labels("prediction").inc(self._delta("p", monitor.predictions))
        RECORDS.labels("label").inc(self._delta("l", monitor.labels))
        RECORDS.labels("stale_prediction").inc(self._delta("sp", monitor.stale_predictions))
        RECORDS.labels("stale_label").inc(self._delta("sl", monitor.stale_labels))
        RECORDS.labels("unwatched_model").inc(self._delta("u", monitor.unwatched))
        c = monitor.join_counts()
        JOINED.inc(self._delta("j", c.joined))
        UNJOINED.labels("prediction").inc(self._delta("pe", c.predictions_evicted))
        UNJOINED.labels("label").inc(self._delta("le", c.labels_evicted))
        JOIN_RATIO.set(c.joined / monitor.labels if monitor.labels else 0.0)
        JOIN_BUFFER.labels("predictions").set(monitor.join_buffered())
        JOIN_BUFFER.labels("labels").set(c.labels_waiting)
        self._sync_realised(monitor)
        self._sync_trials(monitor)

    def _sync_trials(self, monitor: DriftMonitor) -> None:
        judge = monitor.judge
        for role, n in judge.counts.rows.items():
            CHALLENGER_ROWS.labels(role).inc(self._delta(f"role:{role}", n))
        shown: set[tuple[str, str, str]] = set()
        for trial in judge.trials.values():
            labels = (trial.model_name, trial.challenger_version, trial.phase)
            shown.add(labels)
            CHALLENGER_LABELLED.labels(*labels).set(trial.labelled_rows)
            ci = trial.interval
            if ci is not None:
                CHALLENGER_DIFFERENCE.labels(*labels).set(ci.estimate)
                CHALLENGER_INTERVAL.labels(*labels, "low").set(ci.low)
                CHALLENGER_INTERVAL.labels(*labels, "high").set(ci.high)
        for gone in self._trials - shown:  # a trial replaced by the next challenger, or ended by a promotion
            CHALLENGER_LABELLED.remove(*gone)
            for gauge, extra in ((CHALLENGER_DIFFERENCE, ()), (CHALLENGER_INTERVAL, ("low",)),
                                 (CHALLENGER_INTERVAL, ("high",))):
                try:
                    gauge.remove(*gone, *extra)
                except KeyError:  # never had an interval (ended before min_labels)
                    pass
        self._trials = shown

    def _sync_realised(self, monitor: DriftMonitor) -> None:
        shown: set[tuple[str, str, str]] = set()
        for name, state in monitor.models.items():
            errors = state.errors
            current = errors.recent_error() if errors is not None else None
            if current is None:
                continue
            regression = state.policy.task is Task.REGRESSION
            labels = (name, state.version, "mae" if regression else "accuracy")
            REALISED.labels(*labels).set(current if regression else 1.0 - current)
            shown.add(labels)
        for gone in self._realised - shown:  # a version replaced, a model no longer watched
            REALISED.remove(*gone)
        self._realised = shown
