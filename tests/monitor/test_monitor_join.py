"""The bounded label join and the window statistics."""

from __future__ import annotations

import numpy as np
import pytest

from services.monitor.core import LabelEvent, LabelJoiner, Prediction, ks_critical, ks_statistic, psi


def pred(rid: str, entity: str, t: int, as_of: int | None = None) -> Prediction:
    return Prediction(rid, entity, "m", "1", {"x": 1.0}, 0.7, 1.0, t, t if as_of is None else as_of)


def joiner(**kw) -> LabelJoiner:
    base = {"window_ms": 10_000, "tolerance_ms": 500, "capacity": 1000, "label_capacity": 100}
    return LabelJoiner(**(base | kw))


def test_label_with_request_id_joins_that_prediction():
    j = joiner()
    j.add_prediction(pred("a", "e1", 1000))
    j.add_prediction(pred("b", "e1", 1000))
    assert j.add_label(LabelEvent("e1", 1000, 1.0, request_id="b")).request_id == "b"
    assert j.add_label(LabelEvent("e1", 1000, 1.0, request_id="b")).request_id == "a"  # b taken: by entity/time


def test_label_joins_the_entity_prediction_closest_in_time_once():
    j = joiner()
    for rid, t in (("a", 1000), ("b", 1200), ("c", 1400)):
        j.add_prediction(pred(rid, "e1", t))
    j.add_prediction(pred("x", "e2", 1200))
    assert j.add_label(LabelEvent("e1", 1190, 0.0)).request_id == "b"
    assert j.add_label(LabelEvent("e1", 1190, 0.0)).request_id in {"a", "c"}
    assert j.add_label(LabelEvent("e1", 5000, 0.0)) is None  # nothing within the tolerance
    assert j.counts.joined == 2


def test_features_as_of_time_is_what_labels_are_matched_on():
    j = joiner(tolerance_ms=0)
    j.add_prediction(pred("a", "e1", t=9_999, as_of=1_000))
    assert j.add_label(LabelEvent("e1", 1_000, 1.0)).request_id == "a"


def test_early_label_waits_for_its_prediction():
    j = joiner()
    assert j.add_label(LabelEvent("e1", 1000, 1.0, request_id="a")) is None
    joins = j.add_prediction(pred("a", "e1", 1000))
    assert [(p.request_id, lab.label) for p, lab in joins] == [("a", 1.0)]
    assert j.counts.labels_waiting == 0


def test_memory_is_bounded_by_capacity_and_window():
    j = joiner(capacity=100, window_ms=1_000, label_capacity=100)
    for i in range(1000):
        j.add_prediction(pred(f"r{i}", f"e{i % 7}", t=i))
    assert len(j) == 100 and j.counts.predictions_evicted == 900
    j.add_prediction(pred("late", "e1", t=50_000))  # the window evicts everything older than 49 s
    assert len(j) == 1
    for i in range(500):
        j.add_label(LabelEvent(f"z{i}", 50_000, 0.0))
    assert j.counts.labels_waiting == 100 and j.counts.labels_evicted == 400
    assert sum(len(v) for v in j._labels_by_entity.values()) == 100


def test_psi_and_ks_are_small_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 10, 1000)
    edges = np.quantile(ref, np.linspace(0, 1, 11)[1:-1])
    props = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=10) / 1000
    same, shifted = rng.uniform(0, 10, 1000), rng.uniform(5, 10, 1000)
    assert psi(props, edges, same) < 0.05 < 1.0 < psi(props, edges, shifted)
    crit = ks_critical(1000, 1000, 0.0001)
    assert ks_statistic(np.sort(ref), same) < crit < ks_statistic(np.sort(ref), shifted)
    assert ks_statistic(np.sort(ref), shifted) == pytest.approx(0.5, abs=0.06)
