"""The registry's state as plain values, rebuilt by applying events in log order (event sourcing).

Two kinds of events live on the compacted registry.log:
- VersionState, keyed "<model>/<version>": the full current state of one version. Compaction keeps the latest,
  which is all a rebuild needs (the champion is the version whose status is "champion"; rollback order comes from
  `promoted_sequence`).
- AuditEntry, keyed "<model>/audit/<sequence>": one per change, unique key, never overwritten, so compaction
  never removes the trail.

A model has at most one second version on live traffic beside its champion: a challenger (status "challenger",
role shadow | canary) or, after a live promotion, the previous champion kept as a guard (status "retired", role
"guard"). Both live in the versions' state, so a rebuild from registry.log knows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np
from mlops.evaluation import Explainability

from services.registry.core.slices import SliceReport

__all__ = [
    "BYO_FRAMEWORK", "CHALLENGER_KEY", "GUARD", "AuditEntry", "CandidateInfo", "Event", "Holdout", "LineageInfo",
    "ModelSummary", "Promotion", "Range", "RegistryState", "Status", "Verdict", "VersionState",
]

GUARD = "guard"  # the role of the previous champion kept beside a newly promoted one (the rollback guard)
CHALLENGER_KEY = "challenger"  # model.promoted key of a model's second version: "<model>/challenger"


class Status(StrEnum):
    """Where a version stands; the values are what registry.log and the API carry."""

    CANDIDATE = "candidate"
    CHALLENGER = "challenger"  # passed the gate; on live traffic (shadow or canary) until the monitor's verdict
    CHAMPION = "champion"
    REJECTED = "rejected"
    RETIRED = "retired"
    ROLLED_BACK = "rolled_back"


@dataclass(frozen=True)
class Range:
    topic: str
    partition: int
    start_offset: int
    end_offset: int


@dataclass(frozen=True)
class LineageInfo:
    feature_log_offsets: tuple[Range, ...] = ()
    label_offsets: tuple[Range, ...] = ()
    feature_set: str = ""
    feature_set_version: int = 0
    code_version: str = ""
    seed: int = 0
    row_count: int = 0
    data_start_ms: int = 0
    data_end_ms: int = 0
    retrain_request_id: str = ""
    retrain_reason: str = ""
    coalesced_request_ids: tuple[str, ...] = ()
    view_versions: tuple[tuple[str, int], ...] = ()  # every view the model read, with its version
    definitions_revision: int = 0
    requested_by: str = ""


BYO_FRAMEWORK = "onnx:byo"  # a bring-your-own ONNX model, checked and carried by the trainer
# where a bring-your-own candidate names who registered it, most specific first (the trainer copies the request's
# requester into the candidate's params)
REGISTRAR_PARAMS = ("registered_by", "requested_by")


@dataclass(frozen=True)
class CandidateInfo:
    model_name: str
    candidate_id: str
    sha256: str
    size: int = 0
    framework: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    feature_names: tuple[str, ...] = ()
    lineage: LineageInfo = LineageInfo()
    created_at_ms: int = 0
    holdout_rows: int = 0
    explainability: Explainability | None = None  # the trainer's report on the holdout (numbers; cards draw them)

    @property
    def byo(self) -> bool:
        return self.framework == BYO_FRAMEWORK

    @property
    def registered_by(self) -> str:
        """Who registered a bring-your-own candidate ("unknown" if its params do not say); empty if trained."""
        if not self.byo:
            return ""
        if self.lineage.requested_by:
            return self.lineage.requested_by
        return next((self.params[k] for k in REGISTRAR_PARAMS if self.params.get(k)), "unknown")


@dataclass(frozen=True)
class Holdout:
    feature_names: tuple[str, ...]
    X: np.ndarray  # float32 rows x k  # noqa: N815
    y: np.ndarray  # float64 0/1


@dataclass(frozen=True)
class VersionState:
    model_name: str
    version: str
    status: str
    candidate: CandidateInfo
    gate_decision: str = ""
    gate_reason: str = ""
    gate_metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] = field(default_factory=dict)
    champion_version_at_gate: str = ""
    registered_at_ms: int = 0
    promoted_sequence: int = 0
    sequence: int = 0  # sequence of the change that produced this state
    gate_definitions_revision: int = 0  # the definitions revision whose gate policy judged this version
    slices: SliceReport | None = None  # the gate's metrics per slice of the holdout, beside the champion's
    role: str = ""  # shadow | canary while a challenger, guard while the rollback guard; "" otherwise
    traffic_fraction: float = 0.0  # its share of requests while it has a role

    def with_status(self, status: str, sequence: int, promoted: bool = False, role: str = "",
                    traffic_fraction: float = 0.0) -> VersionState:
        """The version after a change; a role is kept only when given (every other change ends it)."""
        return replace(self, status=status, sequence=sequence, role=role,
                       traffic_fraction=traffic_fraction if role else 0.0,
                       promoted_sequence=sequence if promoted else self.promoted_sequence)


@dataclass(frozen=True)
class Verdict:
    """The monitor's live judgement of a model's second version (ChallengerVerdict on challenger.verdicts)."""

    model_name: str
    champion_version: str
    challenger_version: str
    phase: str  # shadow | canary | guard
    verdict: str  # promote | retire (phase shadow/canary) | rollback | keep (phase guard)
    verdict_id: str
    metric: str = ""
    champion_metric: float = 0.0
    challenger_metric: float = 0.0
    difference: float = 0.0  # challenger - champion, > 0 is better
    ci_low: float = 0.0
    ci_high: float = 0.0
    labelled_rows: int = 0
    test: str = ""
    confidence: float = 0.0
    reason: str = ""
    decided_at_ms: int = 0

    def evidence(self) -> str:
        """The figures in one line (audit reasons, cards)."""
        return (f"{self.metric or 'metric'} challenger v{self.challenger_version} {self.challenger_metric:.4f} vs "
                f"champion v{self.champion_version} {self.champion_metric:.4f}, difference {self.difference:+.4f} "
                f"(interval [{self.ci_low:+.4f}, {self.ci_high:+.4f}]) on {self.labelled_rows} labelled rows, "
                f"{self.test or 'sequential test'} at confidence {self.confidence:g}")


@dataclass(frozen=True)
class AuditEntry:
    model_name: str
    sequence: int
    version: str
    action: str  # register | promote | reject | rollback | retire | challenger | guard | keep
    actor: str
    why: str
    at_ms: int
    status: str
    command_id: str = ""  # the client's id of the command that made this change (a retry returns this change)
    previous_version: str = ""  # the champion this change replaced, for a promote or rollback
    evidence: Verdict | None = None  # the live verdict a decision of the monitor acted on


Event = VersionState | AuditEntry


@dataclass(frozen=True)
class Promotion:
    """What model.promoted announces."""

    model_name: str
    version: str
    sha256: str
    previous_version: str
    reason: str
    feature_names: tuple[str, ...]
    action: str  # promote | rollback | retire (a second version withdrawn)
    at_ms: int
    role: str = ""  # "": the champion; shadow | canary | guard: the model's second version
    traffic_fraction: float = 0.0

    @property
    def key(self) -> str:
        """The model.promoted key: the model for its champion, "<model>/challenger" for its second version."""
        return f"{self.model_name}/{CHALLENGER_KEY}" if self.role else self.model_name


@dataclass(frozen=True)
class ModelSummary:
    """One line of the model list."""

    name: str
    champion: VersionState | None
    latest: VersionState | None
    version_count: int
    updated_at_ms: int  # of the latest audited change
    challenger: VersionState | None = None  # the second version on live traffic (a challenger or the guard)


class RegistryState:
    """Versions, champions and the audit trail of every model; changed only by `apply`."""

    def __init__(self) -> None:
        self.versions: dict[str, dict[str, VersionState]] = {}
        self.audit: dict[str, dict[int, AuditEntry]] = {}
        self.sequence: dict[str, int] = {}
        self.commands: dict[str, AuditEntry] = {}  # command id → the change it made (rebuilt from the audit trail)

    def apply(self, event: Event) -> None:
        name = event.model_name
        self.sequence[name] = max(self.sequence.get(name, 0), event.sequence)
        if isinstance(event, VersionState):
            self.versions.setdefault(name, {})[event.version] = event
        else:
            self.audit.setdefault(name, {})[event.sequence] = event
            if event.command_id:
                self.commands[event.command_id] = event

    # --- queries ---------------------------------------------------------------------------------------------

    def models(self) -> list[str]:
        return sorted(set(self.versions) | set(self.audit))

    def versions_of(self, name: str) -> list[VersionState]:
        return sorted(self.versions.get(name, {}).values(), key=lambda v: int(v.version))

    def get(self, name: str, version: str) -> VersionState | None:
        return self.versions.get(name, {}).get(version)

    def champion(self, name: str) -> VersionState | None:
        return next((v for v in self.versions_of(name) if v.status == Status.CHAMPION), None)

    def challenger(self, name: str) -> VersionState | None:
        return next((v for v in self.versions_of(name) if v.status == Status.CHALLENGER), None)

    def guard(self, name: str) -> VersionState | None:
        return next((v for v in self.versions_of(name) if v.role == GUARD and v.status != Status.CHAMPION), None)

    def second(self, name: str) -> VersionState | None:
        """The version on live traffic beside the champion: its challenger, else its guard, else None."""
        return self.challenger(name) or self.guard(name)

    def next_version(self, name: str) -> str:
        return str(max((int(v) for v in self.versions.get(name, {})), default=0) + 1)

    def next_sequence(self, name: str) -> int:
        return self.sequence.get(name, 0) + 1

    def audit_of(self, name: str) -> list[AuditEntry]:
        return [self.audit[name][s] for s in sorted(self.audit.get(name, {}))]

    def summary(self, name: str) -> ModelSummary:
        versions = self.versions_of(name)
        return ModelSummary(name, self.champion(name), versions[-1] if versions else None, len(versions),
                            max((a.at_ms for a in self.audit_of(name)), default=0), self.second(name))

    def find_duplicate(self, name: str, candidate_id: str, sha256: str) -> tuple[VersionState, str] | None:
        for v in self.versions_of(name):
            if v.candidate.candidate_id == candidate_id:
                return v, f"candidate id {candidate_id}"
            if v.candidate.sha256 == sha256:
                return v, f"artifact sha256 {sha256}"
        return None

    def rollback_target(self, name: str) -> VersionState | None:
        """The most recently promoted earlier champion that was not itself rolled back."""
        champ = self.champion(name)
        current = champ.version if champ else None
        earlier = [v for v in self.versions_of(name)
                   if v.status == Status.RETIRED and v.promoted_sequence > 0 and v.version != current]
        return max(earlier, key=lambda v: v.promoted_sequence, default=None)
