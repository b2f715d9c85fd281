"""Every declared model watched on its own (transport-free): a SEA-like binary model and a delivery-like regression
model share the monitor; a drift in one model's stream asks for a retrain of that model only; each policy decides
which signals run; a new revision's policy is taken up without losing the debounce."""

from __future__ import annotations

from collections import deque
from dataclasses import replace

import pytest
from mlops.definitions import Task, load, merge
from monitor_helpers import DELIVERY, SEA, Sample, delivery_samples, interleave, sea_samples, with_drift

from services.monitor import DriftMonitor, MonitorConfig, MonitorSettings, RetrainDecision
from services.monitor.core import ErrorStream, ModelPolicy

DECLARED = merge(load(SEA), load(DELIVERY))


def config(**models) -> MonitorConfig:  # noqa: ANN003
    """The configuration of the two example models; `models` replace some (name=Model)."""
    d = DECLARED.model_copy(update={"models": tuple(models.get(m.name, m) for m in DECLARED.models)})
    return MonitorConfig.of(d, revision=1)


def replay(m: DriftMonitor, samples: list[Sample], label_delay: int = 50) -> list[tuple[int, RetrainDecision]]:
    """Predictions in order, each label `label_delay` samples later, read from its model's label topic."""
    out: list[tuple[int, RetrainDecision]] = []
    waiting: deque[Sample] = deque()
    for i, s in enumerate(samples):
        out += [(i, d) for d in m.observe_prediction(s.prediction)]
        waiting.append(s)
        if len(waiting) > label_delay:
            q = waiting.popleft()
            out += [(i, d) for d in m.observe_label(q.prediction.model_name, q.label)]
    return out


def test_policies_come_from_the_definitions():
    c = config()
    sea, dt = c.policy("sea"), c.policy("delivery_time")
    assert (sea.task, sea.signals, sea.alpha, sea.cooldown_ms) == (
        Task.BINARY, frozenset({"error", "score", "features"}), 1e-4, 60_000)
    assert (sea.label_topic, sea.id_field, sea.error_statistic) == ("labels", "entity_id", "error_rate")
    assert (dt.task, dt.signals, dt.label_topic, dt.id_field) == (
        Task.REGRESSION, frozenset({"error", "features"}), "orders.delivered", "customer_id")
    assert dt.error_statistic == "mae"
    assert c.policy("unknown") is None  # a configured monitor watches only what is declared


@pytest.mark.parametrize("drifted", ["sea", "delivery_time"])
def test_drift_in_one_model_requests_a_retrain_of_that_model_only(drifted):
    sea = sea_samples(8_000, 4_000 if drifted == "sea" else None)
    dt = delivery_samples(8_000, 4_000 if drifted == "delivery_time" else None)
    m = DriftMonitor(MonitorSettings(), config=config())
    fired = replay(m, interleave(sea, dt))

    assert [d.model_name for _, d in fired] == [drifted], [d.reason for _, d in fired]
    at, d = fired[0]
    assert 8_000 <= at <= 8_000 + 2 * 600  # both streams interleaved: sample 8,000 is each model's 4,000th
    assert (d.detector, d.feature, d.model_version) == ("ErrorWindows", "", "1")
    reference = m.models[drifted].errors.reference_error
    if drifted == "sea":  # the recent error rate, an absolute margin above the reference
        assert d.statistic == "error_rate" and d.value - reference >= m.settings.error_min_increase
    else:  # the recent mean absolute error in minutes, a fraction above the reference (~2.4: the noise)
        assert d.statistic == "mae" and d.value >= reference * (1 + m.settings.error_min_relative_increase)
        assert 2.0 < reference < 3.0
    assert d.evidence_traces and all(len(t) == 32 for t, _ in d.evidence_traces)
    # both models were watched, each joined its own labels
    assert set(m.models) == {"sea", "delivery_time"}
    assert {name: j.counts.joined for name, j in m.joiners.items()} == {"sea": 8_000 - 25, "delivery_time": 8_000 - 25}


