"""The drift monitor: for every declared model on its own, joins its labels to its predictions, watches features,
scores and errors for drift with river detectors and reference-vs-current window statistics (as its drift policy
says), and asks for a retrain of that model — once per drift episode."""

from services.monitor.core import (
    Detection,
    DriftMonitor,
    LabelEvent,
    ModelPolicy,
    MonitorConfig,
    MonitorObserver,
    Prediction,
    PredictionBlock,
    RetrainDecision,
)
from services.monitor.settings import MonitorSettings

__all__ = [
    "Detection",
    "DriftMonitor",
    "LabelEvent",
    "ModelPolicy",
    "MonitorConfig",
    "MonitorObserver",
    "MonitorSettings",
    "Prediction",
    "PredictionBlock",
    "RetrainDecision",
]
