"""The gate by each model's declared policy, on the core (no broker): a regression model on MAE (lower is better),
a multiclass one on accuracy, an undeclared model rejected and audited, a candidate whose inputs are not the
declared features, holdout labels that do not fit the task, and a bring-your-own model gated like any other."""

from __future__ import annotations

import hashlib
import uuid

import numpy as np
import pytest
from registry_helpers import DELIVERY, NAMES, delivery_minutes, revise, segment_of

from services.registry.core import CandidateInfo, Holdout, LineageInfo, Registry, RegistryState
from services.registry.errors import ArtifactRejected, InvalidCandidate


class World:
    """A registry over a list (registry.log), a dict (model.artifacts) and a revision a test may replace."""

    def __init__(self, *artifacts: bytes):
        self.store = {hashlib.sha256(b).hexdigest(): b for b in artifacts}
        self.log: list = []
        self.promoted: list = []
        self.revision = revise(None)
        self.registry = Registry(RegistryState(), self.fetch, self.log.extend, self.promoted.append,
                                 lambda: self.revision)

    def fetch(self, sha: str) -> bytes:
        if sha not in self.store:
            raise ArtifactRejected(sha, "not found")
        return self.store[sha]


def cand(data: bytes, name: str, features: tuple[str, ...], framework: str = "sklearn.Test",
         params: dict[str, str] | None = None) -> CandidateInfo:
    lineage = LineageInfo(feature_set=features[0].split(".")[0], feature_set_version=1, row_count=1000)
    return CandidateInfo(name, uuid.uuid4().hex, hashlib.sha256(data).hexdigest(), len(data), framework, {},
                         params or {"definitions_revision": "1"}, features, lineage, 0, 400)


def regression_holdout(weight: float, n: int = 400) -> Holdout:
    X = np.random.default_rng(5).uniform(0, 10, (n, len(DELIVERY))).astype(np.float32)  # noqa: N806
    return Holdout(DELIVERY, X, delivery_minutes(X, weight).astype(np.float64))


def segment_holdout(threshold: float, n: int = 400) -> Holdout:
    X = np.random.default_rng(5).uniform(0, 10, (n, len(NAMES))).astype(np.float32)  # noqa: N806
    return Holdout(NAMES, X, segment_of(X, threshold).astype(np.float64))


def test_a_regression_candidate_is_gated_on_mae_lower_is_better(onnx_model_factory) -> None:
    old, new, off = (onnx_model_factory(w, task="regression") for w in (0.0, 2.0, 1.0))
    w = World(old, new, off)
    # the first model ignores the second input: MAE about 10 minutes, inside the declared maximum of 12
    v1 = w.registry.register(cand(old, "delivery_time", DELIVERY), regression_holdout(2.0))
    assert (v1.status, set(v1.gate_metrics)) == ("champion", {"mae", "rmse"})
    assert "first model: mae" in v1.gate_reason and "passes the floor" in v1.gate_reason
    # the concept, learnt right: a lower MAE on the same rows beats the champion
    v2 = w.registry.register(cand(new, "delivery_time", DELIVERY), regression_holdout(2.0))
    assert v2.status == "champion" and v2.gate_metrics["mae"] < v2.champion_metrics["mae"]
    assert "beats champion v1 mae" in v2.gate_reason
    for needle in ("regression model", "mae (lower is better)", "margin 0", "floor mae <= 12",
                   "definitions revision 1"):
        assert needle in v2.gate_reason, needle
    # a higher MAE than the champion's is worse, however large the number
    v3 = w.registry.register(cand(off, "delivery_time", DELIVERY), regression_holdout(2.0))
    assert v3.status == "rejected" and "does not beat champion v2 mae" in v3.gate_reason
    assert v3.gate_metrics["mae"] > v3.champion_metrics["mae"]
    assert [p.version for p in w.promoted] == ["1", "2"]


def test_a_regression_candidate_above_the_declared_maximum_is_rejected(onnx_model_factory) -> None:
    model = onnx_model_factory(0.0, task="regression")
    w = World(model)
    v1 = w.registry.register(cand(model, "delivery_time", DELIVERY), regression_holdout(8.0))  # MAE about 40
    assert v1.status == "rejected" and "fails the floor (mae <= 12)" in v1.gate_reason
    assert w.registry.state.champion("delivery_time") is None


def test_a_multiclass_candidate_is_gated_on_accuracy(onnx_model_factory) -> None:
    old, new = onnx_model_factory(7.0, task="multiclass"), onnx_model_factory(9.5, task="multiclass")
    w = World(old, new)
    v1 = w.registry.register(cand(old, "segment", NAMES), segment_holdout(7.0))
    assert v1.status == "champion" and set(v1.gate_metrics) == {"accuracy", "macro_f1", "logloss"}
    # the concept moved: the model of the new one is more accurate on the new holdout
    v2 = w.registry.register(cand(new, "segment", NAMES), segment_holdout(9.5))
    assert v2.status == "champion" and v2.gate_metrics["accuracy"] > v2.champion_metrics["accuracy"]
    assert "candidate accuracy" in v2.gate_reason and "multiclass model, accuracy (higher is better)" in \
        v2.gate_reason and "floor accuracy >= 0.5" in v2.gate_reason
    stale = onnx_model_factory(7.0, seed=1, task="multiclass")  # the old concept again: less accurate now
    w.store[hashlib.sha256(stale).hexdigest()] = stale
    v3 = w.registry.register(cand(stale, "segment", NAMES), segment_holdout(9.5))
    assert v3.status == "rejected" and "does not beat champion v2 accuracy" in v3.gate_reason


