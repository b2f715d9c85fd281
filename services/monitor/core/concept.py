"""Concept drift on the error stream of one model version: joined labels give one error per prediction.

- binary and multiclass: the 0/1 error of the predicted label; a drift is a recent error rate above the earlier one.
- regression: the absolute error |prediction - label|; a drift is a recent mean absolute error (MAE) above the
  earlier one by the fraction `error_min_relative_increase` (an absolute increase cannot be one setting for every
  unit).

The test (ADWIN's idea, with its level taken from the false-alarm budget, `services.monitor.core.budget`): every
`error_check_every` labels, for each recent window in `error_windows` (smallest first), the window's errors are
compared with every error of the version before it. The drift is significant when the increase is at least the
practical margin (`error_min_increase` / `error_min_relative_increase`) and, at the test's level: binary errors,
the pooled two-sample z-test once both samples are large (n·p·(1-p) >= 100), else the window's exact lower
Chernoff bound above the earlier errors' upper one (each at half the level); regression, the same with normal
bounds. Label noise only dilutes the increase (the tests stay valid); label delay only
shifts when errors arrive.

On the first alarm the change point is estimated (the split that maximises the CUSUM of errors above the midpoint
of the two rates, as ADWIN's cut would) and the reference is frozen there, so post-change errors never become the
"before". A persisting drift is reported again every few windows, which lets the debounce re-ask after a rejected
retrain.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from services.monitor.core.budget import bernoulli_lcb, bernoulli_ucb, error_test_alpha, normal_quantile
from services.monitor.settings import MonitorSettings

# n * p * (1 - p) of the smaller sample from which the pooled two-sample z-test replaces the exact bounds (the
# normal approximation of a binomial tail is then good far out; below it the Chernoff bounds are used)
_NORMAL_ENOUGH = 100.0


class ErrorStream:
    """Errors of one model version: running totals, the last `max(error_windows)` errors, and the test."""

    __slots__ = ("_cum", "_cut", "_errors", "_log_inv", "_quiet_until", "_relative", "_windows", "_z", "_z_diff",
                 "change_point_ms", "labels", "reference_error", "settings", "total", "total_sq",
                 "window_start_ms")

    def __init__(self, settings: MonitorSettings, *, relative: bool = False):
        self.settings = settings
        self._relative = relative
        self._windows = tuple(sorted(settings.error_windows))
        cap = self._windows[-1]
        self._errors: deque[tuple[float, int]] = deque(maxlen=cap)  # (error, prediction time)
        self._cum: deque[tuple[float, float]] = deque(maxlen=cap + 1)  # (sum, sum of squares) after each label
        self._cum.append((0.0, 0.0))
        alpha = error_test_alpha(settings.false_alarms_per_100k, settings.error_budget_share,
                                 settings.error_check_every, len(self._windows))
        self._log_inv = math.log(2.0 / alpha)  # each side of a test gets half its level
        self._z = normal_quantile(alpha / 2.0)
        self._z_diff = normal_quantile(alpha)  # one-sided two-sample test at the whole level
        self._cut: tuple[int, float, float] | None = None  # (labels, sum, sum sq) at the estimated change point
        self._quiet_until = 0
        self.labels = 0
        self.total = 0.0
        self.total_sq = 0.0
        self.reference_error: float | None = None  # error rate or MAE before the drift (None: not enough labels)
        self.change_point_ms = 0  # stream time of the estimated change point (0: none yet)
        self.window_start_ms = 0  # the window that fired

    def update(self, error: float, t_ms: int) -> float | None:
        """Add one error; the recent error (rate or MAE) when a concept drift is significant, else None."""
        self.labels = n = self.labels + 1
        self.total += error
        self.total_sq += error * error
        self._errors.append((error, t_ms))
        self._cum.append((self.total, self.total_sq))
        s = self.settings
        if n < s.error_reference_labels:
            return None
        if self._cut is None:
            self.reference_error = self.total / n
        if n % s.error_check_every or n < self._quiet_until:
            return None
        return self._check(n)

    def recent_mean(self, w: int) -> float | None:
        """Mean error of the last `w` labels (fewer if not yet seen; None before any)."""
        cum = self._cum
        k = min(w, len(cum) - 1)
        return (cum[-1][0] - cum[-1 - k][0]) / k if k else None

    def _check(self, n: int) -> float | None:
        s = self.settings
        cum = self._cum
        total, total_sq = cum[-1]
        for w in self._windows:
            if w >= len(cum):
                break
            ref_n, ref_s, ref_q = n - w, *cum[-1 - w]
            if self._cut is not None and self._cut[0] < ref_n:
                ref_n, ref_s, ref_q = self._cut
            if ref_n < s.error_reference_labels:
                continue
            recent = (total - cum[-1 - w][0]) / w
            before = ref_s / ref_n
            if not self._significant(recent, (total_sq - cum[-1 - w][1]) / w, w, before, ref_q / ref_n, ref_n):
                continue
            self.window_start_ms = self._errors[-w][1]
            if self._cut is None:
                self._estimate_change_point(n, before, recent)
            self._quiet_until = n + 2 * self._windows[0]
            return recent
        return None

    def _significant(self, recent: float, recent_sq: float, w: int, before: float, before_sq: float,
                     ref_n: int) -> bool:
        s = self.settings
        if self._relative:
            if recent < before * (1.0 + s.error_min_relative_increase):
                return False
            sd_r = math.sqrt(max(recent_sq - recent * recent, 0.0) / w)
            sd_b = math.sqrt(max(before_sq - before * before, 0.0) / ref_n)
            return recent - self._z * sd_r > before + self._z * sd_b
        if recent - before < s.error_min_increase:
            return False
        pooled = (recent * w + before * ref_n) / (w + ref_n)
        spread = pooled * (1.0 - pooled)
        if min(w, ref_n) * spread >= _NORMAL_ENOUGH:  # both samples large: the two-sample z-test is far sharper
            return recent - before > self._z_diff * math.sqrt(spread * (1.0 / w + 1.0 / ref_n))
        return bernoulli_lcb(recent, w, self._log_inv) > bernoulli_ucb(before, ref_n, self._log_inv)

    def _estimate_change_point(self, n: int, before: float, recent: float) -> None:
        """Freeze the reference at the most likely change point among the buffered errors."""
        errors = np.fromiter((e for e, _ in self._errors), dtype=np.float64, count=len(self._errors))
        excess = errors - (before + recent) / 2.0
        tail = np.cumsum(excess[::-1])[::-1]  # tail[i]: excess from i to the end
        i = int(np.argmax(tail))
        self.change_point_ms = self._errors[i][1]
        at = n - len(errors) + i  # labels before the change point
        s, q = self._cum[-1 - (n - at)]
        if at >= self.settings.error_reference_labels:  # else the reference keeps growing (a drift this early
            self._cut = (at, s, q)                      # can only be judged against what came before its window)
            self.reference_error = s / at

    def recent_error(self) -> float | None:
        """The error rate (or MAE) over the latest `window_size` labels once that many were seen, else None."""
        w = self.settings.window_size
        return self.recent_mean(w) if self.labels >= w else None
