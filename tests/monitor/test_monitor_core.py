"""The transport-free DriftMonitor on the datagen stream: detects the known drift within a bounded delay, asks for
exactly one retrain per drift episode, and stays quiet on a no-drift control."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator

import pytest
from mlops_tools.datagen import SEA_THRESHOLDS, StreamConfig, SyntheticRecord, generate

from services.monitor import (
    DriftMonitor,
    LabelEvent,
    ModelPolicy,
    MonitorConfig,
    MonitorSettings,
    Prediction,
    RetrainDecision,
)

NEVER = 10**12  # ms: a cool-down / timeout that never ends within a test stream


def monitor(observer=None, *, cooldown_ms: int = NEVER, **kw) -> DriftMonitor:  # noqa: ANN001
    """A monitor that watches any model as binary with `cooldown_ms` (the definitions' cool-down)."""
    settings = MonitorSettings(**({"retrain_timeout_ms": NEVER} | kw))
    return DriftMonitor(settings, observer, config=MonitorConfig(fallback=ModelPolicy("", cooldown_ms=cooldown_ms)))


def predict(rec: SyntheticRecord, variant: int, version: str) -> Prediction:
    """A model that learned SEA `variant` perfectly (what the trainer would produce from that concept's data)."""
    s = rec.values["x0"] + rec.values["x1"]
    score = 1.0 / (1.0 + math.exp(-(s - SEA_THRESHOLDS[variant])))
    return Prediction(
        request_id=f"r{rec.index}", entity_id=rec.entity_id, model_name="sea", model_version=version,
        inputs=rec.values, score=score, predicted_label=float(score > 0.5), timestamp_ms=rec.event_time_ms,
        features_as_of_ms=rec.event_time_ms, trace_id=f"{rec.index + 1:032x}", span_id=f"{rec.index + 1:016x}",
    )


def replay(monitor: DriftMonitor, records: Iterator[SyntheticRecord], *, label_delay: int = 50,
           labels: bool = True, model=lambda rec: predict(rec, 2, "1")) -> list[tuple[int, RetrainDecision]]:
    """Predictions in stream order, each label `label_delay` records later (no request id: joined by entity and
    time)."""
    out: list[tuple[int, RetrainDecision]] = []
    waiting: deque[SyntheticRecord] = deque()
    for rec in records:
        out += [(rec.index, d) for d in monitor.observe_prediction(model(rec))]
        if labels:
            waiting.append(rec)
            if len(waiting) > label_delay:
                q = waiting.popleft()
                lab = LabelEvent(q.entity_id, q.event_time_ms, float(q.label), event_id=q.event_id)
                out += [(rec.index, d) for d in monitor.observe_label("sea", lab)]
    return out


def test_concept_drift_gives_one_retrain_within_a_bounded_delay():
    cfg = StreamConfig(count=16_000, drift_at=5_000, noise=0.05, covariate_shift=False, seed=3)
    m = monitor()
    fired = replay(m, generate(cfg))
    assert len(fired) == 1, [d.reason for _, d in fired]
    at, d = fired[0]
    assert 5_000 <= at <= 5_000 + 600  # 50 records of label delay + the detector's delay
    assert (d.detector, d.statistic, d.feature, d.model_version) == ("ErrorWindows", "error_rate", "", "1")
    assert d.value > 0.10  # error rate of the old concept after the drift (~0.05 noise + ~0.2 flipped band)
    assert d.evidence_traces and all(len(t) == 32 for t, _ in d.evidence_traces)
    assert d.window_start_ms <= d.window_end_ms
    assert m.join_counts().joined == cfg.count - 50


def test_covariate_shift_without_labels_is_one_significant_ks_window_and_fires_once():
    cfg = StreamConfig(count=15_000, drift_at=5_000, covariate_shift=True, seed=4)
    m = monitor()
    fired = replay(m, generate(cfg), labels=False)
    assert len(fired) == 1, [d.reason for _, d in fired]
    at, d = fired[0]
    assert 5_000 <= at <= 5_000 + 2 * m.settings.window_size  # the next window closes by then
    assert d.feature == "x2"
    assert {e.feature for e in d.evidence} == {"x2"} and {e.detector for e in d.evidence} == {"KS"}
    assert 5_000 * 10 - 1_000 * 10 <= d.window_start_ms - cfg.start_ms <= 5_000 * 10  # the window that moved
    assert d.change_point_ms == 0  # serve time, not the labels' time the trainer selects rows by: all rows


@pytest.mark.parametrize("detector", ["adwin", "pagehinkley"])
def test_no_drift_control_fires_nothing(detector):
    m = monitor(data_detector=detector, score_detector=detector, cooldown_ms=0, retrain_timeout_ms=0)
    fired = replay(m, generate(StreamConfig(count=30_000, drift_at=None, noise=0.05, seed=11)))
    assert fired == []
    assert m.predictions == 30_000 and m.join_counts().joined == 30_000 - 50


def test_no_drift_control_with_kswin_fires_nothing():
    m = monitor(data_detector="kswin", score_detector="kswin", cooldown_ms=0, retrain_timeout_ms=0)
    assert replay(m, generate(StreamConfig(count=8_000, drift_at=None, seed=12)), labels=False) == []


class Recorder:
    """A MonitorObserver that keeps every detection and whether (and why) it was suppressed."""

    def __init__(self) -> None:
        self.detections: list[tuple[str, str, int, str | None]] = []

    def on_detection(self, d, suppressed) -> None:  # noqa: ANN001
        self.detections.append((d.detector, d.feature, d.at_ms, suppressed))

    def on_window(self, *args) -> None:  # noqa: ANN002
        return None

    def on_version(self, *args) -> None:  # noqa: ANN002
        return None

    def on_estimate(self, *args) -> None:  # noqa: ANN002
        return None


def test_kswin_sees_the_covariate_shift():
    rec = Recorder()
    cfg = StreamConfig(count=6_000, drift_at=3_000, seed=5)
    m = monitor(rec, data_detector="kswin")
    fired = replay(m, generate(cfg), labels=False)
    assert len(fired) == 1 and fired[0][1].feature == "x2"
    kswin = [(f, t) for det, f, t, _ in rec.detections if det == "KSWIN"]
    assert kswin and {f for f, _ in kswin} == {"x2"}
    first = (kswin[0][1] - cfg.start_ms) // 10  # the record index it fired on
    assert 3_000 <= first <= 3_000 + 1_500  # KSWIN sees every 10th value (kswin_stride)


def test_no_retrain_until_the_new_version_serves_then_a_new_episode_gets_its_own():
    """Episode 1 (variant 2→3) asks once; the model keeps serving v1 for a while (no second request); v2, trained
    on the new concept, takes over with a fresh reference; episode 2 (3→0) asks once more, naming v2."""
    ep1 = StreamConfig(count=20_000, drift_at=5_000, variant_before=2, variant_after=3, covariate_shift=False,
                       seed=21)
    recs = list(generate(ep1))
    ep2 = StreamConfig(count=12_000, drift_at=4_000, variant_before=3, variant_after=0, covariate_shift=False,
                       seed=22, start_ms=recs[-1].event_time_ms + 10)
    recs2 = [SyntheticRecord(r.index + len(recs), r.event_id, r.entity_id, r.event_time_ms, r.values, r.label,
                             r.drifted) for r in generate(ep2)]
    m = monitor(cooldown_ms=1_000)
    switch_at = 12_000  # v2 is promoted here (long after the request: the request alone must not repeat)

    def model(rec: SyntheticRecord) -> Prediction:
        return predict(rec, 2, "1") if rec.index < switch_at else predict(rec, 3, "2")

    fired = replay(m, iter(recs + recs2), model=model)
    assert [(d.model_version, d.statistic) for _, d in fired] == [("1", "error_rate"), ("2", "error_rate")]
    assert fired[0][0] < switch_at and fired[1][0] >= len(recs) + 4_000


def test_cooldown_and_timeout_allow_a_new_request_when_no_new_version_comes():
    cfg = StreamConfig(count=40_000, drift_at=5_000, covariate_shift=False, seed=31)
    # 10 ms per record: the timeout (100 s of stream time) passes after ~10k records; the drift is still there
    m = monitor(cooldown_ms=50_000, retrain_timeout_ms=100_000)
    fired = replay(m, generate(cfg))
    assert len(fired) >= 2
    gaps = [b[1].window_end_ms - a[1].window_end_ms for a, b in zip(fired, fired[1:], strict=False)]
    assert all(g >= 100_000 for g in gaps)


def test_in_flight_predictions_of_the_previous_version_are_not_a_rollback():
    m = monitor(version_grace_ms=1_000)
    recs = list(generate(StreamConfig(count=3_000, drift_at=None)))
    for r in recs[:1000]:
        m.observe_prediction(predict(r, 2, "1"))
    for r in recs[1000:1010]:
        m.observe_prediction(predict(r, 2, "2"))
    m.observe_prediction(predict(recs[1010], 2, "1"))  # straggler, 10 ms after the switch
    assert m.models["sea"].version == "2" and m.stale_predictions == 1
    for r in recs[1011:]:
        m.observe_prediction(predict(r, 2, "1"))  # a real rollback, long after the grace period
    assert m.models["sea"].version == "1"


def test_restored_request_keeps_the_cooldown_after_a_restart():
    cfg = StreamConfig(count=12_000, drift_at=5_000, covariate_shift=False, seed=3)
    m = monitor(cooldown_ms=NEVER)
    m.restore_request("sea", cfg.start_ms)
    assert replay(m, generate(cfg)) == []
    assert m.suppressed >= 1


def test_warm_up_min_records_must_cover_the_reference_window():
    with pytest.raises(ValueError, match="min_records"):
        MonitorSettings(window_size=1000, min_records=500)


class Estimates(Recorder):
    """A Recorder that also keeps the confidence-based accuracy estimates."""

    def __init__(self) -> None:
        super().__init__()
        self.estimates: list[tuple[float, float | None]] = []

    def on_estimate(self, model_name, version, expected, realised) -> None:  # noqa: ANN001
        self.estimates.append((expected, realised))


def test_the_change_point_estimate_lies_near_the_true_change():
    cfg = StreamConfig(count=12_000, drift_at=6_000, noise=0.05, covariate_shift=False, seed=5)
    [(_, d)] = replay(monitor(), generate(cfg))
    drift_ms = cfg.start_ms + 6_000 * 10  # 10 ms per record
    assert abs(d.change_point_ms - drift_ms) <= 300 * 10, (d.change_point_ms - drift_ms) / 10
    assert d.attempt == 1


def test_a_persisting_drift_is_deferred_during_the_cooldown_then_asked_again_with_the_same_change_point():
    """The retrain did not replace the model (e.g. its challenger was rejected): the drift seen during the cool-down
    is reported as deferred and asked for when the cool-down ends, at most max_requests_per_version times."""
    rec = Recorder()
    cfg = StreamConfig(count=30_000, drift_at=5_000, noise=0.05, covariate_shift=False, seed=6)
    m = monitor(rec, cooldown_ms=40_000, retrain_timeout_ms=0, max_requests_per_version=3)
    fired = replay(m, generate(cfg))
    assert [d.attempt for _, d in fired] == [1, 2, 3]
    gaps = [b.window_end_ms - a.window_end_ms for (_, a), (_, b) in zip(fired, fired[1:], strict=False)]
    assert all(40_000 <= g <= 40_000 + 5_000 for g in gaps), gaps  # asked for as soon as the cool-down ends
    assert len({d.change_point_ms for _, d in fired}) == 1
    outcomes = [why for _, _, _, why in rec.detections]
    assert "deferred" in outcomes and "attempts_exhausted" in outcomes


def test_a_concept_drift_after_a_data_only_request_is_reported_and_deferred_not_lost():
    """A covariate shift asks first (a data signal); the concept drift that follows during that request's cool-down
    is reported as deferred (one retrain per episode: the retrain asked for may well fix both)."""
    shift = StreamConfig(count=9_000, drift_at=4_000, noise=0.05, covariate_shift=True, variant_before=2,
                         variant_after=2, seed=8)  # x2 moves, the concept stays
    recs = list(generate(shift))
    both = StreamConfig(count=7_000, drift_at=1, noise=0.05, covariate_shift=True, variant_before=2, variant_after=3,
                        seed=9, start_ms=recs[-1].event_time_ms + 10)  # x2 still moved, and now the concept too
    recs += [SyntheticRecord(r.index + 9_000, r.event_id, r.entity_id, r.event_time_ms, r.values, r.label, r.drifted)
             for r in generate(both)]
    rec = Recorder()
    m = monitor(rec, cooldown_ms=NEVER, retrain_timeout_ms=NEVER)
    fired = replay(m, iter(recs), model=lambda rec: predict(rec, 2, "1"))
    assert [d.statistic for _, d in fired] == ["ks"], [d.reason for _, d in fired]
    assert ("ErrorWindows", "", "deferred") in {(det, f, why) for det, f, _, why in rec.detections}
    assert m.models["sea"].deferred is not None and m.models["sea"].deferred.strong


def test_the_confidence_based_estimate_follows_the_realised_accuracy_without_drift():
    rec = Estimates()
    m = monitor(rec)
    assert replay(m, generate(StreamConfig(count=12_000, drift_at=None, noise=0.1, seed=9))) == []
    late = [(e, r) for e, r in rec.estimates[len(rec.estimates) // 2:] if r is not None]
    assert late and all(abs(e - r) < 0.05 for e, r in late), late[:5]