def test_no_drift_in_either_model_fires_nothing():
    m = DriftMonitor(MonitorSettings(), config=config())
    assert replay(m, interleave(sea_samples(15_000, None, seed=11), delivery_samples(15_000, None, seed=12))) == []
    assert m.predictions == 30_000 and m.unwatched == 0


def test_the_drift_policy_decides_which_signals_run():
    only_error = with_drift(SEA, signals=("error",))
    only_features = with_drift(DELIVERY, signals=("features",))
    m = DriftMonitor(MonitorSettings(), config=config(sea=only_error, delivery_time=only_features))
    replay(m, interleave(sea_samples(1_500, None), delivery_samples(1_500, None)))
    sea, dt = m.models["sea"], m.models["delivery_time"]
    assert sea.streams == {} and sea.score is None and sea.errors.labels > 0
    assert set(dt.streams) == set(delivery_samples(1, None)[0].prediction.inputs) and dt.score is None
    assert dt.errors is None and "delivery_time" not in m.joiners  # no error signal: its labels are not joined


def test_predictions_and_labels_of_an_undeclared_model_are_not_watched():
    m = DriftMonitor(MonitorSettings(), config=config())
    s = sea_samples(10, None)
    for sample in s:
        m.observe_prediction(replace(sample.prediction, model_name="other"))
        m.observe_label("other", sample.label)
    assert m.unwatched == 20 and m.models == {} and m.joiners == {}


def test_a_new_policy_is_taken_up_keeping_the_debounce_and_rebuilding_statistics_only_when_needed():
    m = DriftMonitor(MonitorSettings(), config=config())
    samples = sea_samples(3_000, None)
    replay(m, samples[:2_000])
    state = m.models["sea"]
    state.last_request_ms = samples[1_000].prediction.timestamp_ms
    records, streams = state.records, dict(state.streams)

    m.configure(config(sea=with_drift(SEA, cooldown_s=5)))  # a cool-down only: the statistics go on
    assert m.models["sea"] is state and state.policy.cooldown_ms == 5_000
    assert state.records == records and state.streams == streams

    m.configure(config(sea=with_drift(SEA, alpha=0.01)))  # a new significance: statistics restart
    assert m.models["sea"] is state and state.records == 0 and state.streams == {}
    assert state.last_request_ms == samples[1_000].prediction.timestamp_ms  # the debounce survives
    assert state.policy.alpha == 0.01
    replay(m, samples[2_000:])
    assert next(iter(state.streams.values())).alpha == 0.01

    m.configure(MonitorConfig.of(load(DELIVERY), revision=3))  # sea no longer declared: forgotten
    assert "sea" not in m.models and "sea" not in m.joiners
    m.configure(config())  # declared again: the earlier request still counts for the cool-down
    m.observe_prediction(samples[0].prediction)
    assert m.models["sea"].last_request_ms == samples[1_000].prediction.timestamp_ms


def test_regression_error_stream_judges_in_units_of_the_reference_mae():
    s = MonitorSettings(error_reference_labels=20, error_check_every=5, error_windows=(10, 20, 40))
    for unit in (1.0, 60.0, 0.001):  # minutes, seconds, thousandths: the same decisions
        errors = ErrorStream(s, relative=True)
        fired = [errors.update(e * unit, i) for i, e in enumerate([2.0, 3.0] * 100 + [6.0, 7.0] * 100)]
        at = next(i for i, v in enumerate(fired) if v is not None)
        assert 200 <= at <= 260
        assert errors.reference_error == pytest.approx(2.5 * unit)
        assert fired[at] >= 2.5 * unit * (1 + s.error_min_relative_increase)


def test_a_model_policy_defaults_to_what_the_monitor_did_before_definitions():
    p = ModelPolicy("x")
    assert (p.task, p.signals, p.alpha, p.cooldown_ms) == (Task.BINARY, frozenset({"error", "score", "features"}),
                                                            1e-4, 60_000)
    assert MonitorConfig.unconfigured().policy("anything").name == "anything"
