"""The state the monitor keeps for one model: the statistics of the version now serving and the debounce.

Which statistics exist follows the model's policy (`ModelPolicy.signals`): one `StreamStats` per input feature
(`features`), one on the score (`score`), the error stream of joined labels (`error`). A new version resets the
statistics (fresh detectors, reference rebuilt from its first window); so does a policy change that alters what
they depend on (task, signals, alpha). The debounce (last request, the version a request should replace) survives
both: a new policy must not let a second request through during a cool-down.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from mlops.definitions.model import Task

from services.monitor.core.budget import data_test_alpha
from services.monitor.core.concept import ErrorStream
from services.monitor.core.domain import Detection
from services.monitor.core.estimate import PerformanceEstimator
from services.monitor.core.join import LabelJoiner
from services.monitor.core.policy import ModelPolicy
from services.monitor.core.repeats import RepeatFilter
from services.monitor.core.stats import StreamStats, WindowResult

if TYPE_CHECKING:
    from services.monitor.core.drift import DriftMonitor

SCORE_STREAM = "score"


class ModelState:
    def __init__(self, monitor: DriftMonitor, policy: ModelPolicy, version: str, t_ms: int):
        self.monitor = monitor
        self.model_name = policy.name
        self.policy = policy
        self.version = version
        self.previous_version: str | None = None
        self.version_since_ms = t_ms
        self.records = 0
        self.streams: dict[str, StreamStats] = {}
        self.repeats: RepeatFilter  # which rows bring a new entity state (the streams take only those)
        self.watch_features = "features" in policy.signals
        self.watch_errors = "error" in policy.signals
        self.score: StreamStats | None = None
        self.errors: ErrorStream | None = None
        self.joiner: LabelJoiner | None = None  # the model's label join (set by the monitor, which owns them all)
        self.signals: dict[tuple[str, str], tuple[int, Detection]] = {}  # (detector, stream) → (record no., det)
        n = max(1, monitor.settings.evidence_traces)
        self.traces: deque[tuple[str, str]] = deque(maxlen=n)
        self.error_traces: deque[tuple[str, str]] = deque(maxlen=n)
        self.last_request_ms: int | None = None
        self.request_version: str | None = None  # the version the last request asked to replace
        self.requests_for_version = 0
        self.deferred: Detection | None = None  # drift seen during the cool-down, acted on when it ends
        self.now_ms = t_ms
        self._fresh_statistics()

    def _fresh_statistics(self) -> None:
        policy = self.policy
        self.records = 0
        self.streams = {}
        self.repeats = RepeatFilter(self.monitor.settings.distinct_state_entities)
        self.watch_features = "features" in policy.signals
        self.watch_errors = "error" in policy.signals
        self.score = (self._stream(SCORE_STREAM, self.monitor.settings.score_detector)
                      if "score" in policy.signals else None)
        settings = self.monitor.settings
        self.errors = (ErrorStream(settings, relative=policy.task is Task.REGRESSION)
                       if self.watch_errors else None)
        self.binary = policy.task is Task.BINARY
        self.estimator = (PerformanceEstimator(settings.window_size, settings.window_size)
                          if policy.task is not Task.REGRESSION else None)
        self.signals.clear()
        self.error_traces.clear()
        self.deferred = None
        self._rebudget()

    def _rebudget(self) -> None:
        """Split the data streams' share of the false-alarm budget over the streams that exist (Bonferroni)."""
        s = self.monitor.settings
        streams = [*self.streams.values(), *((self.score,) if self.score is not None else ())]
        step = min(s.data_window_step, s.window_size)
        alpha = data_test_alpha(s.false_alarms_per_100k, s.error_budget_share, step, len(streams))
        for st in streams:
            st.set_ks_alpha(alpha)

    def _stream(self, name: str, detector: str) -> StreamStats:
        m = self.monitor
        return StreamStats(name, detector, m.settings, self._window_done, seed=m.seed, alpha=self.policy.alpha)

    def reset(self, version: str, t_ms: int) -> None:
        """A new version serves: fresh detectors, reference rebuilt from its first window."""
        self.previous_version, self.version = self.version, version
        self.version_since_ms = t_ms
        self._fresh_statistics()
        self.requests_for_version = 0

    def repolicy(self, policy: ModelPolicy) -> None:
        """A new revision's policy: swapped in; the statistics restart only if what they depend on changed."""
        rebuild = policy.statistics != self.policy.statistics
        self.policy = policy
        if rebuild:
            self._fresh_statistics()

    def feature_stream(self, name: str) -> StreamStats:
        st = self.streams.get(name)
        if st is None:
            st = self.streams[name] = self._stream(name, self.monitor.settings.data_detector)
            self._rebudget()
        return st

    def error(self, predicted: float, label: float) -> float:
        """The error of one prediction: 0/1 for a class, the absolute error for a regression."""
        if self.policy.task is Task.REGRESSION:
            return abs(predicted - label)
        return float(round(predicted) != round(label))

    def counts_as_evidence(self, error: float) -> bool:
        """A mistaken prediction worth linking from a request: any wrong class, or a regression error above the
        version's reference MAE (once known)."""
        errors = self.errors
        if self.policy.task is not Task.REGRESSION or errors is None:
            return error > 0
        return errors.reference_error is not None and error > errors.reference_error

    def _window_done(self, stream: StreamStats, result: WindowResult) -> None:
        m = self.monitor
        m.observer.on_window(self.model_name, stream.name, result)
        kind = "prediction" if stream.name == SCORE_STREAM else "data"
        if result.psi > m.settings.psi_threshold:  # no significance level: reported, never a retrain
            m._detected(self, Detection(self.model_name, self.version, kind, "PSI", "psi", stream.name, result.psi,
                                        result.window_start_ms, self.now_ms, counts=False))
        if result.ks > result.ks_critical:
            m._detected(self, Detection(self.model_name, self.version, kind, "KS", "ks", stream.name, result.ks,
                                        result.window_start_ms, self.now_ms))
