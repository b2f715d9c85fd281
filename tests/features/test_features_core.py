"""Unit tests of the features core (no broker): window math and the reference aggregator."""

from __future__ import annotations

import math

import pytest
from mlops.schema import FEATURE_SET, Aggregate, FeatureSet

from services.features.core import ReferenceAggregator, WindowSpec, fold_latest, ranges, read_range, window_groups
from services.features.errors import UnsupportedAggregate

T = 1_700_000_000_000  # a multiple of 60 s? 1_700_000_000 % 60 == 20


def test_window_groups_of_the_declared_set() -> None:
    groups = window_groups(FEATURE_SET)
    assert {s.name for s in groups} == {"tumbling-60s", "hopping-30s-10s"}


def test_hopping_reads_the_oldest_window() -> None:
    spec = WindowSpec("hopping", 30, 10)
    assert len(ranges(spec, 1000.5)) == 3
    assert read_range(spec, 1000.5) == (980.0, 1009.9)


def test_reference_aggregates() -> None:
    agg = ReferenceAggregator(FEATURE_SET)
    v = None
    for i in range(5):
        v = agg.update("a", T + i * 1000, {"x0": float(i), "x1": 2.0, "x2": 3.0})
    assert v == {
        "x0_last": 4.0,
        "x1_last": 2.0,
        "x2_last": 3.0,
        "x0_mean_60s": 2.0,
        "x1_mean_60s": 2.0,
        "events_30s": 5.0,
    }
    # 45 s later: the hopping window no longer holds the first events; the tumbling one (60 s) is a new window
    v = agg.update("a", T + 45_000, {"x0": 10.0, "x1": 0.0, "x2": 0.0})
    assert v["events_30s"] == 1.0 and v["x0_mean_60s"] == 10.0 and v["x0_last"] == 10.0
    assert agg.update("b", T, {"x0": 1.0, "x1": 1.0, "x2": 1.0})["events_30s"] == 1.0  # entities are separate


def test_late_event_does_not_overwrite_last() -> None:
    state = fold_latest(None, {"x0": 1.0}, 200)
    state = fold_latest(state, {"x0": 9.0}, 100)
    assert state == {"x0": 1.0, "as_of_ms": 200}


def test_bad_aggregates_are_refused() -> None:
    with pytest.raises(UnsupportedAggregate):
        window_groups(FeatureSet("f", 1, (Aggregate("m", "x0", "mean"),)))
    with pytest.raises(UnsupportedAggregate):
        window_groups(FeatureSet("f", 1, (Aggregate("m", "x0", "mean", "sliding:5"),)))
    assert math.isnan(
        ReferenceAggregator(FeatureSet("f", 1, (Aggregate("l", "x9", "last"),))).update("a", T, {"x0": 1.0})["l"]
    )


def test_batch_settings_refuse_a_wait_that_would_stall() -> None:
    from pydantic import ValidationError

    from services.features.settings import FeaturesSettings

    assert FeaturesSettings(batch_wait_s=0.001, batch_max=1).batch_max == 1
    with pytest.raises(ValidationError, match="batch_wait_s"):
        FeaturesSettings(batch_wait_s=0)
    with pytest.raises(ValidationError, match="batch_max"):
        FeaturesSettings(batch_max=0)
