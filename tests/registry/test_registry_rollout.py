"""Unit tests of challengers on live traffic in the registry's core (no broker; the log is a list): a passing
candidate of a model declared `rollout: shadow|canary` becomes the challenger, announced on "<model>/challenger"
with its role; each of the monitor's verdicts is applied once (promote with the guard, retire, rollback, keep),
stale and invalid ones change nothing, every step is audited with the verdict as evidence, and a restart rebuilds
the challenger and the guard from registry.log (re-sending what was not announced)."""

from __future__ import annotations

from typing import Any

import pytest
from mlops import definitions as d
from mlops.bus import MemoryBus
from mlops.contracts import models_pb2
from mlops.security import promotion_verified
from mlops.topics import MODEL_PROMOTED
from pydantic import SecretStr
from registry_helpers import document
from test_registry_core import World, cand, holdout

from services.registry.convert import event_in, event_out, verdict_in, verdict_out
from services.registry.core import Verdict
from services.registry.edge import EventLog
from services.registry.errors import DuplicateCandidate


@pytest.fixture(scope="module")
def models(onnx_model_factory) -> dict[str, bytes]:
    return {"t7": onnx_model_factory(7.0), "t9_5": onnx_model_factory(9.5), "t9_5b": onnx_model_factory(9.5, seed=1),
            "t4": onnx_model_factory(4.0), "t3": onnx_model_factory(3.0)}


def with_rollout(**rollout: Any) -> d.Revision:
    """The test definitions with the `sea` model's rollout declared as `rollout`."""
    doc = document()
    for model in doc["models"]:
        if model["name"] == "sea":
            model["rollout"] = rollout
    revision = d.plan(None, d.parse(doc), "test").revision
    assert revision is not None
    return revision


def shadowing(models, **rollout: Any) -> World:
    """v1 champion (threshold 4), v2 (threshold 9.5, better on the 9.5 holdout) its challenger."""
    w = World(models)
    w.revision = with_rollout(**({"mode": "shadow"} | rollout))
    v1 = w.registry.register(cand(models["t4"]), holdout(4.0))
    assert v1.status == "champion"  # nothing to compare with on live traffic: promoted directly
    v2 = w.registry.register(cand(models["t9_5"]), holdout(9.5))
    assert v2.status == "challenger"
    return w


def verdict(champion: str, challenger: str, phase: str, outcome: str, **fields: Any) -> Verdict:
    verdict_id = fields.pop("verdict_id", f"sea/{challenger}/{phase}")
    figures = {"metric": "accuracy", "champion_metric": 0.80, "challenger_metric": 0.88, "difference": 0.08,
               "ci_low": 0.03, "ci_high": 0.13, "labelled_rows": 420, "test": "paired mSPRT", "confidence": 0.95,
               "reason": f"{outcome}: difference +0.08 [+0.03, +0.13] on 420 rows"} | fields
    return Verdict("sea", champion, challenger, phase, outcome, verdict_id, **figures)


def states(w: World) -> dict[str, tuple[str, str, float]]:
    return {v.version: (v.status, v.role, v.traffic_fraction) for v in w.registry.state.versions_of("sea")}


def sent(w: World) -> list[tuple[str, str, str, str, float]]:
    return [(p.key, p.version, p.action, p.role, p.traffic_fraction) for p in w.promoted]


def test_a_passing_candidate_becomes_the_shadow_challenger_announced_with_its_role(models) -> None:
    w = shadowing(models)
    assert states(w) == {"1": ("champion", "", 0.0), "2": ("challenger", "shadow", 1.0)}
    assert w.registry.state.champion("sea").version == "1"
    assert sent(w) == [("sea", "1", "promote", "", 0.0), ("sea/challenger", "2", "promote", "shadow", 1.0)]
    assert w.promoted[-1].previous_version == "1"  # the champion it is compared with
    entry = w.registry.state.audit_of("sea")[-1]
    assert (entry.version, entry.action, entry.status) == ("2", "challenger", "challenger")
    assert "shadow challenger (100% of requests)" in entry.why and "beats champion v1" in entry.why
    summary = w.registry.state.summary("sea")
    assert (summary.champion.version, summary.challenger.version) == ("1", "2")


