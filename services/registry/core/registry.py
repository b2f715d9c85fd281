"""The registry's transport-free core: commands → events → persisted → applied; queries over the state.

Every command runs under one lock: validate against the current state, compute the events, persist them (the
caller's `persist` writes them to registry.log and waits for the acknowledgement), and only then apply them. A
command that raises has persisted nothing and changed nothing. A champion change is then announced; an announcement
that fails waits in an outbox and is re-sent (the change itself stands).

A model whose declared `rollout` is shadow or canary gets a passing candidate as its challenger on live traffic
(announced on "<model>/challenger"); the monitor's verdicts then promote, retire or roll back (`rollout.py`).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from mlops.definitions.model import RolloutMode
from mlops.definitions.revision import Revision

from services.registry.core import rollout
from services.registry.core.cards import diff, model_card
from services.registry.core.figures import Figure, figures
from services.registry.core.judging import FetchArtifact, declared, judge, rollout_of
from services.registry.core.state import (
    CHALLENGER_KEY,
    AuditEntry,
    CandidateInfo,
    Event,
    Holdout,
    ModelSummary,
    Promotion,
    RegistryState,
    Status,
    Verdict,
    VersionState,
)
from services.registry.errors import (
    AlreadyChampion,
    CommandConflict,
    DuplicateCandidate,
    GateRejected,
    InvalidCandidate,
    InvalidRequest,
    ModelNotFound,
    NoChampion,
    NoDefinitions,
    NothingToRollBack,
    VersionNotFound,
)

__all__ = ["Announce", "CurrentRevision", "FetchArtifact", "Persist", "Registry", "require"]

log = logging.getLogger("mlops.registry")

Persist = Callable[[list[Event]], None]
Announce = Callable[[Promotion], None]
CurrentRevision = Callable[[], Revision | None]  # the definitions revision in force, read once per command
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(eq=False)
class Registry:
    """Commands and queries over `state`. `persist` returns once the events are durable, `fetch` gives verified
    artifact bytes, `announce` tells the world of a new champion, `definitions` gives the revision in force (whose
    models' gate policies judge each candidate; a newer revision applies from the next command on)."""

    state: RegistryState
    fetch: FetchArtifact
    persist: Persist
    announce: Announce
    definitions: CurrentRevision
    actor: str = "registry"
    clock: Callable[[], int] = _now_ms
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)
    # the outbox: promotions persisted on registry.log whose announcement failed, by model (a newer one replaces
    # an older); re-sent by `announce_pending`, and rebuilt on restart by `recover_announcements`
    _pending: dict[str, Promotion] = field(default_factory=dict, init=False, repr=False)

    # --- commands ----------------------------------------------------------------------------------------------

    def register(self, cand: CandidateInfo, holdout: Holdout) -> VersionState:
        """Version a candidate, gate it against the champion on its holdout, promote or reject it."""
        self._validate(cand, holdout)
        with self._lock:
            dup = self.state.find_duplicate(cand.model_name, cand.candidate_id, cand.sha256)
            if dup is not None:
                raise DuplicateCandidate(cand.model_name, dup[0].version, dup[1])
            revision = self.definitions()
            if revision is None:
                raise NoDefinitions()
            champ = self.state.champion(cand.model_name)
            cand_metrics, champ_metrics, decision, slices = judge(self.fetch, cand, holdout, champ, revision)
            name, now = cand.model_name, self.clock()
            version, seq = self.state.next_version(name), self.state.next_sequence(name)
            policy = rollout_of(revision, name)
            # with no champion there is nothing to compare with on live traffic: the first passing one is promoted
            live = decision.promote and champ is not None and policy.mode is not RolloutMode.OFFLINE
            events: list[Event] = [AuditEntry(name, seq, version, "register", cand.registered_by or self.actor,
                                              _submission(cand), now, Status.CANDIDATE)]
            ended: VersionState | None = None
            if decision.promote:  # a new challenger or champion ends the model's second version (one at a time)
                gone, ended = rollout.ended(self.state, name, seq + 1, self.actor, f"replaced by v{version}", now)
                events += gone
            at = seq + 1 + (ended is not None)
            status = Status.CHALLENGER if live else Status.CHAMPION if decision.promote else Status.REJECTED
            why = decision.reason if not live else (
                f"{decision.reason}; on live traffic as a {policy.mode.value} challenger "
                f"({policy.traffic_fraction:.0%} of requests) until the monitor's verdict")
            new = VersionState(
                model_name=name, version=version, status=status, candidate=cand,
                gate_decision="challenger" if live else "promoted" if decision.promote else "rejected",
                gate_reason=decision.reason, gate_metrics=cand_metrics, champion_metrics=champ_metrics or {},
                champion_version_at_gate=champ.version if champ else "", registered_at_ms=now,
                promoted_sequence=at if status == Status.CHAMPION else 0, sequence=at,
                gate_definitions_revision=revision.number, slices=slices,
                role=policy.mode.value if live else "", traffic_fraction=policy.traffic_fraction if live else 0.0,
            )
            if status == Status.CHAMPION and champ is not None:
                events.append(champ.with_status(Status.RETIRED, at))
            events.append(new)
            events.append(AuditEntry(name, at, version, {Status.CHALLENGER: "challenger", Status.CHAMPION: "promote"}
                                     .get(status, "reject"), self.actor, why, now, status))
            self._commit(events)
            if live:
                self._announce(rollout.second_announcement(new, champ.version if champ else "", why, now))
            elif decision.promote:
                self._announce(Promotion(name, version, cand.sha256, champ.version if champ else "",
                                         decision.reason, cand.feature_names, "promote", now))
                if ended is not None:
                    self._announce(rollout.withdrawal(ended, ended.role, f"replaced by v{version}", now))
            log.info("candidate registered", extra={"fields": {
                "model": name, "version": version, "decision": new.gate_decision, "reason": decision.reason}})
            return new

    def promote(self, name: str, version: str, actor: str, reason: str, override_gate: bool = False,
                command_id: str = "") -> tuple[Promotion, int]:
        """Make `version` the champion. A version the gate rejected is refused unless `override_gate`, and the
        override is audited. A `command_id` already applied returns that first result and changes nothing."""
        with self._lock:
            if (done := self._replayed(command_id, name, "promote", version)) is not None:
                return done
            target = self.get(name, version)
            if target.status == Status.CHAMPION:
                raise AlreadyChampion(name, version)
            why = reason or "manual promotion"
            audit_why = why
            if target.gate_decision == "rejected":
                if not override_gate:
                    raise GateRejected(name, version, target.gate_reason)
                audit_why = f"{why} (override of a gate rejection: {target.gate_reason})"
            return self._crown(target, Status.RETIRED, "promote", actor, why, audit_why, command_id)

    def rollback(self, name: str, actor: str, reason: str, command_id: str = "") -> tuple[Promotion, int]:
        with self._lock:
            if (done := self._replayed(command_id, name, "rollback")) is not None:
                return done
            if name not in self.state.versions:
                raise ModelNotFound(name)
            target = self.state.rollback_target(name)
            if target is None:
                raise NothingToRollBack(name)
            champ = self.state.champion(name)
            why = reason or "manual rollback"
            return self._crown(target, Status.ROLLED_BACK, "rollback", actor, why,
                               f"{why} (from v{champ.version if champ else '-'})", command_id)

    def apply_verdict(self, verdict: Verdict) -> str:
        """Act on the monitor's live verdict (`rollout.plan_verdict`), once: its `verdict_id` is the command id,
        so a redelivered verdict changes nothing. Returns the outcome: applied | duplicate | stale | invalid (only
        "applied" changed anything; the others are logged)."""
        with self._lock:
            name = verdict.model_name
            if not verdict.verdict_id:
                outcome: str | rollout.Plan | rollout.Ignored = rollout.Ignored("invalid", "verdict_id is empty")
            elif verdict.verdict_id in self.state.commands:
                outcome = rollout.Ignored("duplicate", "already applied")
            elif name not in self.state.versions:
                outcome = rollout.Ignored("stale", f"unknown model {name!r}")
            else:
                outcome = rollout.plan_verdict(self.state, verdict, rollout_of(self.definitions(), name)
                                               .rollback_margin, self.state.next_sequence(name), self.clock())
            fields = {"model": name, "verdict_id": verdict.verdict_id, "verdict": verdict.verdict,
                      "champion": verdict.champion_version, "challenger": verdict.challenger_version}
            if isinstance(outcome, rollout.Ignored):
                log.warning("verdict ignored", extra={"fields": fields | {"outcome": outcome.outcome,
                                                                           "detail": outcome.detail}})
                return outcome.outcome
            self._commit(outcome.events)
            for promo in outcome.announcements:
                self._announce(promo)
            log.info("verdict applied", extra={"fields": fields | {"evidence": verdict.evidence()}})
            return "applied"

    def reannounce(self, dup: DuplicateCandidate) -> bool:
        """Announce again a champion the gate promoted when its candidate is delivered twice: a crash between
        registry.log and model.promoted leaves the promotion persisted but perhaps never announced."""
        with self._lock:
            existing = self.state.get(dup.name, dup.version)
            if dup.same_candidate and existing is not None and existing.status == Status.CHALLENGER:
                challenger = rollout.pending_second(self.state, dup.name, None, self.clock())
                if challenger is not None:
                    self._announce(challenger)
                return challenger is not None
            if not dup.same_candidate or existing is None or existing.status != Status.CHAMPION \
                    or existing.gate_decision != "promoted":
                return False
            c = existing.candidate
            self._announce(Promotion(c.model_name, existing.version, c.sha256, existing.champion_version_at_gate,
                                     existing.gate_reason, c.feature_names, "promote", existing.registered_at_ms))
            return True

    # --- the outbox: announcements of changes already durable on registry.log ----------------------------------

    def announced(self, name: str) -> bool:
        """Whether the latest champion change of `name` is announced (False: it waits in the outbox)."""
        with self._lock:
            return name not in self._pending

    def announce_pending(self) -> int:
        """Re-send every announcement that failed; returns how many still wait."""
        with self._lock:
            for promo in list(self._pending.values()):
                self._announce(promo)
            return len(self._pending)

    def recover_announcements(self, last_announced: Mapping[str, tuple[str, ...]]) -> int:
        """On start: a champion that is not the last (version, sha256[, ...]) announced on model.promoted under its
        model's key (a crash or a broker fault between registry.log and model.promoted) goes to the outbox and is
        re-sent; so does a second version (challenger, guard) not last announced under "<model>/challenger" as
        (version, sha256, action, role), or its withdrawal. Returns how many were missing."""
        with self._lock:
            for name in self.state.models():
                champ = self.state.champion(name)
                if champ is not None and last_announced.get(name, ())[:2] != (champ.version, champ.candidate.sha256):
                    self._pending[name] = self._promotion_of(champ)
                second = rollout.pending_second(self.state, name, last_announced.get(f"{name}/{CHALLENGER_KEY}"),
                                                self.clock())
                if second is not None:
                    self._pending[second.key] = second
            missing = len(self._pending)
            self.announce_pending()
            return missing

    def _announce(self, promo: Promotion) -> None:
        """Announce, or keep it in the outbox: the change is durable and applied, so the command has succeeded
        and must not report that nothing was applied."""
        try:
            self.announce(promo)
        except Exception as exc:
            self._pending[promo.key] = promo  # a newer change replaces an older one not yet announced
            log.error("announcement failed; kept in the outbox to re-send", extra={"fields": {
                "key": promo.key, "version": promo.version, "error": f"{type(exc).__name__}: {exc}"}})
            return
        self._pending.pop(promo.key, None)

    def _promotion_of(self, champ: VersionState) -> Promotion:
        """The announcement of `champ`, rebuilt from the state and the audit entry of the change that crowned it."""
        name, c = champ.model_name, champ.candidate
        entry = self.state.audit.get(name, {}).get(champ.promoted_sequence)
        previous = next((v.version for v in self.state.versions_of(name) if v.version != champ.version
                         and v.sequence == champ.promoted_sequence), "")
        action = entry.action if entry is not None and entry.action in ("promote", "rollback") else "promote"
        return Promotion(name, champ.version, c.sha256, previous, entry.why if entry else champ.gate_reason,
                         c.feature_names, action, entry.at_ms if entry else champ.registered_at_ms)

    def _replayed(self, command_id: str, name: str, action: str, version: str = "") -> tuple[Promotion, int] | None:
        """The first result of a command id already applied (a client's retry), or None for a new command."""
        first = self.state.commands.get(command_id) if command_id else None
        if first is None:
            return None
        if first.model_name != name or first.action != action or (version and first.version != version):
            raise CommandConflict(command_id, f"{first.action} of {first.model_name!r} v{first.version}")
        c = self.state.get(name, first.version).candidate  # type: ignore[union-attr]
        return Promotion(name, first.version, c.sha256, first.previous_version, first.why, c.feature_names,
                         action, first.at_ms), first.sequence

    # --- queries -----------------------------------------------------------------------------------------------

    def get(self, name: str, version: str) -> VersionState:
        if name not in self.state.versions:
            raise ModelNotFound(name)
        v = self.state.get(name, version)
        if v is None:
            raise VersionNotFound(name, version)
        return v

    def resolve(self, name: str, version: str = "") -> VersionState:
        """`version` of `name`, or its champion when no version is named."""
        with self._lock:
            if version:
                return self.get(name, version)
            champ = self.state.champion(name)
            if champ is not None:
                return champ
            if name not in self.state.versions:
                raise ModelNotFound(name)
            raise NoChampion(name)

    def summaries(self) -> list[ModelSummary]:
        with self._lock:
            return [self.state.summary(name) for name in self.state.models()]

    def versions(self, name: str, version: str = "") -> list[VersionState]:
        """One version of `name`, or all of them in version order when none is named."""
        with self._lock:
            if name not in self.state.versions:
                raise ModelNotFound(name)
            return [self.get(name, version)] if version else self.state.versions_of(name)

    def model_card(self, name: str, version: str = "") -> str:
        with self._lock:
            v = self.resolve(name, version)
            revision = self.definitions()
            return model_card(v, self.state.champion(name), self.state.audit_of(name), declared(revision, name),
                              revision.number if revision is not None else 0)

    def card_figures(self, name: str, version: str = "") -> list[Figure]:
        """The PNG figures the card of `version` (default: the champion) references, drawn from its reports."""
        with self._lock:
            v = self.resolve(name, version)
        return figures(v.candidate.explainability, v.slices)

    def diff(self, name: str, a: str, b: str) -> list[tuple[str, str, str]]:
        with self._lock:
            return diff(self.get(name, a), self.get(name, b))

    # --- internals ---------------------------------------------------------------------------------------------

    def _crown(self, target: VersionState, demote_to: Status, action: str, actor: str, why: str,
               audit_why: str, command_id: str = "") -> tuple[Promotion, int]:
        """Make `target` the champion, the current champion (if any) becoming `demote_to`; persist and announce."""
        name = target.model_name
        champ, second = self.state.champion(name), self.state.second(name)
        seq, now = self.state.next_sequence(name), self.clock()
        events: list[Event] = []
        if champ is not None:
            events.append(champ.with_status(demote_to, seq))
        events += [target.with_status(Status.CHAMPION, seq, promoted=True),
                   AuditEntry(name, seq, target.version, action, actor or "unknown", audit_why, now, Status.CHAMPION,
                              command_id, champ.version if champ else "")]
        self._commit(events)
        promo = Promotion(name, target.version, target.candidate.sha256, champ.version if champ else "", why,
                          target.candidate.feature_names, action, now)
        self._announce(promo)
        if second is not None and second.version == target.version:  # crowned by hand: no longer a second
            self._announce(rollout.withdrawal(second, second.role, why, now))
        return promo, seq

    def _commit(self, events: list[Event]) -> None:
        self.persist(events)  # raises → nothing applied
        for e in events:
            self.state.apply(e)

    @staticmethod
    def _validate(cand: CandidateInfo, holdout: Holdout) -> None:
        if not cand.model_name or "/" in cand.model_name:
            raise InvalidCandidate(f"model name {cand.model_name!r} is empty or contains '/'")
        if not cand.candidate_id:
            raise InvalidCandidate("candidate_id is empty")
        if not _SHA256.match(cand.sha256):
            raise InvalidCandidate(f"artifact_sha256 {cand.sha256!r} is not 64 lowercase hex digits")
        if not cand.feature_names:
            raise InvalidCandidate("feature_names is empty")
        n = len(holdout.y)
        if n == 0:
            raise InvalidCandidate("the holdout has no rows: the gate cannot score it")
        if holdout.X.shape != (n, len(holdout.feature_names)):
            raise InvalidCandidate(f"holdout features have shape {holdout.X.shape}, expected "
                                   f"({n}, {len(holdout.feature_names)})")


def _submission(cand: CandidateInfo) -> str:
    """The register audit entry's reason: what was submitted, and for whom."""
    if cand.byo:
        return f"bring-your-own ONNX candidate {cand.candidate_id} registered by {cand.registered_by}"
    return f"candidate {cand.candidate_id} for request {cand.lineage.retrain_request_id or '-'}"


def require(value: str, what: str) -> str:
    if not value:
        raise InvalidRequest(what)
    return value
