"""The registry's safety rules, on the core with an in-memory log (no broker): a gate-rejected version is promoted
only with an audited override; an announcement that fails after the change is persisted waits in the outbox (the
command succeeds) and is re-sent, also after a restart; a retried command id applies once and returns the first
result, also after a restart (the ids live in the event-sourced audit trail)."""

from __future__ import annotations

import pytest
from test_registry_core import World, cand, holdout

from services.registry.errors import CommandConflict, GateRejected, NotPromotable


@pytest.fixture(scope="module")
def models(onnx_model_factory) -> dict[str, bytes]:
    return {"t7": onnx_model_factory(7.0), "t9_5": onnx_model_factory(9.5), "t9_5b": onnx_model_factory(9.5, seed=1)}


def with_rejected(models) -> World:
    """v1 champion (threshold 9.5), v2 rejected by the gate (a worse model)."""
    w = World(models)
    w.registry.register(cand(models["t9_5"]), holdout(9.5))
    assert w.registry.register(cand(models["t7"]), holdout(9.5)).status == "rejected"
    return w


class FlakyAnnounce:
    """model.promoted that fails while `down`."""

    def __init__(self) -> None:
        self.down = False
        self.sent: list = []

    def __call__(self, promo) -> None:
        if self.down:
            raise RuntimeError("broker unreachable")
        self.sent.append(promo)


def test_a_gate_rejected_version_is_refused_without_the_override(models) -> None:
    w = with_rejected(models)
    log_before, audit_before = len(w.log), len(w.registry.state.audit_of("sea"))
    with pytest.raises(GateRejected, match="rejected by the gate .*does not beat champion v1") as exc:
        w.registry.promote("sea", "2", "alice", "I know better")
    assert isinstance(exc.value, NotPromotable)  # the edge maps it to FAILED_PRECONDITION
    assert len(w.log) == log_before and len(w.registry.state.audit_of("sea")) == audit_before
    assert w.registry.state.champion("sea").version == "1"


def test_the_override_promotes_it_and_is_audited(models) -> None:
    w = with_rejected(models)
    promo, seq = w.registry.promote("sea", "2", "alice", "hotfix", override_gate=True)
    assert (promo.version, promo.previous_version, promo.reason) == ("2", "1", "hotfix")
    assert w.registry.state.champion("sea").version == "2"
    entry = w.registry.state.audit_of("sea")[-1]
    assert (entry.sequence, entry.action, entry.actor, entry.version) == (seq, "promote", "alice", "2")
    assert entry.why.startswith("hotfix (override of a gate rejection: ") and "does not beat champion v1" in entry.why
    # the override survives a restart: the audit trail is on the log
    assert w.replay().state.audit_of("sea")[-1].why == entry.why


def test_a_failed_announcement_does_not_fail_the_persisted_command_and_is_resent(models) -> None:
    w = World(models)
    announce = FlakyAnnounce()
    w.registry.announce = announce
    w.registry.register(cand(models["t7"]), holdout(7.0))
    w.registry.register(cand(models["t9_5"]), holdout(9.5))
    announce.down = True
    promo, seq = w.registry.rollback("sea", "alice", "canary errors")  # persisted, announce fails: no exception
    assert w.registry.state.champion("sea").version == "1" and promo.version == "1"
    assert not w.registry.announced("sea") and w.registry.announce_pending() == 1
    announce.down = False
    assert w.registry.announce_pending() == 0 and w.registry.announced("sea")
    assert [(p.version, p.action) for p in announce.sent][-1] == ("1", "rollback")
    assert announce.sent[-1] == promo
    assert w.registry.announce_pending() == 0 and len(announce.sent) == 3  # nothing sent twice


def test_a_newer_change_replaces_an_unannounced_one(models) -> None:
    w = World(models)
    announce = FlakyAnnounce()
    w.registry.announce = announce
    w.registry.register(cand(models["t7"]), holdout(7.0))
    w.registry.register(cand(models["t9_5"]), holdout(9.5))
    announce.down = True
    w.registry.rollback("sea", "alice", "canary errors")
    announce.down = False
    w.registry.promote("sea", "2", "bob", "fixed")
    assert w.registry.announced("sea") and w.registry.announce_pending() == 0
    assert [(p.version, p.action) for p in announce.sent] == [("1", "promote"), ("2", "promote"), ("2", "promote")]


def test_after_a_restart_a_champion_not_on_model_promoted_is_resent(models) -> None:
    w = World(models)
    announce = FlakyAnnounce()
    w.registry.announce = announce
    w.registry.register(cand(models["t7"]), holdout(7.0))
    w.registry.register(cand(models["t9_5"]), holdout(9.5))
    announce.down = True
    w.registry.rollback("sea", "alice", "canary errors")  # persisted; the process dies before re-sending
    sha = {p.version: p.sha256 for p in announce.sent}
    last_on_topic = {"sea": ("2", sha["2"])}

    again = w.replay()
    resent = FlakyAnnounce()
    again.announce = resent
    assert again.recover_announcements(last_on_topic) == 1
    [p] = resent.sent
    assert (p.version, p.previous_version, p.action, p.sha256) == ("1", "2", "rollback", sha["1"])
    assert p.reason.startswith("canary errors")
    # a champion already last on model.promoted is not sent again
    third = w.replay()
    quiet = FlakyAnnounce()
    third.announce = quiet
    assert third.recover_announcements({"sea": ("1", sha["1"])}) == 0 and quiet.sent == []


def test_a_retried_command_id_applies_once_and_returns_the_first_result(models) -> None:
    w = World(models)
    w.registry.register(cand(models["t7"]), holdout(7.0))
    w.registry.register(cand(models["t9_5"]), holdout(9.5))
    w.registry.register(cand(models["t9_5b"]), holdout(9.5, seed=9))
    first, seq = w.registry.rollback("sea", "alice", "canary errors", command_id="cmd-1")
    audit_len, announced = len(w.registry.state.audit_of("sea")), len(w.promoted)
    again, seq_again = w.registry.rollback("sea", "alice", "canary errors", command_id="cmd-1")
    assert (again.version, again.previous_version, again.action, seq_again) == (first.version,
                                                                                 first.previous_version,
                                                                                 "rollback", seq)
    assert len(w.registry.state.audit_of("sea")) == audit_len and len(w.promoted) == announced
    # the ids survive a restart: they are in the audit entries on registry.log
    restarted = w.replay()
    after, seq_after = restarted.rollback("sea", "alice", "canary errors", command_id="cmd-1")
    assert (after.version, after.previous_version, seq_after) == (first.version, first.previous_version, seq)
    assert len(restarted.state.audit_of("sea")) == audit_len
    # a new id is a new rollback
    _, seq2 = restarted.rollback("sea", "alice", "again", command_id="cmd-2")
    assert seq2 > seq


def test_a_command_id_reused_for_another_command_is_refused(models) -> None:
    w = World(models)
    w.registry.register(cand(models["t7"]), holdout(7.0))
    w.registry.register(cand(models["t9_5"]), holdout(9.5))
    w.registry.rollback("sea", "alice", "x", command_id="cmd-1")
    with pytest.raises(CommandConflict, match="cmd-1"):
        w.registry.promote("sea", "2", "alice", "x", command_id="cmd-1")
    promo, _ = w.registry.promote("sea", "2", "alice", "x", command_id="cmd-p")
    assert w.registry.promote("sea", "2", "alice", "x", command_id="cmd-p")[0].version == promo.version
    with pytest.raises(CommandConflict):
        w.registry.promote("sea", "1", "alice", "x", command_id="cmd-p")
