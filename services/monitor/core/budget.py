"""The false-alarm budget: one rate, split by a union bound (Bonferroni) over every test the monitor runs.

The guarantee, per model version and with no drift (errors and inputs independent and identically distributed —
exchangeable is enough for the error stream): the expected number of false alarms over N predictions is at most
`N * false_alarms_per_100k / 100_000`, whatever the dependence between the tests (a union bound needs none). How the
rate is spent:
- the error stream (labels) gets `error_budget_share` of it, split evenly over the recent windows it scans
  (`error_windows`, `services.monitor.core.concept`): a window tested every `check_every` labels has
  `share * rate * check_every / windows` per test (each label answers one prediction, so a label is charged as
  one). A window tested rarely (a long one) thus gets a larger level per test than one tested at every label.
- the data streams (each input feature, the score) share the rest: every `data_window_step` predictions each
  stream's last `window_size` values are compared with its reference window by a two-sample KS test at
  `(1 - share) * rate * step / streams`.
- detectors without a calibrated level (PSI, river's ADWIN / KSWIN / PageHinkley on features) are reported, but
  never ask for a retrain.
The error-stream test is exact at any window size (`excess_log_p`: Fisher's exact test, the conditional,
hypergeometric law of the window's errors given the pooled ones — no normal approximation, no estimated rate);
the KS test uses its asymptotic distribution (valid for windows of hundreds of values).
"""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = ["data_test_alpha", "error_test_alpha", "excess_log_p", "normal_quantile"]

_PER = 100_000.0


def error_test_alpha(rate_per_100k: float, share: float, check_every: int, windows: int) -> float:
    """Significance of one error-stream test (one of `windows` windows, tested every `check_every` labels)."""
    return rate_per_100k / _PER * share * check_every / max(1, windows)


def data_test_alpha(rate_per_100k: float, share: float, step: int, streams: int) -> float:
    """Significance of one data-stream KS test (one stream at one step)."""
    return rate_per_100k / _PER * (1.0 - share) * step / max(1, streams)


def normal_quantile(upper_tail: float) -> float:
    """z with P(Z > z) = upper_tail."""
    return NormalDist().inv_cdf(1.0 - upper_tail)


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def excess_log_p(hits: float, n: int, ref_hits: float, ref_n: int, stop_above: float = 0.0) -> float:
    """log p-value of "a window of `n` labels with `hits` errors has more errors than its reference of `ref_n`
    labels with `ref_hits`": Fisher's exact test, one-sided (0/1 errors, counted as integers).

    Exact under no drift, at any sizes, with no estimated rate: if the `n + ref_n` errors are exchangeable, then
    given their total the window's count is hypergeometric, and the p-value is its upper tail. 0.0 when the window's
    rate is not above the pooled one; a value above `stop_above` as soon as the p-value is known to exceed
    `exp(stop_above)` (the caller only asks whether it is below a level). The tail is summed until the rest is
    negligible, and a geometric bound of the rest is added, so the value is never below the true one.
    """
    x, total, pool = round(hits), round(hits + ref_hits), n + ref_n
    if x * pool <= total * n:
        return 0.0
    log_term = _log_choose(total, x) + _log_choose(pool - total, n - x) - _log_choose(pool, n)
    if log_term > stop_above:  # the p-value is at least P(X = x)
        return log_term
    acc = term = 1.0
    for k in range(x, min(n, total)):
        ratio = (total - k) * (n - k) / ((k + 1) * (pool - total - n + k + 1))  # falls as k rises (log-concave)
        term *= ratio
        acc += term
        if term < 1e-12 * acc:
            acc += term * ratio / (1.0 - ratio)  # the rest is below a geometric series of this ratio
            break
    return log_term + math.log(acc)
