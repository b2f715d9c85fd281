"""Unit tests of the registry's core: gate, versions, promote/rollback, replay, refusals. No broker: the event
log is a list, artifacts a dict of real ONNX bytes."""

from __future__ import annotations

import hashlib
import uuid

import numpy as np
import pytest
from mlops.definitions.model import Task
from registry_helpers import NAMES, revise

from services.registry.convert import candidate_out, event_in, event_key, event_out
from services.registry.core import (
    CandidateInfo,
    GatePolicy,
    Holdout,
    LineageInfo,
    Range,
    Registry,
    RegistryState,
    decide,
    model_card,
)
from services.registry.errors import (
    ArtifactRejected,
    DuplicateCandidate,
    InvalidCandidate,
    ModelNotFound,
    NothingToRollBack,
    NotPromotable,
    VersionNotFound,
)


@pytest.fixture(scope="module")
def models(onnx_model_factory) -> dict[str, bytes]:
    return {"t7": onnx_model_factory(7.0), "t9_5": onnx_model_factory(9.5), "t9_5b": onnx_model_factory(9.5, seed=1)}


def holdout(threshold: float, n: int = 400, seed: int = 5) -> Holdout:
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 10, (n, len(NAMES))).astype(np.float32)  # noqa: N806
    return Holdout(NAMES, X, (X[:, 0] + X[:, 1] > threshold).astype(np.float64))


def cand(data: bytes, name: str = "sea") -> CandidateInfo:
    lin = LineageInfo(feature_log_offsets=(Range("features.log", 0, 0, 100),),
                      label_offsets=(Range("labels", 0, 0, 90),),
                      seed=42, row_count=90, retrain_reason="drift on error_rate", code_version="git:abc")
    return CandidateInfo(name, uuid.uuid4().hex, hashlib.sha256(data).hexdigest(), len(data), "sklearn.Test",
                         {"auc": 0.9}, {"max_iter": "10"}, NAMES, lin, 0, 400)


class World:
    def __init__(self, artifacts: dict[str, bytes]):
        self.store = {hashlib.sha256(b).hexdigest(): b for b in artifacts.values()}
        self.log: list = []  # (key, RegistryEvent) as they would be written
        self.promoted: list = []
        self.fail_persist = False
        self.revision = revise(None)  # what the registry reads as in force; a test may swap it
        self.registry = self.make(RegistryState())

    def fetch(self, sha: str) -> bytes:
        if sha not in self.store:
            raise ArtifactRejected(sha, "not found")
        return self.store[sha]

    def persist(self, events: list) -> None:
        if self.fail_persist:
            raise RuntimeError("broker down")
        self.log.extend((event_key(e), event_out(e)) for e in events)

    def make(self, state: RegistryState) -> Registry:
        return Registry(state, self.fetch, self.persist, self.promoted.append, lambda: self.revision)

    def replay(self, compact: bool = False) -> Registry:
        records = self.log
        if compact:  # what log compaction leaves: the last record per key, in offset order of those records
            last = {k: i for i, (k, _) in enumerate(records)}
            records = [records[i] for i in sorted(last.values())]
        state = RegistryState()
        for _, msg in records:
            state.apply(event_in(msg))
        return self.make(state)


def snapshot(r: Registry) -> tuple:
    st = r.state
    return ({n: {v: (s.status, s.promoted_sequence) for v, s in d.items()} for n, d in st.versions.items()},
            {n: [(a.sequence, a.action, a.version) for a in st.audit_of(n)] for n in st.audit}, dict(st.sequence))


def test_first_model_passes_the_floor_then_a_better_challenger_is_promoted(models) -> None:
    w = World(models)
    v1 = w.registry.register(cand(models["t7"]), holdout(7.0))
    assert (v1.version, v1.status, v1.gate_decision) == ("1", "champion", "promoted")
    assert "first model" in v1.gate_reason
    # the concept moved to threshold 9.5: a model trained on it beats the old champion on the new holdout
    v2 = w.registry.register(cand(models["t9_5"]), holdout(9.5))
    assert (v2.version, v2.status) == ("2", "champion")
    assert v2.champion_metrics["auc"] < v2.gate_metrics["auc"] and v2.champion_version_at_gate == "1"
    assert w.registry.state.get("sea", "1").status == "retired"
    assert [(p.version, p.previous_version, p.action) for p in w.promoted] == [("1", "", "promote"),
                                                                             ("2", "1", "promote")]


def test_a_worse_challenger_is_rejected_with_the_reason_and_gets_a_version(models) -> None:
    w = World(models)
    w.registry.register(cand(models["t9_5"]), holdout(9.5))
    v2 = w.registry.register(cand(models["t7"]), holdout(9.5))
    assert (v2.version, v2.status, v2.gate_decision) == ("2", "rejected", "rejected")
    assert "does not beat champion v1" in v2.gate_reason
    assert w.registry.state.champion("sea").version == "1" and len(w.promoted) == 1


def test_first_model_below_the_floor_is_rejected(models) -> None:
    w = World(models)
    bad = Holdout(NAMES, holdout(7.0).X, 1.0 - holdout(7.0).y)  # labels inverted: auc far below the floor
    v1 = w.registry.register(cand(models["t7"]), bad)
    assert v1.status == "rejected" and "fails the floor" in v1.gate_reason
    assert w.registry.state.champion("sea") is None


