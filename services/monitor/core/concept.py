"""Concept drift on the error stream of one model version: joined labels give one error per prediction.

- binary and multiclass: the 0/1 error of the predicted label; a drift is a recent error rate above the earlier one
  by at least `error_min_increase`.
- regression: the absolute error |prediction - label|. The test runs on its 0/1 exceedances over a threshold, the
  95th percentile of the version's first `error_reference_labels` errors (those labels only set the threshold,
  so the test stays exact and free of units and of any assumption on the errors' law); a drift is also a recent
  mean absolute error (MAE) at least `error_min_relative_increase` above the earlier one.

The test is a scan of recent windows with its level taken from the false-alarm budget
(`services.monitor.core.budget`): for each window length L in `error_windows` (a geometric grid, 2 … 3,155 labels),
the last L errors are compared with every error of the version before them by `excess_log_p` — exact at any size
under no drift, and, with a long reference, the statistic of a Page CUSUM that knows the pre-change rate. A window
is tested every `error_check_every · 2^j` labels, 2^j ≈ L / (error_check_every · 8) (about eight tests while it
slides over its own length: a small window, which a large change needs, is tested at every label; a large one,
which a small change needs, rarely); the union bound over those tests sets each one's level. So a change is caught
about `log(1/level) / KL(new error rate || old)` labels after it — Lorden's bound for any detector with that
false-alarm rate, up to the grid's ~10 % — whatever the model, its error rate, the label noise (which only
dilutes the change) or the label delay (which only shifts when errors arrive).

On the first alarm the change point is estimated (the split that maximises the CUSUM of errors above the midpoint
of the two rates, as ADWIN's cut would) and the reference is frozen there, so post-change errors never become the
"before". A persisting drift is reported again every `_REPORT_EVERY` labels, which lets the debounce re-ask after a
rejected retrain.
"""

from __future__ import annotations

import math

import numpy as np

from services.monitor.core.budget import error_test_alpha, excess_log_p
from services.monitor.settings import MonitorSettings

_CHECKS_PER_WINDOW = 8  # tests of a window while it slides over its own length (more: less lag, a stricter level)
_REPORT_EVERY = 100  # labels between two reports of a drift that persists
_REGRESSION_QUANTILE = 0.95  # a high quantile gains more from a rise of large errors than the median; 0.95 as
# much as 0.9 from a small scale increase of the errors, and more from a large one
# the exact test is skipped when the normal approximation is this many nats short of the level: for a rate up to
# one half the upper tail of the window's count is heavier than the normal one, so this only saves time
_Z_SLACK = 4.0


