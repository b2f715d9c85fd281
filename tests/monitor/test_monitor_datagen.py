"""The synthetic SEA stream: deterministic, inside the declared schema, with the drift where it was asked for."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from mlops.definitions import load
from mlops_tools.datagen import StreamConfig, expected_accuracy_drop, generate, measure_accuracy_drop, sea_label

SEA_FILE = Path(__file__).resolve().parents[2] / "examples" / "sea" / "definitions.yaml"


def test_same_seed_same_records_other_seed_other_records():
    cfg = StreamConfig(count=300, drift_at=100, seed=7)
    assert list(generate(cfg)) == list(generate(cfg))
    assert [r.values for r in generate(cfg)] != [r.values for r in generate(StreamConfig(count=300, seed=8))]


def test_values_respect_the_declared_raw_schema_before_and_after_drift():
    source = load(SEA_FILE).source("sea_events")
    bounds = {f.name: (f.minimum, f.maximum) for f in source.fields}
    for rec in generate(StreamConfig(count=2000, drift_at=1000, covariate_shift=True)):
        assert set(rec.values) == set(bounds)
        for name, v in rec.values.items():
            lo, hi = bounds[name]
            assert lo <= v <= hi


def test_records_carry_entity_time_id_and_drift_flag():
    cfg = StreamConfig(count=500, drift_at=200, entities=7, start_ms=1000, interval_ms=5)
    recs = list(generate(cfg))
    assert {r.entity_id for r in recs} <= {f"e{i:04d}" for i in range(7)}
    assert len({r.entity_id for r in recs}) == 7
    assert [r.event_time_ms for r in recs[:3]] == [1000, 1005, 1010]
    assert len({r.event_id for r in recs}) == 500
    assert [r.drifted for r in recs].index(True) == 200


def test_labels_follow_the_variant_of_their_side_of_the_drift():
    cfg = StreamConfig(count=2000, drift_at=1000)
    for rec in generate(cfg):
        variant = cfg.variant_after if rec.drifted else cfg.variant_before
        assert rec.label == sea_label(rec.values, variant)


def test_concept_drift_costs_the_old_concept_about_twenty_points_of_accuracy():
    before, after = measure_accuracy_drop(StreamConfig(count=20_000, drift_at=10_000))
    assert before == 1.0
    assert expected_accuracy_drop(2, 3) == pytest.approx(0.20625)
    assert before - after == pytest.approx(expected_accuracy_drop(2, 3), abs=0.02)


def test_covariate_shift_moves_only_x2():
    recs = list(generate(StreamConfig(count=4000, drift_at=2000, covariate_shift=True)))
    before = [r for r in recs if not r.drifted]
    after = [r for r in recs if r.drifted]
    assert min(r.values["x2"] for r in after) >= 5.0
    assert min(r.values["x2"] for r in before) < 1.0
    mean = lambda rs, k: sum(r.values[k] for r in rs) / len(rs)  # noqa: E731
    assert abs(mean(before, "x0") - mean(after, "x0")) < 0.3


def test_raw_json_is_what_an_external_producer_writes():
    rec = next(itertools.islice(generate(StreamConfig(count=1)), 1))
    doc = json.loads(rec.raw_json())
    assert set(doc) == {"entity_id", "event_time", "schema_version", "values", "event_id"}
    assert doc["schema_version"] == load(SEA_FILE).source("sea_events").schema_version
    assert doc["values"] == rec.values


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="variant"):
        StreamConfig(variant_after=5)