def test_promote_and_rollback_walk_the_champion_history(models) -> None:
    w = World(models)
    w.registry.register(cand(models["t7"]), holdout(7.0))
    w.registry.register(cand(models["t9_5"]), holdout(9.5))
    w.registry.register(cand(models["t9_5b"]), holdout(9.5, seed=9))
    champ = w.registry.state.champion("sea").version
    promo, _ = w.registry.rollback("sea", "alice", "bad canary")
    assert promo.action == "rollback" and promo.previous_version == champ
    assert w.registry.state.get("sea", champ).status == "rolled_back"
    promo2, _ = w.registry.promote("sea", champ, "bob", "fixed")
    assert promo2.version == champ and w.registry.state.champion("sea").version == champ
    audit = w.registry.state.audit_of("sea")
    assert [a.action for a in audit][-2:] == ["rollback", "promote"]
    assert audit[-1].actor == "bob" and audit[-1].why == "fixed"
    assert [a.sequence for a in audit] == sorted({a.sequence for a in audit})


def test_refused_commands_change_nothing(models) -> None:
    w = World(models)
    c1 = cand(models["t7"])
    w.registry.register(c1, holdout(7.0))
    before, log_len = snapshot(w.registry), len(w.log)
    with pytest.raises(DuplicateCandidate, match="already registered as version 1"):
        w.registry.register(c1, holdout(7.0))
    with pytest.raises(DuplicateCandidate, match="artifact sha256"):
        w.registry.register(cand(models["t7"]), holdout(7.0))
    with pytest.raises(ArtifactRejected):
        w.registry.register(cand(b"not in the store"), holdout(7.0))
    with pytest.raises(InvalidCandidate, match="64 lowercase hex"):
        w.registry.register(CandidateInfo("sea", "id", "abc", feature_names=NAMES), holdout(7.0))
    with pytest.raises(InvalidCandidate, match="no rows"):
        w.registry.register(cand(models["t9_5"]), Holdout(NAMES, np.zeros((0, 6), np.float32), np.zeros(0)))
    with pytest.raises(ModelNotFound):
        w.registry.promote("nope", "1", "a", "b")
    with pytest.raises(VersionNotFound):
        w.registry.promote("sea", "9", "a", "b")
    with pytest.raises(NotPromotable, match="already the champion"):
        w.registry.promote("sea", "1", "a", "b")
    with pytest.raises(NothingToRollBack):
        w.registry.rollback("sea", "a", "b")
    w.fail_persist = True
    with pytest.raises(RuntimeError, match="broker down"):
        w.registry.register(cand(models["t9_5"]), holdout(9.5))
    assert snapshot(w.registry) == before and len(w.log) == log_len


def test_state_rebuilt_from_the_log_is_the_same_before_and_after_compaction(models) -> None:
    w = World(models)
    w.registry.register(cand(models["t7"]), holdout(7.0))
    w.registry.register(cand(models["t9_5"]), holdout(9.5))
    w.registry.register(cand(models["t7"], name="other"), holdout(7.0))
    w.registry.rollback("sea", "alice", "regression")
    w.registry.promote("sea", "2", "bob", "re-promote")
    expected = snapshot(w.registry)
    assert snapshot(w.replay()) == expected
    compacted = w.replay(compact=True)
    assert snapshot(compacted) == expected  # state AND the full audit trail survive compaction
    assert compacted.state.get("sea", "2").candidate.lineage.feature_log_offsets[0].end_offset == 100
    assert compacted.state.next_version("sea") == "3"
    # the stored candidate leaves the holdout rows out (only their count)
    state_records = [m for k, m in w.log if "/audit/" not in k]
    assert all(not m.candidate.holdout.features_f32 for m in state_records)
    assert candidate_out(cand(models["t7"])).holdout.rows == 400


def test_model_card_and_diff(models) -> None:
    w = World(models)
    w.registry.register(cand(models["t7"]), holdout(7.0))
    w.registry.register(cand(models["t9_5"]), holdout(9.5))
    card = w.registry.model_card("sea")
    for needle in ("# Model card: sea v2", "features.log", "| 0 | 0 | 100 |", "x0_last", "max_iter",
                   "champion on same rows", "drift on error_rate", hashlib.sha256(models["t9_5"]).hexdigest()):
        assert needle in card
    # what the definitions in force declare: task, features, label, gate policy, and the revision
    for needle in ("## Declared (definitions revision 1 in force)", "**Task:** binary",
                   "6 declared inputs, the same as this version's", "field `label` on topic `labels`",
                   "**Gate policy:** auc (higher is better), margin 0, floor >= 0.6",
                   "gate: binary model, auc (higher is better), margin 0, floor auc >= 0.6, definitions revision 1"):
        assert needle in card, needle
    assert card == model_card(w.registry.state.get("sea", "2"), w.registry.state.champion("sea"),
                              w.registry.state.audit_of("sea"), w.revision.definitions.model("sea"), 1)
    fields = {f for f, _, _ in w.registry.diff("sea", "1", "2")}
    assert {"sha256", "status"} <= fields


def test_gate_margin_floor_and_lower_is_better_metrics() -> None:
    p = GatePolicy("sea", Task.BINARY, "auc", True, 0.05, 0.6)
    assert not decide(p, {"auc": 0.93}, {"auc": 0.9}, "1").promote
    assert decide(p, {"auc": 0.96}, {"auc": 0.9}, "1").promote
    assert not decide(p, {"auc": 0.55}, {"auc": 0.4}, "1").promote  # the floor holds with a champion too
    ll = GatePolicy("sea", Task.BINARY, "logloss", False, 0.0, 0.5)
    assert decide(ll, {"logloss": 0.2}, {"logloss": 0.3}, "1").promote
    assert not decide(ll, {"logloss": 0.6}, None).promote
    assert decide(GatePolicy("sea", Task.BINARY, "auc", True), {"auc": 0.51}, None).promote  # no floor declared
