"""Challengers on live traffic, as plain planning over the state: the events that end a model's second version,
the announcements of a second version, and what each of the monitor's verdicts changes. The Registry persists the
events and sends the announcements (`registry.py`); nothing here writes anything.

A verdict acts only on the versions it judged: its champion and challenger must be the model's current champion and
second version (a challenger in phase shadow/canary, the guard in phase guard), else it is stale and ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.registry.core.state import (
    GUARD,
    AuditEntry,
    Event,
    Promotion,
    RegistryState,
    Status,
    Verdict,
    VersionState,
)

__all__ = ["LIVE_VERDICTS", "MONITOR", "Ignored", "Plan", "ended", "pending_second", "plan_verdict",
           "second_announcement", "withdrawal"]

MONITOR = "monitor"  # the actor of every change a verdict makes
# what each phase may conclude (anything else is an invalid verdict)
LIVE_VERDICTS: Mapping[str, tuple[str, ...]] = {"shadow": ("promote", "retire"), "canary": ("promote", "retire"),
                                                GUARD: ("rollback", "keep")}


@dataclass(frozen=True)
class Plan:
    """What a verdict changes: events to persist (in order), then announcements to send."""

    events: list[Event]
    announcements: list[Promotion]


@dataclass(frozen=True)
class Ignored:
    """A verdict that changes nothing: `outcome` is stale (not about the current versions) or invalid."""

    outcome: str
    detail: str


def second_announcement(v: VersionState, champion_version: str, reason: str, at_ms: int) -> Promotion:
    """model.promoted of `v` as the model's second version (key "<model>/challenger", its role and share)."""
    c = v.candidate
    return Promotion(v.model_name, v.version, c.sha256, champion_version, reason, c.feature_names, "promote",
                     at_ms, v.role, v.traffic_fraction)


def withdrawal(v: VersionState, role: str, reason: str, at_ms: int) -> Promotion:
    """model.promoted action "retire" on "<model>/challenger": serving `v` in `role` ends."""
    c = v.candidate
    return Promotion(v.model_name, v.version, c.sha256, "", reason, c.feature_names, "retire", at_ms, role)


def _champion(v: VersionState, previous: str, reason: str, action: str, at_ms: int) -> Promotion:
    c = v.candidate
    return Promotion(v.model_name, v.version, c.sha256, previous, reason, c.feature_names, action, at_ms)


def ended(state: RegistryState, name: str, sequence: int, actor: str, why: str, at_ms: int
          ) -> tuple[list[Event], VersionState | None]:
    """The events that end the model's second version (if any) at `sequence`: a challenger is retired, a guard
    loses its role; one audit entry. Returns (events, the version as it was)."""
    old = state.second(name)
    if old is None:
        return [], None
    what = "challenger" if old.status == Status.CHALLENGER else "guard"
    return [old.with_status(Status.RETIRED, sequence),
            AuditEntry(name, sequence, old.version, "retire", actor, f"{what} ({old.role}) withdrawn: {why}", at_ms,
                       Status.RETIRED)], old


def _stale(state: RegistryState, v: Verdict) -> str:
    """Why the verdict is not about the model's current versions ("" when it is)."""
    champ, name = state.champion(v.model_name), v.model_name
    if v.phase == GUARD:
        guard = state.guard(name)
        if champ is None or guard is None:
            return f"{name!r} has no guard on live traffic"
        # the guard phase compares the new champion with the guard: either may be named the challenger
        if {v.champion_version, v.challenger_version} != {champ.version, guard.version}:
            return f"current champion v{champ.version} and guard v{guard.version}"
        return ""
    chal = state.challenger(name)
    if champ is None or chal is None:
        return f"{name!r} has no challenger on live traffic"
    if (v.champion_version, v.challenger_version, v.phase) != (champ.version, chal.version, chal.role):
        return f"current champion v{champ.version} and {chal.role} challenger v{chal.version}"
    return ""