class ErrorStream:
    """Errors of one model version: running totals over a ring of the last labels, and the scan test."""

    __slots__ = ("_cut", "_first", "_hits", "_origin", "_prefix", "_quiet_until", "_relative", "_ring", "_ring_err",
                 "_ring_hit", "_tests", "_threshold", "_times", "_top", "_windows", "change_point_ms", "labels",
                 "reference_error", "settings", "total", "window_start_ms")

    def __init__(self, settings: MonitorSettings, *, relative: bool = False):
        self.settings = settings
        self._relative = relative
        base = settings.error_check_every
        self._windows = sorted(set(settings.error_windows))
        # window i is tested when label n is a multiple of base·2^level[i]; levels rise with the window, so the
        # windows due at n are a prefix of the list: those whose level is at most the 2-adic valuation of n / base
        levels = [max(0, int(math.log2(max(1.0, w / (base * _CHECKS_PER_WINDOW))))) for w in self._windows]
        self._top = levels[-1]
        self._prefix = [sum(1 for lv in levels if lv <= k) for k in range(self._top + 1)]
        # each window gets an equal share of the budget per label: a test of a window tested rarely is allowed more
        log_alphas = [math.log(error_test_alpha(settings.false_alarms_per_100k, settings.error_budget_share,
                                                base * 2**lv, len(levels))) for lv in levels]
        # (window, log level, least squared z-score worth the exact test: see `_check`)
        self._tests = [(w, la, 2.0 * max(0.0, -la - _Z_SLACK)) for w, la in zip(self._windows, log_alphas,
                                                                                  strict=True)]
        # ring buffers indexed by label count k (k % size): running totals after k labels, and label k's time
        self._ring = max(self._windows[-1], settings.window_size) + 1
        self._ring_err = [0.0] * self._ring  # sum of errors (rate or MAE)
        self._ring_hit = self._ring_err if not relative else [0.0] * self._ring  # sum of 0/1 errors tested
        self._times = [0] * self._ring
        self._first: list[float] = []  # regression: the first errors, until the threshold is set
        self._threshold: float | None = None
        self._origin = settings.error_reference_labels if relative else 0  # labels before the tested stream
        self._hits = 0.0
        self._cut: tuple[int, float, float] | None = None  # (labels, error sum, hit sum) at the change point
        self._quiet_until = 0
        self.labels = 0
        self.total = 0.0
        self.reference_error: float | None = None  # error rate or MAE before the drift (None: not enough labels)
        self.change_point_ms = 0  # event time of the first label after the estimated change point (0: none yet)
        self.window_start_ms = 0  # the window that fired

    def update(self, error: float, t_ms: int) -> float | None:
        """Add one error, timed by its label's event time; the recent error (rate or MAE) when a concept drift is
        significant, else None."""
        self.labels = n = self.labels + 1
        self.total += error
        i = n % self._ring
        self._ring_err[i] = self.total
        self._times[i] = t_ms
        s = self.settings
        hit = error > 0
        if self._relative:
            hit = self._threshold is not None and error > self._threshold
            if self._threshold is None:
                self._first.append(error)
                if n == s.error_reference_labels:
                    self._threshold = float(np.quantile(self._first, _REGRESSION_QUANTILE))
                    self._first = []
            elif hit:
                self._hits += 1.0
            self._ring_hit[i] = self._hits
        if n < s.error_reference_labels:
            return None
        if self._cut is None:
            self.reference_error = self.total / n
        base = s.error_check_every
        if n % base or n < self._quiet_until:
            return None
        q = n // base
        due = self._prefix[min((q & -q).bit_length() - 1, self._top)]
        # windows tested at every label only after an error: after a correct label each holds no more errors than
        # the window of its length a label earlier (and skipping tests keeps the union bound)
        return self._check(n, self._prefix[0] if base == 1 and not hit else 0, due)

    def recent_mean(self, w: int) -> float | None:
        """Mean error of the last `w` labels (fewer if not yet seen; None before any)."""
        n = self.labels
        k = min(w, n, self._ring - 1)
        return (self.total - self._ring_err[(n - k) % self._ring]) / k if k else None

    def _check(self, n: int, first: int, due: int) -> float | None:
        s = self.settings
        ring, err, hit = self._ring, self._ring_err, self._ring_hit
        total_hit = hit[n % ring]
        cut = self._cut
        least_ref = s.error_reference_labels
        origin = self._origin
        for w, log_alpha, least_z2 in self._tests[first:due]:  # smallest first
            start = n - w
            if start - origin < least_ref:
                break
            if cut is not None and cut[0] < start:
                ref_n, ref_err, ref_hit = cut
            else:
                ref_n, ref_err, ref_hit = start, err[start % ring], hit[start % ring]
            recent = (self.total - err[start % ring]) / w
            before = ref_err / ref_n
            if self._relative:
                if recent < before * (1.0 + s.error_min_relative_increase):
                    continue
            elif recent - before < s.error_min_increase:
                continue
            hits = total_hit - hit[start % ring]
            ref_n -= origin
            pooled = (hits + ref_hit) / (w + ref_n)
            excess = hits - w * pooled
            if pooled <= 0.5 and excess * excess < least_z2 * w * pooled * (1.0 - pooled) * ref_n / (w + ref_n):
                continue
            if excess_log_p(hits, w, ref_hit, ref_n, log_alpha) > log_alpha:
                continue
            self.window_start_ms = self._times[(start + 1) % ring]
            if cut is None:
                self._estimate_change_point(n, ref_hit / ref_n, hits / w)
            self._quiet_until = n + _REPORT_EVERY
            return recent
        return None

    def _estimate_change_point(self, n: int, before: float, recent: float) -> None:
        """Freeze the reference at the most likely change point among the buffered errors (0/1 errors tested)."""
        ring, hit = self._ring, self._ring_hit
        k = min(n - self._origin, ring - 1)  # labels n-k+1 … n are buffered (and tested)
        cum = np.fromiter((hit[j % ring] for j in range(n - k, n + 1)), dtype=np.float64, count=k + 1)
        excess = np.diff(cum) - (before + recent) / 2.0
        tail = np.cumsum(excess[::-1])[::-1]  # tail[i]: excess from label n-k+1+i to the end
        at = n - k + int(np.argmax(tail))  # labels before the change point
        self.change_point_ms = self._times[(at + 1) % ring]
        if at - self._origin >= self.settings.error_reference_labels:  # else the reference keeps growing (a drift
            e, h = self._ring_err[at % ring], hit[at % ring]           # this early can only be judged against
            self._cut = (at, e, h)                                      # what came before its window)
            self.reference_error = e / at

    def recent_error(self) -> float | None:
        """The error rate (or MAE) over the latest `window_size` labels once that many were seen, else None."""
        w = self.settings.window_size
        return self.recent_mean(w) if self.labels >= w else None
