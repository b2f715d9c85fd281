"""The challenger judge's statistics on simulated live traffic (transport-free, seeded, deterministic).

Figures over many seeds: a challenger 5 accuracy points better is promoted, mostly within 500 labelled rows; an
equal or worse one is promoted in at most 1 - confidence of the seeds (the sequential test's guarantee, measured);
a guard rolls a worse new champion back; label noise, delay and early labels leave the guarantees intact. Run with
`-s` to see the distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from judge_sim import MODEL, canary_stream, judge, paired_stream, run
from mlops.definitions.model import RolloutPolicy, Task

from services.monitor import LabelEvent, MonitorSettings
from services.monitor.core import ChallengerJudge, ModelPolicy, Prediction
from services.monitor.core.sequential import Running, mixture_halfwidth, paired_interval

pytestmark = pytest.mark.slow  # hundreds of seeded streams: ~35 s of one core in all

SHADOW = RolloutPolicy(mode="shadow")  # confidence 0.95, min_improvement 0, min_labels 100, max_labels 5000
ALPHA = 1 - SHADOW.confidence


def labels_to_verdict(outcomes) -> str:  # noqa: ANN001
    n = [o.labels for o in outcomes]
    return f"median {np.median(n):.0f}, p90 {np.percentile(n, 90):.0f}, max {max(n)}"


# --- the bound ----------------------------------------------------------------------------------------------------

def _one_sided_mixture(x: float, v: float, tau2: float) -> float:
    """Λ⁺ at θ̂ - θ₀ = x, from its definition (services.monitor.core.sequential)."""
    return (2 * math.sqrt(v / (v + tau2)) * math.exp(tau2 * x * x / (2 * v * (v + tau2)))
            * 0.5 * math.erfc(-(math.sqrt(tau2) * x / math.sqrt(v * (v + tau2))) / math.sqrt(2)))


@pytest.mark.parametrize(("variance", "rows", "alpha"), [(0.1, 100, 0.05), (0.25, 1000, 0.05), (2.0, 300, 0.01)])
def test_the_halfwidth_is_where_the_mixture_martingale_reaches_one_over_alpha(variance, rows, alpha):
    tuned = 300
    v = variance / rows
    w = mixture_halfwidth(v, rows, alpha, tuned)
    log_inv = math.log(1 / alpha)
    tau2 = (2 * log_inv + math.log1p(2 * log_inv)) / tuned * rows * v
    assert _one_sided_mixture(w, v, tau2) == pytest.approx(1 / alpha, rel=1e-9)
    assert w > math.sqrt(v) * 1.6448  # always wider than the fixed-sample one-sided bound (the price of peeking)


def test_the_interval_narrows_as_labels_come_and_is_centred_on_the_mean():
    rng = np.random.default_rng(3)
    r, widths = Running(), []
    for x in rng.choice([-1.0, 0.0, 1.0], size=5000, p=[0.05, 0.85, 0.10]):
        r.add(float(x))
        if r.n in (200, 1000, 5000):
            ci = paired_interval(r, ALPHA, 300)
            assert ci.estimate == pytest.approx(r.mean) and ci.low < ci.estimate < ci.high
            assert ci.high - ci.estimate == pytest.approx(ci.estimate - ci.low)
            widths.append(ci.high - ci.low)
    assert widths[0] > widths[1] > widths[2]


# --- shadow: promotion, and the false-promotion rate ---------------------------------------------------------------

def test_a_challenger_5_points_better_is_promoted_within_500_labels_over_200_seeds():
    out = [run(judge(SHADOW), paired_stream(seed, 0.05, 0.10, 5000)) for seed in range(200)]
    verdicts = {o.verdict for o in out}
    within = np.mean([o.labels <= 500 for o in out])
    print(f"\n5 points better, 10 % discordant rows, 200 seeds: labels to promotion {labels_to_verdict(out)}, "
          f"{within:.0%} within 500")
    assert verdicts == {"promote"}
    assert np.median([o.labels for o in out]) <= 300 and within >= 0.8


@pytest.mark.parametrize(("delta", "discordant", "min_improvement"), [
    (0.0, 0.10, 0.0),  # as good as the champion
    (0.0, 0.03, 0.0),  # nearly the same model: few rows tell them apart
    (0.02, 0.10, 0.02),  # better, but exactly by the required improvement only
])
def test_an_equal_or_worse_challenger_is_promoted_in_at_most_1_minus_confidence_of_the_seeds(
        delta, discordant, min_improvement):
    seeds, max_labels = 200, 600  # the guarantee holds at any horizon (judge_sim.py measures 5,000 labels)
    rollout = RolloutPolicy(mode="shadow", min_improvement=min_improvement, max_labels=max_labels)
    out = [run(judge(rollout), paired_stream(seed, delta, discordant, max_labels + 10)) for seed in range(seeds)]
    promoted = sum(o.verdict == "promote" for o in out) / seeds
    print(f"\ndelta {delta:+.2f}, {discordant:.0%} discordant, min_improvement {min_improvement}: promoted in "
          f"{promoted:.1%} of {seeds} seeds (bound {ALPHA:.0%}); retired {sum(o.verdict == 'retire' for o in out)}")
    assert promoted <= ALPHA
    assert all(o.verdict == "retire" for o in out if o.verdict != "promote")  # never left undecided at max_labels


def test_a_clearly_worse_challenger_is_retired_early_on_its_upper_bound():
    out = [run(judge(SHADOW), paired_stream(seed, -0.05, 0.10, 5000)) for seed in range(50)]
    assert {o.verdict for o in out} == {"retire"}
    assert all(o.v.ci_high < 0 and "upper bound" in o.v.reason for o in out)
    print(f"\n5 points worse: labels to retirement {labels_to_verdict(out)}")
    assert np.median([o.labels for o in out]) < 500


def test_never_before_min_labels_and_undecided_at_max_labels_is_retired():
    rollout = RolloutPolicy(mode="shadow", min_labels=150, max_labels=400)
    huge = run(judge(rollout), paired_stream(1, 0.5, 0.5, 1000))  # 50 points better: decided at the first look
    assert (huge.verdict, huge.labels) == ("promote", 150)
    equal = run(judge(rollout), paired_stream(2, 0.0, 0.10, 1000))
    assert (equal.verdict, equal.labels) == ("retire", 400) and "max_labels=400" in equal.v.reason


# --- guard: rollback after a promotion -----------------------------------------------------------------------------

GUARD = RolloutPolicy(mode="shadow", rollback_margin=0.02, guard_labels=600)


def guard_stream(seed: int, guard_better_by: float, **kw):  # noqa: ANN003
    """After v2's promotion v1 is the guard: rows of v2 (champion) and v1 (guard) on the same requests."""
    return paired_stream(seed, guard_better_by, 0.15, 3000, role="guard", champion="2", second="1", **kw)


