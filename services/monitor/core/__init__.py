"""The monitor's transport-free core: plain predictions and labels in, retrain decisions out.

`drift` holds the `DriftMonitor` (every declared model on its own, and the debounce), `model_state` one model's
statistics, `policy` what the definitions say about each model, `concept` the error stream, `stats` the statistics
of one stream, `batch` a logged batch through them as columns, `join` the bounded label join, `judge` the live
judgement of a challenger (shadow, canary, guard) with the sequential test of `sequential`, and `domain` the plain
values they pass around.
"""

from services.monitor.core.concept import ErrorStream
from services.monitor.core.domain import Detection, LabelEvent, Prediction, PredictionBlock, RetrainDecision
from services.monitor.core.drift import DriftMonitor, MonitorObserver
from services.monitor.core.join import JoinCounts, LabelJoiner
from services.monitor.core.judge import ChallengerJudge, JudgedRow, Trial, Verdict, verdict_id
from services.monitor.core.model_state import SCORE_STREAM, ModelState
from services.monitor.core.policy import SIGNALS, ModelPolicy, MonitorConfig, model_id_field
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
    "ChallengerJudge",
    "SCORE_STREAM",
    "SIGNALS",
    "Detection",
    "DriftMonitor",
    "ErrorStream",
    "JoinCounts",
    "JudgedRow",
    "LabelEvent",
    "LabelJoiner",
    "ModelPolicy",
    "ModelState",
    "MonitorConfig",
    "MonitorObserver",
    "Prediction",
    "PredictionBlock",
    "RetrainDecision",
    "StreamStats",
    "Trial",
    "Verdict",
    "WindowResult",
    "ks_critical",
    "ks_statistic",
    "make_detector",
    "model_id_field",
    "psi",
    "verdict_id",
]
