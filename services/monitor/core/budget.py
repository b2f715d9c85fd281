"""The false-alarm budget: one rate, split by a union bound (Bonferroni) over every test the monitor runs.

The guarantee, per model version and with no drift (errors and inputs independent and identically distributed):
the expected number of false alarms over N predictions is at most `N * false_alarms_per_100k / 100_000`, whatever
the dependence between the tests (a union bound needs none). How the rate is spent:
- the error stream (labels) gets `error_budget_share` of it. Every `error_check_every` labels it tests each recent
  window in `error_windows` against everything the version saw before that window; each test has
  `share * rate * check_every / len(windows)` (each label answers one prediction, so a label is charged as one).
- the data streams (each input feature, the score) share the rest: every `data_window_step` predictions each
  stream's last `window_size` values are compared with its reference window by a two-sample KS test at
  `(1 - share) * rate * step / streams`.
- detectors without a calibrated level (PSI, river's ADWIN / KSWIN / PageHinkley on features) are reported, but
  never ask for a retrain.
The binary error tests are exact (Chernoff bounds in KL form: no normal approximation, valid at any window size);
the regression error test and the KS test use their asymptotic distributions (valid for large windows).
"""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = ["bernoulli_lcb", "bernoulli_ucb", "error_test_alpha", "data_test_alpha", "normal_quantile"]

_PER = 100_000.0


def error_test_alpha(rate_per_100k: float, share: float, check_every: int, windows: int) -> float:
    """Significance of one error-stream test (one window at one check)."""
    return rate_per_100k / _PER * share * check_every / max(1, windows)


def data_test_alpha(rate_per_100k: float, share: float, step: int, streams: int) -> float:
    """Significance of one data-stream KS test (one stream at one step)."""
    return rate_per_100k / _PER * (1.0 - share) * step / max(1, streams)


def normal_quantile(upper_tail: float) -> float:
    """z with P(Z > z) = upper_tail."""
    return NormalDist().inv_cdf(1.0 - upper_tail)


def _kl(p: float, q: float) -> float:
    """Bernoulli KL(p || q)."""
    eps = 1e-12
    q = min(max(q, eps), 1 - eps)
    out = 0.0
    if p > 0:
        out += p * math.log(p / q)
    if p < 1:
        out += (1 - p) * math.log((1 - p) / (1 - q))
    return out


def bernoulli_ucb(mean: float, n: int, log_inv_alpha: float) -> float:
    """Upper confidence bound of a Bernoulli rate: P(true rate > bound) <= alpha (Chernoff, KL form)."""
    if n <= 0:
        return 1.0
    target = log_inv_alpha / n
    lo, hi = mean, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if _kl(mean, mid) > target:
            hi = mid
        else:
            lo = mid
    return hi


def bernoulli_lcb(mean: float, n: int, log_inv_alpha: float) -> float:
    """Lower confidence bound: P(true rate < bound) <= alpha."""
    if n <= 0:
        return 0.0
    return 1.0 - bernoulli_ucb(1.0 - mean, n, log_inv_alpha)