def test_a_guard_rolls_back_a_new_champion_worse_by_more_than_the_margin():
    out = [run(judge(GUARD), guard_stream(seed, 0.10)) for seed in range(100)]
    assert {o.verdict for o in out} <= {"rollback", "keep"}
    assert sum(o.verdict == "rollback" for o in out) >= 95  # (the few others: an unlucky sample within 600 rows)
    v = out[0].v
    assert (v.phase, v.champion_version, v.challenger_version, v.verdict_id) == ("guard", "2", "1", "m/1/guard")
    assert v.ci_low > GUARD.rollback_margin and v.difference > 0  # the previous champion (v1) is better
    print(f"\nnew champion 10 points worse: labels to rollback {labels_to_verdict(out)}")


@pytest.mark.parametrize("guard_better_by", [0.0, 0.02])  # as good, or worse by exactly the margin
def test_a_guard_keeps_a_champion_not_worse_than_the_margin_and_false_rollbacks_are_bounded(guard_better_by):
    seeds = 150
    out = [run(judge(GUARD), guard_stream(seed, guard_better_by)) for seed in range(seeds)]
    rolled_back = sum(o.verdict == "rollback" for o in out) / seeds
    print(f"\nguard better by {guard_better_by}: rolled back in {rolled_back:.1%} of {seeds} seeds")
    assert rolled_back <= ALPHA
    assert all(o.labels == GUARD.guard_labels for o in out if o.verdict == "keep")


