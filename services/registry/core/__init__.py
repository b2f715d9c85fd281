"""The registry's transport-free core: the event-sourced state, the champion/challenger gate (by each model's
declared policy), the commands that change the state, and the readable views (model card, diff). Plain values in
and out; no Kafka, gRPC or protobuf."""

from __future__ import annotations

from services.registry.core.cards import diff, diff_text, flatten, model_card
from services.registry.core.gate import GateDecision, GatePolicy, decide, score
from services.registry.core.judging import FetchArtifact
from services.registry.core.registry import Announce, CurrentRevision, Persist, Registry, require
from services.registry.core.rollout import LIVE_VERDICTS, MONITOR
from services.registry.core.state import (
    BYO_FRAMEWORK,
    CHALLENGER_KEY,
    GUARD,
    AuditEntry,
    CandidateInfo,
    Event,
    Holdout,
    LineageInfo,
    ModelSummary,
    Promotion,
    Range,
    RegistryState,
    Status,
    Verdict,
    VersionState,
)

__all__ = [
    "BYO_FRAMEWORK", "CHALLENGER_KEY", "GUARD", "LIVE_VERDICTS", "MONITOR", "Announce", "AuditEntry", "CandidateInfo",
    "CurrentRevision", "Event", "FetchArtifact", "GateDecision", "GatePolicy", "Holdout", "LineageInfo",
    "ModelSummary", "Persist", "Promotion", "Range", "Registry", "RegistryState", "Status", "Verdict", "VersionState",
    "decide", "diff", "diff_text", "flatten", "model_card", "require", "score",
]