def test_a_canary_challenger_carries_its_declared_fraction(models) -> None:
    w = shadowing(models, mode="canary", fraction=0.2)
    assert states(w)["2"] == ("challenger", "canary", 0.2)
    assert sent(w)[-1] == ("sea/challenger", "2", "promote", "canary", 0.2)


def test_the_offline_mode_promotes_at_once_as_before(models) -> None:
    w = World(models)
    w.revision = with_rollout(mode="offline")
    w.registry.register(cand(models["t7"]), holdout(7.0))
    assert w.registry.register(cand(models["t9_5"]), holdout(9.5)).status == "champion"
    assert [p.key for p in w.promoted] == ["sea", "sea"]


def test_a_newer_passing_candidate_replaces_the_challenger_and_a_rejected_one_changes_nothing(models) -> None:
    w = shadowing(models)
    assert w.registry.register(cand(models["t3"]), holdout(9.5)).status == "rejected"  # worse than v1
    assert states(w)["2"] == ("challenger", "shadow", 1.0)
    v4 = w.registry.register(cand(models["t9_5b"]), holdout(9.5))
    assert (v4.version, v4.status) == ("4", "challenger")
    assert states(w)["2"] == ("retired", "", 0.0) and w.registry.state.challenger("sea").version == "4"
    retired = [a for a in w.registry.state.audit_of("sea") if a.version == "2"][-1]
    assert (retired.action, retired.status) == ("retire", "retired") and "replaced by v4" in retired.why
    assert sent(w)[-1] == ("sea/challenger", "4", "promote", "shadow", 1.0)  # the same key: it replaces v2


def test_a_promote_verdict_crowns_the_challenger_and_keeps_the_previous_champion_as_guard(models) -> None:
    w = shadowing(models, rollback_margin=0.02)
    assert w.registry.apply_verdict(verdict("1", "2", "shadow", "promote")) == "applied"
    assert states(w) == {"1": ("retired", "guard", 1.0), "2": ("champion", "", 0.0)}
    assert sent(w)[-2:] == [("sea", "2", "promote", "", 0.0), ("sea/challenger", "1", "promote", "guard", 1.0)]
    assert w.promoted[-2].previous_version == "1"
    promote, guard = w.registry.state.audit_of("sea")[-2:]
    assert (promote.version, promote.action, promote.actor, promote.command_id, promote.previous_version) == (
        "2", "promote", "monitor", "sea/2/shadow", "1")
    assert promote.why.startswith("live shadow verdict promote: promote: difference +0.08")
    assert (guard.version, guard.action, guard.actor) == ("1", "guard", "monitor")
    assert promote.evidence == guard.evidence == verdict("1", "2", "shadow", "promote")
    assert w.registry.state.rollback_target("sea").version == "1"


def test_a_verdict_is_applied_once_and_stale_or_invalid_ones_change_nothing(models) -> None:
    w = shadowing(models)
    before = (len(w.log), len(w.promoted))
    assert w.registry.apply_verdict(verdict("1", "3", "shadow", "promote")) == "stale"  # no such challenger
    assert w.registry.apply_verdict(verdict("9", "2", "shadow", "promote")) == "stale"  # another champion
    assert w.registry.apply_verdict(verdict("1", "2", "canary", "promote")) == "stale"  # v2 is a shadow
    assert w.registry.apply_verdict(verdict("1", "2", "shadow", "rollback")) == "invalid"  # not a shadow outcome
    assert w.registry.apply_verdict(verdict("1", "2", "guard", "keep")) == "stale"  # no guard yet
    assert w.registry.apply_verdict(verdict("1", "2", "shadow", "promote", verdict_id="")) == "invalid"
    unknown = Verdict("nope", "1", "2", "shadow", "promote", "nope/2/shadow")
    assert w.registry.apply_verdict(unknown) == "stale"
    assert (len(w.log), len(w.promoted)) == before
    assert w.registry.apply_verdict(verdict("1", "2", "shadow", "promote")) == "applied"
    after = (len(w.log), len(w.promoted))
    assert w.registry.apply_verdict(verdict("1", "2", "shadow", "promote")) == "duplicate"  # redelivered
    assert w.registry.apply_verdict(verdict("1", "2", "shadow", "retire", verdict_id="sea/2/shadow")) == \
        "duplicate"  # one verdict per id, whatever it says
    # the first shadow verdict's versions are no longer current: a late "retire" from another id is stale
    assert w.registry.apply_verdict(verdict("1", "2", "shadow", "retire", verdict_id="late")) == "stale"
    assert (len(w.log), len(w.promoted)) == after


