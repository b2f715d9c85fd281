"""The transport-free core: `DriftMonitor` takes plain predictions and labels and returns retrain decisions.

Per model it keeps the state of the version now serving:
- data drift: one `StreamStats` per input feature (a river detector on standardized values + PSI/KS windows);
- prediction drift: the same on the score stream;
- concept drift: joined labels give a 0/1 error stream; an ADWIN on it fires, and the drift is *confirmed* when the
  recent error rate exceeds the version's reference error rate by `error_min_increase` (a strong signal).

Debounce, per model: nothing before `min_records` predictions of the version; then one confirmed concept drift, or
`min_agreeing` distinct data/prediction signals within `evidence_records` predictions, make ONE retrain decision.
After it, no other until predictions show a new model version (or `retrain_timeout_ms` passes, e.g. the candidate
was rejected), and never within `cooldown_ms` of the previous one. A new version resets every detector and
rebuilds the reference from its first window. Time is stream time (prediction timestamps), so replays and tests
behave like live runs.
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from services.monitor.core.domain import Detection, LabelEvent, Prediction, RetrainDecision
from services.monitor.core.join import LabelJoiner
from services.monitor.core.stats import StreamStats, WindowResult
from services.monitor.settings import MonitorSettings

SCORE_STREAM = "score"


class MonitorObserver(Protocol):
    """What the edge wants to hear about (metrics, logs); every method is optional to act on."""

    def on_detection(self, detection: Detection, suppressed: str | None) -> None: ...

    def on_window(self, model_name: str, feature: str, result: WindowResult) -> None: ...

    def on_version(self, model_name: str, version: str, previous: str | None) -> None: ...


class _NullObserver:
    def on_detection(self, detection: Detection, suppressed: str | None) -> None:
        return None

    def on_window(self, model_name: str, feature: str, result: WindowResult) -> None:
        return None

    def on_version(self, model_name: str, version: str, previous: str | None) -> None:
        return None


@dataclass
class _ErrorStream:
    settings: MonitorSettings
    reference: list[int] = field(default_factory=list)
    reference_rate: float | None = None
    recent: deque = field(default_factory=deque)  # (error, t_ms)
    recent_sum: int = 0
    detector: object | None = None
    suspect: int = 0  # labels left in which a detector firing may still be confirmed
    confirmed: bool = False  # a confirmed episode is going on
    labels: int = 0

    def update(self, error: int, t_ms: int) -> float | None:
        """Add one 0/1 error; the recent error rate when a concept drift is confirmed, else None."""
        s = self.settings
        self.labels += 1
        self.recent.append((error, t_ms))
        self.recent_sum += error
        if len(self.recent) > s.error_recent_labels:
            self.recent_sum -= self.recent.popleft()[0]
        if self.reference_rate is None:
            self.reference.append(error)
            if len(self.reference) >= s.error_reference_labels:
                self.reference_rate = sum(self.reference) / len(self.reference)
                from river import drift

                self.detector = drift.ADWIN(delta=s.error_adwin_delta)
            return None
        det = self.detector
        det.update(error)  # type: ignore[attr-defined]
        if det.drift_detected:  # type: ignore[attr-defined]
            self.suspect = 2 * s.error_recent_labels
        if self.suspect:
            self.suspect -= 1
            rate = self.recent_sum / len(self.recent)
            if len(self.recent) >= s.error_recent_labels and rate - self.reference_rate >= s.error_min_increase:
                self.suspect = 0
                self.confirmed = True
                return rate
        elif self.confirmed and self.labels % s.error_recent_labels == 0:
            # a confirmed episode that persists is reported again each recent window (the debounce suppresses
            # it until the cool-down / retrain timeout lets a new request through); it ends when the rate is back
            rate = self.recent_sum / len(self.recent)
            if rate - self.reference_rate >= s.error_min_increase:
                return rate
            self.confirmed = False
        return None

    @property
    def window_start_ms(self) -> int:
        return self.recent[0][1] if self.recent else 0


class _ModelState:
    def __init__(self, monitor: DriftMonitor, model_name: str, version: str, t_ms: int):
        self.monitor = monitor
        self.model_name = model_name
        self.version = version
        self.previous_version: str | None = None
        self.version_since_ms = t_ms
        self.records = 0
        self.streams: dict[str, StreamStats] = {}
        self.score: StreamStats = self._stream(SCORE_STREAM, monitor.settings.score_detector)
        self.errors = _ErrorStream(monitor.settings)
        self.signals: dict[tuple[str, str], tuple[int, Detection]] = {}  # (detector, stream) → (record no., det)
        self.traces: deque[tuple[str, str]] = deque(maxlen=max(1, monitor.settings.evidence_traces))
        self.error_traces: deque[tuple[str, str]] = deque(maxlen=max(1, monitor.settings.evidence_traces))
        self.last_request_ms: int | None = None
        self.awaiting_version: str | None = None  # the version a pending retrain should replace
        self.now_ms = t_ms

    def _stream(self, name: str, detector: str) -> StreamStats:
        m = self.monitor
        return StreamStats(name, detector, m.settings, self._window_done, seed=m.seed)

    def reset(self, version: str, t_ms: int) -> None:
        """A new version serves: fresh detectors, reference rebuilt from its first window."""
        self.previous_version, self.version = self.version, version
        self.version_since_ms = t_ms
        self.records = 0
        self.streams = {}
        self.score = self._stream(SCORE_STREAM, self.monitor.settings.score_detector)
        self.errors = _ErrorStream(self.monitor.settings)
        self.signals.clear()
        self.error_traces.clear()
        self.awaiting_version = None

    def feature_stream(self, name: str) -> StreamStats:
        st = self.streams.get(name)
        if st is None:
            st = self.streams[name] = self._stream(name, self.monitor.settings.data_detector)
        return st

    def _window_done(self, stream: StreamStats, result: WindowResult) -> None:
        m = self.monitor
        m.observer.on_window(self.model_name, stream.name, result)
        kind = "prediction" if stream.name == SCORE_STREAM else "data"
        if result.psi > m.settings.psi_threshold:
            m._detected(self, Detection(self.model_name, self.version, kind, "PSI", "psi", stream.name, result.psi,
                                        result.window_start_ms, self.now_ms))
        if result.ks > result.ks_critical:
            m._detected(self, Detection(self.model_name, self.version, kind, "KS", "ks", stream.name, result.ks,
                                        result.window_start_ms, self.now_ms))


class DriftMonitor:
    """Feed `observe_prediction` / `observe_label`; each returns the retrain decisions it caused (usually none)."""

    def __init__(self, settings: MonitorSettings | None = None, observer: MonitorObserver | None = None,
                 seed: int = 0):
        self.settings = s = settings or MonitorSettings()
        self.observer: MonitorObserver = observer or _NullObserver()
        self.seed = seed
        self.models: dict[str, _ModelState] = {}
        self.joiner = LabelJoiner(s.join_window_ms, s.join_tolerance_ms, s.join_capacity, s.label_capacity)
        self._pending: list[RetrainDecision] = []
        self.predictions = 0
        self.labels = 0
        self.stale_predictions = 0  # in-flight predictions of a replaced version
        self.stale_labels = 0  # labels whose prediction came from a replaced version
        self.detections = 0
        self.suppressed = 0
        self._restored: dict[str, int] = {}

    # --- input ------------------------------------------------------------------------------------------------

    def observe_prediction(self, p: Prediction) -> list[RetrainDecision]:
        self.predictions += 1
        state = self.models.get(p.model_name)
        t = p.timestamp_ms
        if state is None:
            state = self.models[p.model_name] = _ModelState(self, p.model_name, p.model_version, t)
            state.last_request_ms = self._restored.pop(p.model_name, None)
            self.observer.on_version(p.model_name, p.model_version, None)
        elif p.model_version != state.version:
            grace = self.settings.version_grace_ms
            if p.model_version == state.previous_version and t - state.version_since_ms <= grace:
                self.stale_predictions += 1
                return self._joins(self.joiner.add_prediction(p))
            previous = state.version
            state.reset(p.model_version, t)
            self.observer.on_version(p.model_name, p.model_version, previous)
        if t > state.now_ms:
            state.now_ms = t
        state.records += 1
        if p.trace_id:
            state.traces.append((p.trace_id, p.span_id))
        for name, value in p.inputs.items():
            st = state.streams.get(name) or state.feature_stream(name)
            if st.update(value, t):
                self._detected(state, Detection(p.model_name, state.version, "data", st.detector_label, "mean",
                                                name, st.mean_z, st.window_start_ms, t))
        sc = state.score
        if sc.update(p.score, t):
            self._detected(state, Detection(p.model_name, state.version, "prediction", sc.detector_label,
                                            "score_mean", SCORE_STREAM, sc.mean_z, sc.window_start_ms, t))
        # labels that waited for this prediction join now; their decisions must reach the caller with the rest
        for joined, label in self.joiner.add_prediction(p):
            self._joined(joined, label)
        return self._drain()

    def observe_label(self, label: LabelEvent) -> list[RetrainDecision]:
        self.labels += 1
        p = self.joiner.add_label(label)
        if p is not None:
            self._joined(p, label)
        return self._drain()

    def observe_predictions(self, batch: list[Prediction]) -> list[RetrainDecision]:
        out: list[RetrainDecision] = []
        for p in batch:
            out.extend(self.observe_prediction(p))
        return out

    # --- internals --------------------------------------------------------------------------------------------

    def _joins(self, joins: list[tuple[Prediction, LabelEvent]]) -> list[RetrainDecision]:
        for p, label in joins:
            self._joined(p, label)
        return self._drain()

    def _joined(self, p: Prediction, label: LabelEvent) -> None:
        state = self.models.get(p.model_name)
        if state is None or p.model_version != state.version:
            self.stale_labels += 1
            return
        error = int(round(p.predicted_label) != round(label.label))
        if error and p.trace_id:
            state.error_traces.append((p.trace_id, p.span_id))
        rate = state.errors.update(error, p.timestamp_ms)
        if rate is not None:
            self._detected(state, Detection(p.model_name, state.version, "concept", "ADWIN", "error_rate", "",
                                            rate, state.errors.window_start_ms, state.now_ms, strong=True))

    def _detected(self, state: _ModelState, d: Detection) -> None:
        """Debounce: record the detection and decide whether it completes the evidence for a retrain."""
        s = self.settings
        self.detections += 1
        reason = self._suppression(state, d)
        if reason is None and not d.strong:
            state.signals[(d.detector, d.feature)] = (state.records, d)
            horizon = state.records - s.evidence_records
            for key in [k for k, (n, _) in state.signals.items() if n < horizon]:
                del state.signals[key]
            if len(state.signals) < s.min_agreeing:
                reason = "waiting_for_agreement"
        if reason is not None:
            self.suppressed += 1
            self.observer.on_detection(d, reason)
            return
        self.observer.on_detection(d, None)
        evidence = (d,) if d.strong else tuple(det for _, det in state.signals.values())
        traces = tuple(state.error_traces if d.strong and state.error_traces else state.traces)
        start = min(e.window_start_ms for e in evidence)
        names = ", ".join(f"{e.detector}({e.feature or 'error'}) {e.statistic}={e.value:.3f}" for e in evidence)
        kind = "concept drift" if d.strong else f"{len(evidence)} drift signals agree"
        self._pending.append(RetrainDecision(
            model_name=state.model_name, model_version=state.version, request_id=uuid.uuid4().hex,
            reason=f"{kind} on {state.model_name} v{state.version}: {names}",
            detector=d.detector, statistic=d.statistic, feature=d.feature, value=d.value,
            window_start_ms=start, window_end_ms=state.now_ms, evidence=evidence, evidence_traces=traces,
        ))
        state.last_request_ms = state.now_ms
        state.awaiting_version = state.version
        state.signals.clear()

    def _suppression(self, state: _ModelState, d: Detection) -> str | None:
        s = self.settings
        if state.records < s.min_records:
            return "warming_up"
        if state.awaiting_version is not None:
            if state.last_request_ms is not None and state.now_ms - state.last_request_ms < s.retrain_timeout_ms:
                return "awaiting_new_version"
            state.awaiting_version = None
        if state.last_request_ms is not None and state.now_ms - state.last_request_ms < s.cooldown_ms:
            return "cooldown"
        return None

    def _drain(self) -> list[RetrainDecision]:
        if not self._pending:
            return []
        out, self._pending = self._pending, []
        return out

    # --- restart ----------------------------------------------------------------------------------------------

    def restore_request(self, model_name: str, requested_at_ms: int) -> None:
        """Re-apply the cool-down of a retrain request made before a restart (read back from retrain.requested)."""
        state = self.models.get(model_name)
        if state is None:
            self._restored[model_name] = max(requested_at_ms, self._restored.get(model_name, 0))
        else:
            state.last_request_ms = max(requested_at_ms, state.last_request_ms or 0)
