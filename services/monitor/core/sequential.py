"""Always-valid confidence sequences for the live judgement of a challenger (`services.monitor.core.judge`).

The test is the mixture sequential probability ratio test (mSPRT) with a normal mixture (Robbins 1970; Johari et
al. 2017, "Peeking at A/B tests"; Howard et al. 2021), in its one-sided form. For an estimate `θ̂` of the difference
with variance `V`, mixing the likelihood ratio over a half-normal prior of scale `τ` on the effect gives

    Λ⁺(θ₀) = 2·sqrt(V / (V + τ²)) · exp(τ²(θ̂ - θ₀)² / (2V(V + τ²))) · Φ(τ(θ̂ - θ₀) / sqrt(V(V + τ²)))

a nonnegative (super)martingale under θ ≤ θ₀, so by Ville's inequality it ever reaches 1/α with probability at
most α — whenever one looks, and however often. The set of θ₀ it has not rejected is the lower bound
`θ̂ - w(V)`; the mirror image gives the upper bound `θ̂ + w(V)`. Each bound holds at level α on its own, which is
what each decision needs (promote on the lower bound, retire on the upper one): the false-promotion rate of a
challenger no better than required is at most α, however long it is watched.

`V` is plugged in from the running variance (the "asymptotic confidence sequence" of Waudby-Smith et al. 2021:
valid as the labelled rows grow; the judge waits for `min_labels` first, and classification rows carry two
pseudo-rows of prior variance so a short run of identical outcomes cannot make the interval collapse). The prior
scale is set, as those papers suggest, so that the interval is tightest near `tuned_rows` labelled rows:
τ² / V = ρ² · rows with ρ² = (2·log(1/α) + log(1 + 2·log(1/α))) / tuned_rows.

Why not a library: `confseq` (the reference implementation) builds a C++ extension with no wheel for this Python,
and `savvi` brings cvxpy for its regression tests; the bound itself is the dozen lines below (pure Python, one
Newton solve per look, measured by the seeded simulations in tests/monitor/test_monitor_judge.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Interval", "Running", "mixture_halfwidth", "paired_interval", "two_sample_interval"]

_SQRT2 = math.sqrt(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)


@dataclass(slots=True)
class Running:
    """Count, mean and sum of squared deviations of a stream (Welford's update: stable, O(1) memory)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def variance(self, prior_m2: float = 0.0, prior_rows: int = 0) -> float:
        """The sample variance, with `prior_rows` pseudo-rows contributing `prior_m2` of squared deviation."""
        dof = self.n - 1 + prior_rows
        return (self.m2 + prior_m2) / dof if dof > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Interval:
    """A difference (> 0: the challenger is better) with its always-valid one-sided bounds."""

    estimate: float
    low: float
    high: float


def _z(r: float) -> float:
    """The z > 0 with z²/2 + log Φ(z) = r (r > 0): Newton from the Φ ≈ 1 solution, a few steps."""
    z = math.sqrt(2.0 * r)
    for _ in range(50):
        cdf = 0.5 * math.erfc(-z / _SQRT2)
        pdf = math.exp(-0.5 * z * z) / _SQRT2PI
        step = (0.5 * z * z + math.log(cdf) - r) / (z + pdf / cdf)
        z -= step
        if abs(step) < 1e-12:
            break
    return z


def mixture_halfwidth(variance: float, rows: float, alpha: float, tuned_rows: int) -> float:
    """How far a one-sided level-`alpha` bound lies from the estimate: `variance` is the estimate's variance (V),
    `rows` the labelled rows it rests on (the mixture's clock)."""
    if variance <= 0.0 or rows <= 0:
        return 0.0
    log_inv = math.log(1.0 / alpha)
    rho2 = (2.0 * log_inv + math.log1p(2.0 * log_inv)) / tuned_rows
    q = rho2 * rows  # τ² / V
    r = log_inv - math.log(2.0) + 0.5 * math.log1p(q)
    return math.sqrt(variance * (1.0 + q) / q) * _z(r)


def paired_interval(diff: Running, alpha: float, tuned_rows: int, prior_m2: float = 0.0,
                    prior_rows: int = 0) -> Interval:
    """The mean per-row difference of two models scored on the same rows (shadow, guard)."""
    v = diff.variance(prior_m2, prior_rows) / diff.n if diff.n else 0.0
    w = mixture_halfwidth(v, diff.n, alpha, tuned_rows) if diff.n else math.inf
    return Interval(diff.mean, diff.mean - w, diff.mean + w)


def two_sample_interval(champion: Running, challenger: Running, alpha: float, tuned_rows: int,
                        prior_m2: float = 0.0, prior_rows: int = 0) -> Interval:
    """The difference of means of two arms on different rows (canary): V = σ₁²/n₁ + σ₂²/n₂; the clock is the
    rows a paired test of the same precision would need, (σ₁² + σ₂²) / V (n for two arms of n rows each)."""
    if not champion.n or not challenger.n:
        return Interval(0.0, -math.inf, math.inf)
    va, vb = champion.variance(prior_m2, prior_rows), challenger.variance(prior_m2, prior_rows)
    v = va / champion.n + vb / challenger.n
    estimate = challenger.mean - champion.mean
    w = mixture_halfwidth(v, (va + vb) / v, alpha, tuned_rows) if v > 0 else 0.0
    return Interval(estimate, estimate - w, estimate + w)
