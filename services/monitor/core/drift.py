"""The transport-free core: `DriftMonitor` takes plain predictions and labels and returns retrain decisions.

Every declared model is watched on its own (`ModelState`, one `LabelJoiner` each), with the signals, significance
and cool-down of its drift policy (`MonitorConfig`, from the definitions in force):
- data drift: one `StreamStats` per input feature (a river detector on standardized values + PSI/KS windows);
- prediction drift: the same on the score stream;
- concept drift: labels joined to the model's predictions give an error stream (`ErrorStream`: 0/1 errors of a
  class, absolute errors of a regression); windows of recent errors are tested against every earlier error of
  the version (Fisher's exact test, at a level from the false-alarm budget), and the drift is *confirmed* when the
  recent error exceeds the version's reference error by a margin (a strong signal).

False alarms are bounded by design (`services.monitor.core.budget`): only tests run at a level taken from one
false-alarm budget may ask for a retrain (the error-stream windows, the data streams' KS windows); PSI and the
optional online detectors are reported only.

Debounce, per model: nothing before `min_records` predictions of the version; then one significant concept drift,
or `min_agreeing` distinct significant data/prediction signals within `evidence_records` predictions, make ONE
retrain decision, carrying the estimated change point. While the version it asked to replace still serves, the
cool-down (the longer of the model's `cooldown_s` and `retrain_timeout_ms`) holds further requests — but a drift
seen then is reported (outcome "deferred") and kept, and asked for when the cool-down ends (a retrain the gate
rejected gets another attempt, with more post-change data), at most `max_requests_per_version` times; a concept
drift after a request that only data signals made is asked for at once. A new version is judged on its own at once:
every detector is reset and the reference rebuilt from its first window. Time is stream time (prediction
timestamps), so replays and tests behave like live runs.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from services.monitor.core.batch import observe_block
from services.monitor.core.domain import Detection, LabelEvent, Prediction, PredictionBlock, RetrainDecision
from services.monitor.core.join import JoinCounts, LabelJoiner
from services.monitor.core.judge import ChallengerJudge
from services.monitor.core.model_state import SCORE_STREAM, ModelState
from services.monitor.core.policy import MonitorConfig
from services.monitor.core.stats import WindowResult
from services.monitor.settings import MonitorSettings

__all__ = ["SCORE_STREAM", "DriftMonitor", "MonitorObserver"]


class MonitorObserver(Protocol):
    """What the edge wants to hear about (metrics, logs); every method is optional to act on."""

    def on_detection(self, detection: Detection, suppressed: str | None) -> None: ...

    def on_window(self, model_name: str, feature: str, result: WindowResult) -> None: ...

    def on_version(self, model_name: str, version: str, previous: str | None) -> None: ...

    def on_estimate(self, model_name: str, version: str, expected: float, realised: float | None) -> None: ...


class _NullObserver:
    def on_detection(self, detection: Detection, suppressed: str | None) -> None:
        return None

    def on_window(self, model_name: str, feature: str, result: WindowResult) -> None:
        return None

    def on_version(self, model_name: str, version: str, previous: str | None) -> None:
        return None

    def on_estimate(self, model_name: str, version: str, expected: float, realised: float | None) -> None:
        return None


class DriftMonitor:
    """Feed `observe_prediction` / `observe_label`; each returns the retrain decisions it caused (usually none).

    Without a `config` every model is watched as binary with the default drift policy (`MonitorConfig.
    unconfigured`); the service configures it from the definitions revision in force (`configure`)."""

    def __init__(self, settings: MonitorSettings | None = None, observer: MonitorObserver | None = None,
                 seed: int = 0, config: MonitorConfig | None = None):
        self.settings = settings or MonitorSettings()
        self.observer: MonitorObserver = observer or _NullObserver()
        self.seed = seed
        self.config = config if config is not None else MonitorConfig.unconfigured()
        self.models: dict[str, ModelState] = {}
        self.joiners: dict[str, LabelJoiner] = {}  # per model: labels join only their own model's predictions
        self._pending: list[RetrainDecision] = []
        self.predictions = 0
        self.labels = 0
        self.stale_predictions = 0  # in-flight predictions of a replaced version
        self.stale_labels = 0  # labels whose prediction came from a replaced version
        self.unwatched = 0  # predictions and labels of a model the definitions do not declare
        self.detections = 0
        self.suppressed = 0
        self._restored: dict[str, int] = {}
        # shadow / canary / guard rows and their labels: judged apart, never seen by the drift detectors
        self.judge = ChallengerJudge(self.settings, lambda name: self.config.policy(name))

    # --- configuration ----------------------------------------------------------------------------------------

    def configure(self, config: MonitorConfig) -> None:
        """Watch the models of `config` from now on: kept models take their new policy (statistics restart only
        if task, signals or alpha changed; the debounce is kept), removed models are forgotten (their last request
        is remembered in case they come back)."""
        self.config = config
        for name in list(self.models):
            state = self.models[name]
            policy = config.policy(name)
            if policy is None:
                del self.models[name]
                self.joiners.pop(name, None)
                if state.last_request_ms is not None:
                    self._restored[name] = state.last_request_ms
            else:
                state.repolicy(policy)
                state.joiner = self._joiner(name) if state.watch_errors else None
        self.judge.forget_undeclared()
        for name in [n for n in self.joiners if config.policy(n) is None or (
                n in self.models and self.models[n].joiner is None)]:
            del self.joiners[name]

    # --- input ------------------------------------------------------------------------------------------------

    def observe_prediction(self, p: Prediction) -> list[RetrainDecision]:
        self.predictions += 1
        if self.judge.observe_prediction(p):  # a second version's row: judged, not the champion's drift
            return []
        state = self._admit(p.model_name, p.model_version, p.timestamp_ms)
        if state is None:
            self.unwatched += 1
            return []
        if p.model_version != state.version:  # in flight from the version just replaced
            self.stale_predictions += 1
            return self._joins(state.joiner.add_prediction(p)) if state.joiner is not None else []
        self._row(state, p)
        return self._drain()

    def observe_block(self, block: PredictionBlock) -> list[RetrainDecision]:
        """The rows of one logged batch, with the same outcome as `observe_prediction` on each row in turn: the
        statistics take whole columns between the rows where something happens (services.monitor.core.batch)."""
        return observe_block(self, block)

    def _admit(self, model_name: str, version: str, t: int) -> ModelState | None:
        """The state a champion row of `model_name` / `version` at `t` goes to (None: not watched); a new version
        resets it, a row of the version just replaced (in flight) leaves it as it is (`state.version` differs)."""
        state = self.models.get(model_name)
        if state is None:
            policy = self.config.policy(model_name)
            if policy is None:
                return None
            state = self.models[model_name] = ModelState(self, policy, version, t)
            state.joiner = self._joiner(model_name) if state.watch_errors else None
            state.last_request_ms = self._restored.pop(model_name, None)
            if state.last_request_ms is not None:  # a request made before a restart: its cool-down holds
                state.request_version = version
            self.observer.on_version(model_name, version, None)
        elif version != state.version:
            grace = self.settings.version_grace_ms
            if version == state.previous_version and t - state.version_since_ms <= grace:
                return state
            previous = state.version
            state.reset(version, t)
            self.observer.on_version(model_name, version, previous)
        if t > state.now_ms:
            state.now_ms = t
            if state.deferred is not None and self._cooled(state):
                self._request(state, state.deferred)
        return state

    def _row(self, state: ModelState, p: Prediction, fresh: bool | None = None) -> None:
        """One admitted row of the version serving: every statistic, in the order the detections are made. The
        data streams take it only if it brings a new state of its entity (`fresh`, asked of `state.repeats` when
        not given)."""
        t = p.timestamp_ms
        state.records += 1
        if p.trace_id:
            state.traces.append((p.trace_id, p.span_id))
        if fresh is None:
            fresh = (state.watch_features or state.score is not None) and state.repeats.fresh(
                p.entity_id, p.features_as_of_ms, p.score)
        if fresh and state.watch_features:
            streams = state.streams
            for name, value in p.inputs.items():
                st = streams.get(name) or state.feature_stream(name)
                if st.update(value, t):
                    self._detected(state, Detection(p.model_name, state.version, "data", st.detector_label,
                                                    "mean", name, st.mean_z, st.window_start_ms, t, counts=False))
        sc = state.score
        if fresh and sc is not None and sc.update(p.score, t):
            self._detected(state, Detection(p.model_name, state.version, "prediction", sc.detector_label,
                                            "score_mean", SCORE_STREAM, sc.mean_z, sc.window_start_ms, t,
                                            counts=False))
        est = state.estimator
        if est is not None:
            est.add_prediction(est.confidence(p.score, state.binary))
            if state.records % self.settings.data_window_step == 0:
                self._estimate(state)
        joiner = state.joiner
        if joiner is not None:
            # labels that waited for this prediction join now; their decisions must reach the caller with the rest
            for joined, label in joiner.add_prediction(p):
                self._joined(joined, label)

    def observe_label(self, model_name: str, label: LabelEvent) -> list[RetrainDecision]:
        """A label of `model_name` (read from its declared label topic): joined to one of its predictions, or
        held (bounded) until that prediction arrives."""
        self.labels += 1
        state = self.models.get(model_name)
        policy = state.policy if state is not None else self.config.policy(model_name)
        if policy is None:
            self.unwatched += 1
            return []
        self.judge.observe_label(model_name, label)
        if "error" not in policy.signals:
            return []  # the model's policy runs no error signal: nothing to join for
        p = self._joiner(model_name).add_label(label)
        if p is not None:
            self._joined(p, label)
        return self._drain()

    def observe_predictions(self, batch: list[Prediction]) -> list[RetrainDecision]:
        out: list[RetrainDecision] = []
        for p in batch:
            out.extend(self.observe_prediction(p))
        return out

    def join_counts(self) -> JoinCounts:
        """The label joins of every model, summed (for the metrics)."""
        total = JoinCounts()
        for j in self.joiners.values():
            c = j.counts
            total.joined += c.joined
            total.predictions_evicted += c.predictions_evicted
            total.labels_waiting += c.labels_waiting
            total.labels_evicted += c.labels_evicted
        return total

    def join_buffered(self) -> int:
        """Predictions held for their labels, every model together."""
        return sum(len(j) for j in self.joiners.values())

    # --- internals --------------------------------------------------------------------------------------------

    def _joiner(self, model_name: str) -> LabelJoiner:
        j = self.joiners.get(model_name)
        if j is None:
            s = self.settings
            j = self.joiners[model_name] = LabelJoiner(s.join_window_ms, s.join_tolerance_ms, s.join_capacity,
                                                       s.label_capacity)
        return j

    def _joins(self, joins: list[tuple[Prediction, LabelEvent]]) -> list[RetrainDecision]:
        for p, label in joins:
            self._joined(p, label)
        return self._drain()

    def _joined(self, p: Prediction, label: LabelEvent) -> None:
        state = self.models.get(p.model_name)
        if state is None or p.model_version != state.version:
            self.stale_labels += 1
            return
        errors = state.errors
        if errors is None:
            return
        error = state.error(p.predicted_label, label.label)
        if p.trace_id and state.counts_as_evidence(error):
            state.error_traces.append((p.trace_id, p.span_id))
        est = state.estimator
        if est is not None:
            est.add_label(est.confidence(p.score, state.binary), error == 0)
        value = errors.update(error, label.event_time_ms)  # the change point comes out in the trainer's time
        if value is not None:
            self._detected(state, Detection(p.model_name, state.version, "concept", "ErrorWindows",
                                            state.policy.error_statistic, "", value, errors.window_start_ms,
                                            state.now_ms, strong=True, change_point_ms=errors.change_point_ms))

    def _detected(self, state: ModelState, d: Detection) -> None:
        """Debounce: record the detection and decide whether it completes the evidence for a retrain."""
        s = self.settings
        self.detections += 1
        reason = "reported_only" if not d.counts else self._suppression(state, d)
        if reason is None and not d.strong:
            state.signals[(d.detector, d.feature)] = (state.records, d)
            horizon = state.records - s.evidence_records
            for key in [k for k, (n, _) in state.signals.items() if n < horizon]:
                del state.signals[key]
            if len(state.signals) < s.min_agreeing:
                reason = "waiting_for_agreement"
        if reason == "deferred" and (state.deferred is None or d.strong or not state.deferred.strong):
            state.deferred = d  # acted on when the cool-down ends, if the version still serves
        if reason is not None:
            self.suppressed += 1
            self.observer.on_detection(d, reason)
            return
        self.observer.on_detection(d, None)
        self._request(state, d)

    def _request(self, state: ModelState, d: Detection) -> None:
        evidence = (d,) if d.strong or not state.signals else tuple(det for _, det in state.signals.values())
        traces = tuple(state.error_traces if d.strong and state.error_traces else state.traces)
        start = min(e.window_start_ms for e in evidence)
        change = d.change_point_ms  # only the error stream estimates one, and its detection is evidence alone
        names = ", ".join(f"{e.detector}({e.feature or 'error'}) {e.statistic}={e.value:.3f}" for e in evidence)
        kind = "concept drift" if d.strong else f"{len(evidence)} drift signal(s)"
        same = state.request_version == state.version
        state.requests_for_version = state.requests_for_version + 1 if same else 1
        attempt = state.requests_for_version
        again = f" (attempt {attempt}: the version still serves)" if attempt > 1 else ""
        self._pending.append(RetrainDecision(
            model_name=state.model_name, model_version=state.version, request_id=uuid.uuid4().hex,
            reason=f"{kind} on {state.model_name} v{state.version}: {names}{again}",
            detector=d.detector, statistic=d.statistic, feature=d.feature, value=d.value,
            window_start_ms=start, window_end_ms=state.now_ms, evidence=evidence, evidence_traces=traces,
            change_point_ms=change, attempt=attempt,
        ))
        state.last_request_ms = state.now_ms
        state.request_version = state.version
        state.signals.clear()
        state.deferred = None

    def _cooled(self, state: ModelState) -> bool:
        """The cool-down after the last request has passed (or never applied to the version serving)."""
        last = state.last_request_ms
        if last is None or state.request_version not in (None, state.version):
            return True
        return state.now_ms - last >= max(state.policy.cooldown_ms, self.settings.retrain_timeout_ms)

    def _suppression(self, state: ModelState, d: Detection) -> str | None:
        if state.records < self.settings.min_records:
            return "warming_up"
        if state.request_version in (None, state.version) and state.last_request_ms is not None:
            if state.requests_for_version >= self.settings.max_requests_per_version:
                return "attempts_exhausted"
            if not self._cooled(state):
                return "deferred"
        return None

    def _estimate(self, state: ModelState) -> None:
        est = state.estimator
        assert est is not None
        errors = state.errors
        realised = None
        if errors is not None:
            recent = errors.recent_mean(self.settings.window_size)
            realised = None if recent is None else 1.0 - recent
        self.observer.on_estimate(state.model_name, state.version, est.expected_accuracy(), realised)

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
            state.request_version = state.version