def test_a_retire_verdict_withdraws_the_challenger(models) -> None:
    w = shadowing(models)
    worse = verdict("1", "2", "shadow", "retire", difference=-0.04, ci_low=-0.07, ci_high=-0.01)
    assert w.registry.apply_verdict(worse) == "applied"
    assert states(w) == {"1": ("champion", "", 0.0), "2": ("retired", "", 0.0)}
    assert sent(w)[-1] == ("sea/challenger", "2", "retire", "shadow", 0.0)
    entry = w.registry.state.audit_of("sea")[-1]
    assert (entry.action, entry.actor, entry.evidence) == ("retire", "monitor", worse)
    assert w.registry.state.summary("sea").challenger is None


def test_a_rollback_verdict_brings_the_previous_champion_back_and_withdraws_the_guard(models) -> None:
    w = shadowing(models)
    w.registry.apply_verdict(verdict("1", "2", "shadow", "promote"))
    # the guard phase names the new champion and the guard; either way round is the same pair
    worse = verdict("2", "1", "guard", "rollback", difference=0.05, ci_low=0.03, ci_high=0.07,
                    verdict_id="sea/1/guard")
    assert w.registry.apply_verdict(worse) == "applied"
    assert states(w) == {"1": ("champion", "", 0.0), "2": ("rolled_back", "", 0.0)}
    assert sent(w)[-2:] == [("sea", "1", "rollback", "", 0.0), ("sea/challenger", "1", "retire", "guard", 0.0)]
    assert w.promoted[-2].previous_version == "2"
    entry = w.registry.state.audit_of("sea")[-1]
    assert (entry.version, entry.action, entry.actor, entry.previous_version, entry.evidence) == (
        "1", "rollback", "monitor", "2", worse)
    assert w.registry.state.second("sea") is None


def test_a_keep_verdict_withdraws_the_guard(models) -> None:
    w = shadowing(models)
    w.registry.apply_verdict(verdict("1", "2", "shadow", "promote"))
    assert w.registry.apply_verdict(verdict("2", "1", "guard", "keep", verdict_id="sea/2/guard")) == "applied"
    assert states(w) == {"1": ("retired", "", 0.0), "2": ("champion", "", 0.0)}
    assert sent(w)[-1] == ("sea/challenger", "1", "retire", "guard", 0.0)
    assert w.registry.state.audit_of("sea")[-1].action == "keep"
    assert w.registry.apply_verdict(verdict("2", "1", "guard", "rollback", verdict_id="x")) == "stale"


def test_without_a_rollback_margin_a_promotion_has_no_guard(models) -> None:
    w = shadowing(models, rollback_margin=None)
    assert w.registry.apply_verdict(verdict("1", "2", "shadow", "promote")) == "applied"
    assert states(w) == {"1": ("retired", "", 0.0), "2": ("champion", "", 0.0)}
    assert sent(w)[-2:] == [("sea", "2", "promote", "", 0.0), ("sea/challenger", "2", "retire", "shadow", 0.0)]


def test_a_manual_promotion_of_the_challenger_withdraws_it(models) -> None:
    w = shadowing(models)
    w.registry.promote("sea", "2", "alice", "enough evidence for me")
    assert states(w)["2"] == ("champion", "", 0.0)
    assert sent(w)[-2:] == [("sea", "2", "promote", "", 0.0), ("sea/challenger", "2", "retire", "shadow", 0.0)]


