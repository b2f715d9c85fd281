"""Concept drift on the error stream of one model version: joined labels give one error per prediction.

- binary and multiclass: the 0/1 error of the predicted label; the drift is confirmed when the recent error rate
  exceeds the version's reference rate by `error_min_increase` (an absolute rate, as before definitions).
- regression: the absolute error |prediction - label|. The ADWIN sees it divided by the reference mean absolute
  error (MAE), so the detector works in units of the version's own MAE whatever the label's unit (minutes, EUR),
  and the drift is confirmed when the recent MAE exceeds the reference MAE by the fraction
  `error_min_relative_increase`: an absolute increase cannot be one setting for every unit, and a 0/1 error of a
  real value would need a tolerance nobody declared.

Either way an ADWIN firing makes the stream *suspect* for two recent windows; the drift is confirmed (a strong
signal) when the recent error crosses the threshold within them.
"""

from __future__ import annotations

from collections import deque

from services.monitor.settings import MonitorSettings


class ErrorStream:
    """Errors of one model version: a reference, a recent window and an ADWIN on the (scaled) errors."""

    __slots__ = ("_recent", "_reference", "_relative", "_scale", "confirmed", "detector", "labels", "recent_sum",
                 "reference_error", "settings", "suspect")

    def __init__(self, settings: MonitorSettings, *, relative: bool = False):
        self.settings = settings
        self._relative = relative  # regression: thresholds relative to the reference MAE
        self._reference: list[float] = []
        self.reference_error: float | None = None  # error rate or MAE of the version's first labels
        self._scale = 1.0
        self._recent: deque[tuple[float, int]] = deque()  # (error, t_ms)
        self.recent_sum = 0.0
        self.detector: object | None = None
        self.suspect = 0  # labels left in which a detector firing may still be confirmed
        self.confirmed = False  # a confirmed episode is going on
        self.labels = 0

    def update(self, error: float, t_ms: int) -> float | None:
        """Add one error; the recent error (rate or MAE) when a concept drift is confirmed, else None."""
        s = self.settings
        self.labels += 1
        recent = self._recent
        recent.append((error, t_ms))
        self.recent_sum += error
        if len(recent) > s.error_recent_labels:
            self.recent_sum -= recent.popleft()[0]
        reference = self.reference_error
        if reference is None:
            self._set_reference(error)
            return None
        det = self.detector
        det.update(error * self._scale)  # type: ignore[attr-defined]
        if det.drift_detected:  # type: ignore[attr-defined]
            self.suspect = 2 * s.error_recent_labels
        if self.suspect:
            self.suspect -= 1
            current = self.recent_sum / len(recent)
            if len(recent) >= s.error_recent_labels and self._exceeds(current, reference):
                self.suspect = 0
                self.confirmed = True
                return current
        elif self.confirmed and self.labels % s.error_recent_labels == 0:
            # a confirmed episode that persists is reported again each recent window (the debounce suppresses
            # it until the cool-down / retrain timeout lets a new request through); it ends when the error is back
            current = self.recent_sum / len(recent)
            if self._exceeds(current, reference):
                return current
            self.confirmed = False
        return None

    def _set_reference(self, error: float) -> None:
        self._reference.append(error)
        if len(self._reference) < self.settings.error_reference_labels:
            return
        self.reference_error = sum(self._reference) / len(self._reference)
        if self._relative and self.reference_error > 1e-12:
            self._scale = 1.0 / self.reference_error
        from river import drift

        self.detector = drift.ADWIN(delta=self.settings.error_adwin_delta)

    def _exceeds(self, current: float, reference: float) -> bool:
        s = self.settings
        if self._relative:
            return current >= reference * (1.0 + s.error_min_relative_increase)
        return current - reference >= s.error_min_increase

    def recent_error(self) -> float | None:
        """The error rate (or MAE) of the recent window once it is full, else None."""
        n = len(self._recent)
        return self.recent_sum / n if n and n >= self.settings.error_recent_labels else None

    @property
    def window_start_ms(self) -> int:
        return self._recent[0][1] if self._recent else 0
