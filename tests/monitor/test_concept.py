"""The error-stream detector (`ErrorStream`) and its test (`excess_log_p`): exact p-values, the false-alarm bound
kept under no drift, delays near the information limit, the change point and the regression variant."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.monitor import MonitorSettings
from services.monitor.core import ErrorStream
from services.monitor.core.budget import error_test_alpha, excess_log_p


def _fisher_log_p(hits: int, n: int, ref_hits: int, ref_n: int) -> float:
    """The one-sided Fisher p-value by brute force (exact integers)."""
    total, pool = hits + ref_hits, n + ref_n
    tail = sum(math.comb(total, k) * math.comb(pool - total, n - k) for k in range(hits, min(n, total) + 1))
    return math.log(tail) - math.log(math.comb(pool, n))


@pytest.mark.parametrize(("hits", "n", "ref_hits", "ref_n"), [
    (3, 4, 0, 200), (5, 10, 50, 300), (30, 100, 120, 4000), (10, 10, 4, 4000), (299, 1000, 880, 4000),
    (40, 60, 1900, 2000),  # rates above one half
])
def test_the_window_test_is_fishers_exact_test_and_never_below_it(hits, n, ref_hits, ref_n):
    exact = _fisher_log_p(hits, n, ref_hits, ref_n)
    got = excess_log_p(hits, n, ref_hits, ref_n, stop_above=0.0)
    assert got == pytest.approx(exact, rel=1e-9, abs=1e-9)
    assert got >= exact - 1e-9  # a p-value never reported smaller than it is


def test_the_window_test_answers_no_excess_and_stops_early_above_the_level():
    assert excess_log_p(1, 100, 50, 1000) == 0.0  # below the pooled rate
    assert excess_log_p(10, 100, 100, 1000) == 0.0  # at it
    early = excess_log_p(30, 100, 120, 4000, stop_above=-60.0)  # p ≈ e^-45.6: known above e^-60 at once
    assert early > -60.0


@pytest.mark.parametrize("check_every", [1, 3])
def test_the_tests_scheduled_spend_the_error_share_of_the_budget_and_no_more(monkeypatch, check_every):
    s = MonitorSettings(error_check_every=check_every, error_reference_labels=20)
    spent = []
    check = ErrorStream._check

    def counting(self, n, first, due):  # noqa: ANN001, ANN202
        spent.append(sum(math.exp(la) for _, la, _ in self._tests[:due]))
        return check(self, n, first, due)

    monkeypatch.setattr(ErrorStream, "_check", counting)
    stream, labels = ErrorStream(s), 2**14
    for i in range(labels):
        stream.update(1.0, i)  # every label an error: no test is skipped, none fires (no rise)
    per_label = s.false_alarms_per_100k / 100_000 * s.error_budget_share
    tested = labels - s.error_reference_labels
    assert sum(spent) <= tested * per_label * 1.001
    assert sum(spent) >= tested * per_label * 0.9  # the budget is used, not wasted
    assert error_test_alpha(1.0, 0.5, 8, 4) == pytest.approx(1e-5 * 0.5 * 8 / 4)


def _first_alarm(settings: MonitorSettings, errors: np.ndarray, *, relative: bool = False) -> int | None:
    stream = ErrorStream(settings, relative=relative)
    for i, e in enumerate(errors.tolist()):
        if stream.update(e, 1_000 * i) is not None:
            return i
    return None


def test_no_drift_keeps_the_false_alarm_bound_at_a_loose_budget():
    # a budget a thousand times the default, so alarms are frequent enough to count: the share of no-drift
    # streams with an alarm stays under the bound on the expected number (a plug-in rate or a normal
    # approximation for small windows would break it at these rates)
    s = MonitorSettings(false_alarms_per_100k=10.0)
    runs, labels = 40, 2_500
    bound = runs * labels * s.false_alarms_per_100k / 100_000 * s.error_budget_share  # 5 expected at most
    alarms = 0
    for seed, rate in enumerate([0.01, 0.1, 0.3, 0.6] * (runs // 4)):
        rng = np.random.default_rng(seed)
        alarms += _first_alarm(s, (rng.random(labels) < rate).astype(float)) is not None
    assert alarms <= bound


def _delays(p0: float, p1: float, seeds: int = 6, pre: int = 3_000, post: int = 3_000) -> list[int]:
    out = []
    for seed in range(seeds):
        rng = np.random.default_rng(100 + seed)
        errors = np.r_[rng.random(pre) < p0, rng.random(post) < p1].astype(float)
        at = _first_alarm(MonitorSettings(), errors)
        assert at is not None and at >= pre, (p0, p1, seed, at)
        out.append(at - pre + 1)
    return out


def test_a_total_failure_is_caught_in_a_handful_of_labels():
    assert max(_delays(0.0, 1.0)) <= 4
    assert max(_delays(0.05, 0.9)) <= 15


def test_a_small_rise_is_caught_near_the_information_limit():
    # 12 % → 23 % errors: Lorden's bound for a detector at the default level is log(1/level) / KL ≈ 400 labels
    p0, p1 = 0.12, 0.23
    kl = p1 * math.log(p1 / p0) + (1 - p1) * math.log((1 - p1) / (1 - p0))
    s = MonitorSettings()
    limit = math.log(1 / (s.false_alarms_per_100k / 100_000 * s.error_budget_share)) / kl
    assert float(np.median(_delays(p0, p1))) <= 1.5 * limit


def test_the_change_point_is_estimated_and_the_reference_frozen_there():
    rng = np.random.default_rng(7)
    errors = np.r_[rng.random(2_000) < 0.05, rng.random(1_000) < 0.5].astype(float)
    stream = ErrorStream(MonitorSettings())
    fired = [stream.update(e, 1_000 * i) for i, e in enumerate(errors.tolist())]
    first = next(i for i, v in enumerate(fired) if v is not None)
    assert abs(stream.change_point_ms - 2_000_000) <= 10_000  # within 10 labels
    assert stream.reference_error == pytest.approx(errors[:2_000].mean(), abs=0.01)
    assert fired[first] >= stream.reference_error + stream.settings.error_min_increase
    again = [i for i, v in enumerate(fired) if v is not None][1:]
    assert again and again[0] - first >= 100  # a persisting drift is reported again, not at every label


def test_a_drift_below_the_practical_margin_is_not_reported():
    s = MonitorSettings(error_min_increase=0.05)
    rng = np.random.default_rng(3)
    errors = np.r_[rng.random(3_000) < 0.10, rng.random(6_000) < 0.13].astype(float)  # +3 points only
    assert _first_alarm(s, errors) is None


def test_regression_tests_exceedances_scale_free_and_after_its_threshold_labels():
    s = MonitorSettings()
    rng = np.random.default_rng(5)
    base = np.abs(rng.normal(size=5_000))
    base[3_000:] *= 2.0  # the errors double at label 3,000
    at = {unit: _first_alarm(s, base * unit, relative=True) for unit in (1.0, 60.0, 0.001)}
    assert len(set(at.values())) == 1  # the same decision in minutes, seconds or thousandths
    assert 3_000 <= at[1.0] <= 3_000 + 60
    heavy = rng.standard_cauchy(6_000) ** 2  # no mean, no variance: still no alarm without a change
    assert _first_alarm(s, np.abs(heavy), relative=True) is None
