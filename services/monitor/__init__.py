"""The drift monitor: joins labels to predictions, watches features, scores and errors for drift with river
detectors and reference-vs-current window statistics, and asks for a retrain — once per drift episode."""

from services.monitor.core import Detection, DriftMonitor, LabelEvent, MonitorObserver, Prediction, RetrainDecision
from services.monitor.settings import MonitorSettings

__all__ = [
    "Detection",
    "DriftMonitor",
    "LabelEvent",
    "MonitorObserver",
    "MonitorSettings",
    "Prediction",
    "RetrainDecision",
]
