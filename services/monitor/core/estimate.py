"""Performance before labels (confidence-based, as NannyML's CBPE): the expected accuracy of a classifier from its
confidence, calibrated on the version's first labelled predictions.

Confidence is the predicted class's probability (binary: max(score, 1 - score); multiclass: the score, which is
the top class's probability). The first `estimate_reference_labels` joined labels of a version fill a histogram of
confidence bins with how often the prediction was right (histogram binning, a calibration that needs no fitting);
until then a bin's raw confidence stands in. The estimate is the mean calibrated confidence of the last
`estimate_window` predictions — it needs no label, so it moves as soon as the inputs move the confidence; a pure
concept drift (same inputs, new labels) is, by construction, invisible to it.
"""

from __future__ import annotations

from collections import deque

import numpy as np

_BINS = 10


class PerformanceEstimator:
    """Expected accuracy of one classifier version from its confidence."""

    __slots__ = ("_correct", "_counts", "_labelled", "_recent", "_reference_labels", "_seen", "_window")

    def __init__(self, window: int, reference_labels: int):
        self._window = window
        self._reference_labels = reference_labels
        self._recent: deque[int] = deque()  # bin of each recent prediction
        self._counts = [0] * _BINS  # recent predictions per bin (a list: cheaper than numpy per item)
        self._correct = np.zeros(_BINS)  # reference: right predictions per bin
        self._seen = np.zeros(_BINS)  # reference: labelled predictions per bin
        self._labelled = 0

    @staticmethod
    def confidence(score: float, binary: bool) -> float:
        return max(score, 1.0 - score) if binary else score

    @staticmethod
    def _bin(conf: float) -> int:
        return min(_BINS - 1, max(0, int(conf * _BINS)))

    def add_prediction(self, conf: float) -> None:
        b = int(conf * _BINS)
        b = _BINS - 1 if b >= _BINS else (0 if b < 0 else b)
        recent = self._recent
        recent.append(b)
        counts = self._counts
        counts[b] += 1
        if len(recent) > self._window:
            counts[recent.popleft()] -= 1

    def add_predictions(self, scores: np.ndarray, binary: bool) -> None:
        """`add_prediction` for each score's confidence in turn, binned at once (the scores must be finite)."""
        s = np.asarray(scores, dtype=np.float64)
        conf = np.maximum(s, 1.0 - s) if binary else s
        # int() truncates toward zero, as astype does; clipped first so that no value overflows
        bins = np.clip(np.clip(conf * _BINS, -1.0, float(_BINS)).astype(np.int64), 0, _BINS - 1)
        recent, counts = self._recent, self._counts
        recent.extend(bins.tolist())
        for b, c in enumerate(np.bincount(bins, minlength=_BINS).tolist()):
            counts[b] += c
        for _ in range(len(recent) - self._window):
            counts[recent.popleft()] -= 1

    def add_label(self, conf: float, correct: bool) -> None:
        """A joined label calibrates its confidence bin (only the version's first labels: the reference)."""
        if self._labelled >= self._reference_labels:
            return
        self._labelled += 1
        b = self._bin(conf)
        self._seen[b] += 1
        self._correct[b] += correct

    @property
    def ready(self) -> bool:
        return bool(self._recent)

    def expected_accuracy(self) -> float:
        """Mean calibrated confidence of the recent predictions."""
        midpoints = (np.arange(_BINS) + 0.5) / _BINS
        # a bin with few reference labels leans on its raw confidence (a pseudo-count of 5)
        calibrated = (self._correct + 5 * midpoints) / (self._seen + 5)
        counts = np.asarray(self._counts, dtype=np.float64)
        n = counts.sum()
        return float((counts * calibrated).sum() / n) if n else float("nan")
