"""The monitor's transport-free core: plain predictions and labels in, retrain decisions out.

`drift` holds the `DriftMonitor` (per-model detectors and the debounce), `stats` the statistics of one stream,
`join` the bounded label join and `domain` the plain values they pass around.
"""

from services.monitor.core.domain import Detection, LabelEvent, Prediction, RetrainDecision
from services.monitor.core.drift import SCORE_STREAM, DriftMonitor, MonitorObserver
from services.monitor.core.join import JoinCounts, LabelJoiner
from services.monitor.core.stats import (
    DETECTORS,
    StreamStats,
    WindowResult,
    ks_critical,
    ks_statistic,
    make_detector,
    psi,
)

__all__ = [
    "DETECTORS",
    "SCORE_STREAM",
    "Detection",
    "DriftMonitor",
    "JoinCounts",
    "LabelEvent",
    "LabelJoiner",
    "MonitorObserver",
    "Prediction",
    "RetrainDecision",
    "StreamStats",
    "WindowResult",
    "ks_critical",
    "ks_statistic",
    "make_detector",
    "psi",
]