def plan_verdict(state: RegistryState, v: Verdict, rollback_margin: float | None, sequence: int, at_ms: int
                 ) -> Plan | Ignored:
    """What `v` changes, starting at audit `sequence`; every audit entry carries the verdict as its evidence.
    `rollback_margin`: the model's declared margin (None: no guard after a promotion)."""
    if v.verdict not in LIVE_VERDICTS.get(v.phase, ()):
        return Ignored("invalid", f"verdict {v.verdict!r} in phase {v.phase!r} (expected one of "
                                  f"{dict(LIVE_VERDICTS)})")
    if stale := _stale(state, v):
        return Ignored("stale", f"verdict on champion v{v.champion_version} and {v.phase} v{v.challenger_version}"
                                f" is not about the {stale}")
    name = v.model_name
    champ = state.champion(name)
    assert champ is not None  # _stale checked it
    why = f"live {v.phase} verdict {v.verdict}: {v.reason or v.evidence()}"

    def audit(seq: int, version: str, action: str, status: str, command_id: str = "", previous: str = "",
              text: str = why) -> AuditEntry:
        return AuditEntry(name, seq, version, action, MONITOR, text, at_ms, status, command_id, previous, v)

    if v.phase != GUARD:
        chal = state.challenger(name)
        assert chal is not None
        if v.verdict == "retire":
            return Plan([chal.with_status(Status.RETIRED, sequence),
                         audit(sequence, chal.version, "retire", Status.RETIRED, v.verdict_id)],
                        [withdrawal(chal, chal.role, why, at_ms)])
        # promote: the challenger takes all traffic; the previous champion shadows it as the guard
        guarded = rollback_margin is not None
        old = champ.with_status(Status.RETIRED, sequence, role=GUARD if guarded else "", traffic_fraction=1.0)
        new = chal.with_status(Status.CHAMPION, sequence, promoted=True)
        events: list[Event] = [old, new, audit(sequence, new.version, "promote", Status.CHAMPION, v.verdict_id,
                                               champ.version)]
        announcements = [_champion(new, champ.version, why, "promote", at_ms)]
        if guarded:
            guard_why = (f"previous champion kept as the guard (mirrored 100%): v{new.version} is rolled back if "
                         f"worse than it by more than {rollback_margin:g} on live labels")
            events.append(audit(sequence + 1, old.version, GUARD, Status.RETIRED, text=guard_why))
            announcements.append(second_announcement(old, new.version, guard_why, at_ms))
        else:
            announcements.append(withdrawal(chal, chal.role, why, at_ms))
        return Plan(events, announcements)
    guard = state.guard(name)
    assert guard is not None
    if v.verdict == "keep":
        return Plan([guard.with_status(Status.RETIRED, sequence),
                     audit(sequence, champ.version, "keep", Status.CHAMPION, v.verdict_id,
                           text=f"{why}; guard v{guard.version} withdrawn")],
                    [withdrawal(guard, GUARD, why, at_ms)])
    # rollback: the guard is the champion again, the new one is rolled back, the guard role ends
    back = guard.with_status(Status.CHAMPION, sequence, promoted=True)
    return Plan([champ.with_status(Status.ROLLED_BACK, sequence), back,
                 audit(sequence, back.version, "rollback", Status.CHAMPION, v.verdict_id, champ.version)],
                [_champion(back, champ.version, why, "rollback", at_ms), withdrawal(guard, GUARD, why, at_ms)])


def pending_second(state: RegistryState, name: str, last: tuple[str, ...] | None, at_ms: int) -> Promotion | None:
    """On start: the announcement "<model>/challenger" needs that model.promoted does not end with (`last`: the
    (version, sha256, action, role) last announced on that key), or None when it is in step."""
    second = state.second(name)
    if second is None:
        if last is None or last[2] == "retire":
            return None
        gone = state.get(name, last[0])
        return withdrawal(gone, last[3], "withdrawn: no longer on live traffic", at_ms) if gone is not None else None
    if last is not None and last[:2] == (second.version, second.candidate.sha256) and last[2] != "retire" \
            and last[3] == second.role:
        return None
    entries = [a for a in state.audit_of(name) if a.version == second.version]
    champ = state.champion(name)
    return second_announcement(second, champ.version if champ else "", entries[-1].why if entries else "",
                               entries[-1].at_ms if entries else second.registered_at_ms)