def test_holdout_labels_must_fit_the_task(onnx_model_factory) -> None:
    model = onnx_model_factory(7.0, task="multiclass")
    w = World(model)
    bad = segment_holdout(7.0)
    bad = Holdout(bad.feature_names, bad.X, np.where(bad.y == 2, 5.0, bad.y))
    with pytest.raises(InvalidCandidate, match=r"holdout label segment: 5 is not one of the classes \[0, 1, 2\]"):
        w.registry.register(cand(model, "segment", NAMES), bad)
    with pytest.raises(InvalidCandidate, match="holdout label label: 2 is not 0 or 1"):
        w.registry.register(cand(model, "sea", NAMES), segment_holdout(7.0))
    assert w.log == [] and w.promoted == []  # refused: nothing persisted


def test_a_candidate_of_an_undeclared_model_is_rejected_and_audited() -> None:
    w = World()  # no artifact at all: an undeclared model is judged by no policy, so nothing is fetched
    v = w.registry.register(cand(b"some onnx", "ghost", NAMES), segment_holdout(7.0))
    assert (v.version, v.status, v.gate_decision) == ("1", "rejected", "rejected")
    assert v.gate_reason == ("model 'ghost' is not declared in definitions revision 1; declared models: "
                             "['delivery_time', 'sea', 'segment']")
    assert v.gate_metrics == {} and w.promoted == []
    audit = w.registry.state.audit_of("ghost")
    assert [(a.action, a.actor, a.why) for a in audit][-1] == ("reject", "registry", v.gate_reason)
    assert len(w.log) == 3  # register entry, the version, the decision: on registry.log like any decision


def test_a_candidate_whose_inputs_are_not_the_declared_features_is_rejected(onnx_model_factory) -> None:
    model = onnx_model_factory(7.0)
    w = World(model)
    bare = tuple(n.split(".")[1] for n in NAMES)
    holdout = segment_holdout(7.0)
    v = w.registry.register(cand(model, "sea", bare), Holdout(bare, holdout.X, (holdout.y > 0).astype(float)))
    assert v.status == "rejected" and "are not the features model 'sea' declares" in v.gate_reason


def test_a_bring_your_own_model_goes_through_the_same_gate_and_the_audit_names_who(onnx_model_factory) -> None:
    trained, byo = onnx_model_factory(0.0, task="regression"), onnx_model_factory(2.0, task="regression")
    w = World(trained, byo)
    w.registry.register(cand(trained, "delivery_time", DELIVERY), regression_holdout(2.0))
    v2 = w.registry.register(cand(byo, "delivery_time", DELIVERY, framework="onnx:byo",
                                  params={"requested_by": "cli:alice", "definitions_revision": "1",
                                          "view_versions": "customer_orders:1"}),
                             regression_holdout(2.0))
    assert v2.status == "champion" and "beats champion v1 mae" in v2.gate_reason
    register = [a for a in w.registry.state.audit_of("delivery_time") if a.version == "2"][0]
    assert (register.action, register.actor) == ("register", "cli:alice")
    assert "bring-your-own ONNX candidate" in register.why and "registered by cli:alice" in register.why
    card = w.registry.model_card("delivery_time")
    for needle in ("framework onnx:byo", "Bring-your-own ONNX model registered by cli:alice",
                   "**Trained on:** definitions revision 1, feature views customer_orders v1",
                   "**Task:** regression", "**Gate policy:** mae (lower is better), margin 0, floor <= 12",
                   "field `minutes` on topic `orders.delivered`"):
        assert needle in card, needle
    # a bring-your-own model whose output does not fit the task cannot be scored: refused, naming the output
    wrong = onnx_model_factory(7.0, seed=3, task="multiclass")
    w.store[hashlib.sha256(wrong).hexdigest()] = wrong
    with pytest.raises(ArtifactRejected, match="a regression model must have the output 'variable'"):
        w.registry.register(cand(wrong, "delivery_time", DELIVERY, framework="onnx:byo",
                                 params={"registered_by": "bob"}), regression_holdout(2.0))


def test_a_newer_revision_applies_to_the_next_candidate(onnx_model_factory) -> None:
    first, better = onnx_model_factory(0.0, task="regression"), onnx_model_factory(2.0, task="regression")
    w = World(first, better)
    w.registry.register(cand(first, "delivery_time", DELIVERY), regression_holdout(2.0))
    w.revision = revise(w.revision, {"delivery_time": {"margin": 100.0}})
    v2 = w.registry.register(cand(better, "delivery_time", DELIVERY), regression_holdout(2.0))
    assert v2.status == "rejected" and "margin 100" in v2.gate_reason and "definitions revision 2" in v2.gate_reason


def test_the_judging_revision_and_the_lineage_survive_registry_log(onnx_model_factory) -> None:
    from services.registry.convert import event_in, event_out

    model = onnx_model_factory(2.0, task="regression")
    w = World(model)
    c = cand(model, "delivery_time", DELIVERY)
    lineage = LineageInfo(feature_set="customer_orders", feature_set_version=3, row_count=1000,
                          view_versions=(("customer_orders", 3),), definitions_revision=7, requested_by="cli:bob")
    v1 = w.registry.register(CandidateInfo(**{**c.__dict__, "lineage": lineage}), regression_holdout(2.0))
    assert v1.gate_definitions_revision == w.revision.number
    again = event_in(event_out(v1))
    assert again == v1  # what a restarted registry rebuilds from registry.log
    assert again.candidate.lineage.view_versions == (("customer_orders", 3),)