def test_a_restart_rebuilds_the_challenger_the_guard_and_the_evidence_from_the_log(models) -> None:
    w = shadowing(models)
    again = w.replay(compact=True)
    assert again.state.challenger("sea").version == "2" and again.state.challenger("sea").role == "shadow"
    assert again.apply_verdict(verdict("1", "2", "shadow", "promote")) == "applied"
    w.registry = again
    third = w.replay(compact=True)
    assert third.state.guard("sea").version == "1" and third.state.champion("sea").version == "2"
    assert third.state.audit_of("sea")[-2].evidence == verdict("1", "2", "shadow", "promote")
    assert third.apply_verdict(verdict("1", "2", "shadow", "promote")) == "duplicate"  # its id is in the trail
    assert third.apply_verdict(verdict("2", "1", "guard", "keep", verdict_id="sea/2/guard")) == "applied"


def test_a_restart_resends_a_lost_challenger_announcement_and_a_lost_withdrawal(models) -> None:
    w = shadowing(models)
    last = {p.key: (p.version, p.sha256, p.action, p.role) for p in w.promoted}
    challenger_key = last.pop("sea/challenger")  # the challenger's announcement never reached model.promoted
    again = w.replay()
    resent: list = []
    again.announce = resent.append
    assert again.recover_announcements(last) == 1
    assert [(p.key, p.version, p.role, p.action) for p in resent] == [("sea/challenger", "2", "shadow", "promote")]
    # in step: nothing is sent
    quiet: list = []
    again.announce = quiet.append
    assert again.recover_announcements(last | {"sea/challenger": challenger_key}) == 0 and quiet == []
    # the challenger was retired but the withdrawal was lost: it is sent again
    again.apply_verdict(verdict("1", "2", "shadow", "retire"))
    quiet.clear()
    assert again.recover_announcements(last | {"sea/challenger": challenger_key}) == 1
    assert [(p.key, p.version, p.role, p.action) for p in quiet] == [("sea/challenger", "2", "shadow", "retire")]


def test_events_and_verdicts_round_trip_through_their_contracts(models) -> None:
    w = shadowing(models)
    w.registry.apply_verdict(verdict("1", "2", "shadow", "promote"))
    for _, message in w.log:
        assert event_out(event_in(message)) == message
    v = verdict("1", "2", "shadow", "promote", decided_at_ms=1234)
    assert verdict_in(verdict_out(v)) == v


def test_the_model_card_shows_the_role_and_the_live_evidence(models) -> None:
    w = shadowing(models)
    assert "on live traffic as shadow (100% of requests)" in w.registry.model_card("sea", "2")
    w.registry.apply_verdict(verdict("1", "2", "shadow", "promote"))
    card = w.registry.model_card("sea", "2")
    assert "## Live evidence" in card and "| shadow | promote | v1 | v2 | accuracy | 0.8000 | 0.8800 | +0.0800" in card
    assert "**Rollout:** shadow" in card


def test_a_challenger_announcement_is_keyed_and_signed_with_its_role(models) -> None:
    w = shadowing(models)
    bus, key = MemoryBus(), SecretStr("k")
    EventLog(bus, bus.producer(client_id="t"), key).announce(w.promoted[-1])
    [record] = bus.reader([bus.topic(MODEL_PROMOTED)], client_id="t", start="beginning").read_to_end(5)
    msg = record.decode(models_pb2.ModelPromoted)
    assert (record.key.decode(), msg.role, msg.traffic_fraction) == ("sea/challenger", "shadow", 1.0)
    at = {"promoted_at_ms": msg.promoted_at_ms, "action": msg.action}  # the time and action are signed too
    assert promotion_verified(key, "sea", "2", msg.artifact_sha256, msg.signature, "shadow", **at)
    assert not promotion_verified(key, "sea", "2", msg.artifact_sha256, msg.signature, **at)  # not as a champion


def test_a_redelivered_challenger_candidate_is_announced_again(models) -> None:
    w = shadowing(models)
    with pytest.raises(DuplicateCandidate) as dup:  # the same candidate id: a redelivery after a crash
        w.registry.register(w.registry.state.get("sea", "2").candidate, holdout(9.5))
    before = len(w.promoted)
    assert w.registry.reannounce(dup.value)
    assert sent(w)[before:] == [("sea/challenger", "2", "promote", "shadow", 1.0)]
