"""Drift statistics for one stream of values: the latest window compared with a reference window (two-sample KS at
the level the false-alarm budget gives it; PSI on reference-quantile bins, reported), plus an optional river
detector on standardized values (reported only).

Phase 1 (reference): the first `window_size` values after a model-version change are the reference; they fix the
mean/std used to standardize (so detector thresholds are in units of the reference standard deviation and one
tuning fits every feature) and the PSI bin edges.
Phase 2 (live): every value goes to the detector; every `data_window_step` values the last `window_size` values
are compared with the reference.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
from mlops.definitions.model import DriftPolicy

from services.monitor.errors import UnknownDetector
from services.monitor.settings import MonitorSettings

DETECTORS = ("adwin", "kswin", "pagehinkley", "none")
DETECTOR_LABELS = {"adwin": "ADWIN", "kswin": "KSWIN", "pagehinkley": "PageHinkley"}
DEFAULT_ALPHA = DriftPolicy().alpha  # a model's drift policy gives its own


class _Step:
    """A river detector behind one call: `step(x) -> fired`."""

    def __init__(self, det: Any):
        self.det = det

    def step(self, x: float) -> bool:
        self.det.update(x)
        return bool(self.det.drift_detected)


class _AdwinStep(_Step):
    """ADWIN without the Python wrapper's per-update overhead: its Rust core answers `update(x) -> bool` (river
    0.26); on a detection the window is reset at once, as river does on the next update."""

    def step(self, x: float) -> bool:
        if self.det._helper.update(x):
            self.det._reset()
            return True
        return False


class _Strided(_Step):
    """Feeds every k-th value to an expensive detector (KSWIN runs a KS test per update)."""

    def __init__(self, det: Any, stride: int):
        super().__init__(det)
        self.stride = stride
        self._n = 0

    def step(self, x: float) -> bool:
        self._n += 1
        if self._n % self.stride:
            return False
        self.det.update(x)
        return bool(self.det.drift_detected)


def make_detector(name: str, settings: MonitorSettings, seed: int = 0, alpha: float = DEFAULT_ALPHA) -> _Step | None:
    """A fresh detector behind `step(x) -> fired`, or None for "none"; `alpha` is KSWIN's significance (the
    model's declared `drift.alpha`)."""
    from river import drift

    if name == "adwin":
        adwin = drift.ADWIN(delta=settings.adwin_delta)
        return _AdwinStep(adwin) if hasattr(adwin, "_helper") else _Step(adwin)
    if name == "pagehinkley":
        return _Step(drift.PageHinkley(
            min_instances=100, delta=settings.pagehinkley_delta, threshold=settings.pagehinkley_threshold,
            alpha=1.0, mode="both",
        ))
    if name == "kswin":
        kswin = drift.KSWIN(alpha=alpha, window_size=settings.kswin_window,
                            stat_size=settings.kswin_window // 3, seed=seed)
        return _Strided(kswin, settings.kswin_stride)
    if name == "none":
        return None
    raise UnknownDetector(name, DETECTORS)


def psi(reference_props: np.ndarray, edges: np.ndarray, current: np.ndarray, *, is_sorted: bool = False) -> float:
    """Population stability index of `current` against reference bin proportions (bins: interior `edges`)."""
    cur_sorted = current if is_sorted else np.sort(current)
    # bin counts from the sorted values: one search per edge instead of one per value
    cuts = np.searchsorted(cur_sorted, edges, side="left")
    counts = np.diff(np.concatenate(([0], cuts, [len(cur_sorted)])))
    cur = counts / max(1, len(cur_sorted))
    eps = 1e-4
    ref = np.clip(reference_props, eps, None)
    cur = np.clip(cur, eps, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def ks_statistic(sorted_ref: np.ndarray, current: np.ndarray, *, is_sorted: bool = False) -> float:
    """Two-sample Kolmogorov–Smirnov D: both empirical CDFs evaluated at every point of either sample (the sup of
    two right-continuous step functions is reached there). Sorted queries keep searchsorted cache-friendly."""
    cur = current if is_sorted else np.sort(current)
    n, m = len(sorted_ref), len(cur)
    at_cur = np.abs(np.searchsorted(sorted_ref, cur, side="right") / n - np.searchsorted(cur, cur, side="right") / m)
    at_ref = np.abs(np.searchsorted(sorted_ref, sorted_ref, side="right") / n
                    - np.searchsorted(cur, sorted_ref, side="right") / m)
    return float(max(at_cur.max(), at_ref.max()))


def ks_critical(n: int, m: int, alpha: float) -> float:
    """Asymptotic critical D of the two-sample KS test at significance `alpha`."""
    return math.sqrt(-0.5 * math.log(alpha / 2.0)) * math.sqrt((n + m) / (n * m))


class WindowResult:
    __slots__ = ("ks", "ks_critical", "psi", "window_start_ms")

    def __init__(self, psi_value: float, ks: float, ks_crit: float, window_start_ms: int):
        self.psi = psi_value
        self.ks = ks
        self.ks_critical = ks_crit
        self.window_start_ms = window_start_ms


class StreamStats:
    """Detector + windows for one stream (a feature, or the score) of one model version."""

    __slots__ = (
        "_buf", "_mean", "_inv_std", "_ref_props", "_ref_sorted", "_edges", "_window_start_ms", "_n", "_step",
        "detector", "detector_label", "name", "settings", "ready", "on_window", "_ks_crit", "seed",
        "detector_name", "alpha", "_step_n", "_starts", "ks_alpha", "_mark",
    )

    def __init__(self, name: str, detector_name: str, settings: MonitorSettings,
                 on_window: Callable[[StreamStats, WindowResult], None], seed: int = 0,
                 alpha: float = DEFAULT_ALPHA):
        self.name = name
        self.alpha = alpha  # significance of KSWIN (the model's declared drift.alpha; reported only)
        self.ks_alpha = alpha  # of the KS window test: set from the false-alarm budget (set_ks_alpha)
        self.settings = settings
        self.detector_name = detector_name
        self.detector_label = DETECTOR_LABELS.get(detector_name, detector_name)
        self.seed = seed
        self.detector: _Step | None = None
        self._step: Callable[[float], bool] | None = None
        self.ready = False  # reference complete
        self.on_window = on_window
        self._buf: list[float] = []
        self._n = settings.window_size
        self._step_n = min(settings.data_window_step, settings.window_size)
        self._starts: deque[int] = deque(maxlen=-(-settings.window_size // self._step_n))
        self._mark = True
        self._window_start_ms = 0
        self._mean = 0.0
        self._inv_std = 1.0
        self._ks_crit = ks_critical(settings.window_size, settings.window_size, alpha)

    def set_ks_alpha(self, alpha: float) -> None:
        """The level of this stream's KS test (its share of the false-alarm budget)."""
        self.ks_alpha = alpha
        self._ks_crit = ks_critical(self._n, self._n, alpha)

    def update(self, x: float, t_ms: int) -> bool:
        """Add one value; True when the online detector fired on it (the hot path: keep it lean)."""
        buf = self._buf
        if self._mark:  # the first value since the last test: windows start at such marks
            self._starts.append(t_ms)
            self._mark = False
        buf.append(x)
        step = self._step
        if step is None:  # reference phase, or no online detector
            if len(buf) >= self._n:
                if self.ready:
                    self._close_window()
                else:
                    self._set_reference()
            return False
        fired = step((x - self._mean) * self._inv_std)
        if len(buf) >= self._n:
            self._close_window()
        return fired

    def room(self) -> int:
        """Values that can be added before the next one fills the window (sets the reference or runs a test)."""
        return self._n - len(self._buf) - 1

    def extend(self, values: list[float], t_ms: int) -> list[tuple[int, float]]:
        """Add values that fill no window (at most `room()`), as `update` would one by one; the online detector's
        firings as (index in `values`, `mean_z` then)."""
        if not values:
            return []
        if self._mark:
            self._starts.append(t_ms)
            self._mark = False
        buf, step = self._buf, self._step
        if step is None:
            buf.extend(values)
            return []
        fired = []
        mean, inv_std = self._mean, self._inv_std
        for i, x in enumerate(values):
            buf.append(x)
            if step((x - mean) * inv_std):
                fired.append((i, self.mean_z))
        return fired

    def _set_reference(self) -> None:
        ref = np.asarray(self._buf, dtype=np.float64)
        self._buf = []
        self._starts.clear()
        self._mark = True
        self._mean = float(ref.mean())
        std = float(ref.std())
        self._inv_std = 1.0 / std if std > 1e-12 else 1.0
        self._ref_sorted = np.sort(ref)
        qs = np.quantile(ref, np.linspace(0, 1, self.settings.psi_bins + 1)[1:-1])
        self._edges = np.unique(qs)
        counts = np.bincount(np.searchsorted(self._edges, ref, side="right"), minlength=len(self._edges) + 1)
        self._ref_props = counts / len(ref)
        self.detector = make_detector(self.detector_name, self.settings, self.seed, self.alpha)
        self._step = self.detector.step if self.detector is not None else None
        self.ready = True

    def _close_window(self) -> None:
        buf = self._buf
        self._window_start_ms = self._starts[0]
        cur = np.sort(np.asarray(buf, dtype=np.float64))
        result = WindowResult(
            psi(self._ref_props, self._edges, cur, is_sorted=True),
            ks_statistic(self._ref_sorted, cur, is_sorted=True), self._ks_crit,
            self._window_start_ms,
        )
        keep = self._n - self._step_n  # the next test's window overlaps this one
        del buf[:len(buf) - keep]
        self._mark = True
        self.on_window(self, result)

    @property
    def window_start_ms(self) -> int:
        return self._window_start_ms

    @property
    def mean_z(self) -> float:
        """Mean of the current (partial) window in reference standard deviations (the value reported on a fire)."""
        if not self._buf:
            return 0.0
        return (sum(self._buf) / len(self._buf) - self._mean) * self._inv_std