def test_guard_rows_without_a_rollback_margin_are_not_judged():
    j = judge(RolloutPolicy(mode="shadow", rollback_margin=None))
    assert run(j, guard_stream(1, 0.3)).verdict is None
    assert j.counts.unjudged > 0 and not j.trials


# --- labels: noise, delay, early ---------------------------------------------------------------------------------

def test_late_labels_give_the_same_verdict_on_the_same_rows_and_early_ones_wait_for_their_rows():
    for seed in range(20):
        now = run(judge(SHADOW), paired_stream(seed, 0.05, 0.10, 3000))
        late = run(judge(SHADOW), paired_stream(seed, 0.05, 0.10, 3000, delay=300))
        assert (late.verdict, late.labels, late.v.ci_low) == (now.verdict, now.labels, now.v.ci_low)
        mixed = run(judge(SHADOW), paired_stream(seed, 0.05, 0.10, 3000, delay=300, early=0.3))
        assert mixed.verdict == "promote"  # labelled in another order: another stopping point, same verdict


def test_label_noise_slows_a_promotion_but_keeps_false_promotions_bounded():
    noisy = [run(judge(SHADOW), paired_stream(seed, 0.05, 0.10, 5000, noise=0.1)) for seed in range(100)]
    assert {o.verdict for o in noisy} == {"promote"}  # a flipped label flips both outcomes: the gap shrinks to 4 %
    print(f"\n5 points better, 10 % of labels flipped: labels to promotion {labels_to_verdict(noisy)}")
    rollout = RolloutPolicy(mode="shadow", max_labels=600)
    equal = [run(judge(rollout), paired_stream(seed, 0.0, 0.10, 610, noise=0.2)) for seed in range(100)]
    assert sum(o.verdict == "promote" for o in equal) / 100 <= ALPHA


# --- canary: two arms --------------------------------------------------------------------------------------------

def test_a_canary_is_judged_on_two_arms():
    canary = RolloutPolicy(mode="canary")
    better = [run(judge(canary), canary_stream(seed, 0.10, 20_000)) for seed in range(50)]
    assert {o.verdict for o in better} == {"promote"}
    v = better[0].v
    assert v.phase == "canary" and v.test.startswith("two-sample") and "canary and" in v.reason
    print(f"\ncanary 10 % of traffic, 10 points better: canary labels to promotion {labels_to_verdict(better)}")
    rollout = RolloutPolicy(mode="canary", max_labels=200)
    equal = [run(judge(rollout), canary_stream(seed, 0.0, 4_000)) for seed in range(60)]
    assert sum(o.verdict == "promote" for o in equal) / 60 <= ALPHA


# --- regression: per-row absolute error -------------------------------------------------------------------------

def test_a_regression_challenger_is_judged_on_its_absolute_error():
    policy = ModelPolicy(MODEL, task=Task.REGRESSION, rollout=SHADOW)
    j = ChallengerJudge(MonitorSettings(), lambda name: policy)
    rng = np.random.default_rng(0)
    for i in range(2000):
        y = float(rng.normal(30, 5))
        rid, t = f"r{i}", 1_000 + i
        j.observe_prediction(Prediction(rid, "e", MODEL, "1", {}, 0, y + rng.normal(0, 4), t, role="champion"))
        j.observe_prediction(Prediction(rid, "e", MODEL, "2", {}, 0, y + rng.normal(0, 2), t, role="shadow"))
        j.observe_label(MODEL, LabelEvent("e", t, y, request_id=rid))
        if verdicts := j.take_verdicts():
            break
    [v] = verdicts
    assert (v.verdict, v.metric) == ("promote", "mae")
    assert v.champion_metric > v.challenger_metric and v.difference == pytest.approx(
        v.champion_metric - v.challenger_metric)
