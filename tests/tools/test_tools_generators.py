"""The examples' generators: deterministic, in the declared envelope (what ingest and `decode_label` accept), with
a drift that clearly costs a model of the old concept. Broker-free (MemoryBus)."""

from __future__ import annotations

import json

import pytest
from mlops import contracts
from mlops import definitions as d
from mlops.bus import MemoryBus
from mlops.definitions.labels import decode_label
from mlops.definitions.model import FieldType
from mlops_tools import datagen
from mlops_tools.cli.produce_cmd import ProduceOptions, produce
from mlops_tools.examples import definitions_path
from mlops_tools.generators import EXAMPLE_NAMES, example
from mlops_tools.generators.delivery import DeliveryConfig, measure_mae_shift, measure_model_mae_shift


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_same_seed_same_bytes_and_the_drift_point_is_where_it_was_asked(name: str) -> None:
    ex = example(name)
    cfg = ex.config(count=300, drift_at=120, seed=7)
    first = [ex.raw_json(r) + ex.label_json(r) for r in ex.generate(cfg)]
    assert first == [ex.raw_json(r) + ex.label_json(r) for r in ex.generate(cfg)]
    assert first != [ex.raw_json(r) + ex.label_json(r) for r in ex.generate(ex.config(count=300, seed=8))]
    assert [r.index for r in ex.generate(cfg) if r.drifted][0] == 120


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_records_fit_the_declared_source_and_labels_the_declared_model(name: str) -> None:
    ex = example(name)
    assert ex.definitions == d.load(definitions_path(name))
    source, model, id_field = ex.source, ex.model, ex.entity.id_field
    for rec in ex.generate(ex.config(count=500, drift_at=250)):
        doc = json.loads(ex.raw_json(rec))
        assert set(doc) == {id_field, source.event_time_field, "schema_version", "values", "event_id"}
        assert doc["schema_version"] == source.schema_version
        for f in source.fields:
            value = doc["values"].get(f.name)
            if value is None:
                assert not f.required, f.name
                continue
            if f.type is FieldType.CATEGORICAL:
                assert value in (f.vocabulary or ()), f.name
            elif f.type is FieldType.BOOL:
                assert isinstance(value, bool)
            else:
                assert (f.minimum is None or value >= f.minimum) and (f.maximum is None or value <= f.maximum)
        row = decode_label(ex.label_json(rec), model, id_field)
        assert (row.entity_id, row.event_time_ms, row.value) == (rec.entity_id, rec.event_time_ms, rec.label)
        pb = ex.label_protobuf(rec)
        assert decode_label(contracts.encode(pb), model, id_field, type(pb).DESCRIPTOR.full_name) == row


def test_sea_keeps_todays_bytes() -> None:
    ex = example("sea")
    cfg = datagen.StreamConfig(count=50, drift_at=20)
    assert [ex.raw_json(r) for r in ex.generate(cfg)] == [r.raw_json() for r in datagen.generate(cfg)]


def test_the_delivery_drift_costs_the_old_concept_clearly_in_mae() -> None:
    cfg = DeliveryConfig(count=6_000, drift_at=3_000, seed=42)
    before, after = measure_mae_shift(cfg)
    assert 2.0 < before < 2.8 and after > 5.5  # σ·√(2/π) ≈ 2.39, then +15 min on the ~30 % app orders
    model_before, model_after = measure_model_mae_shift(cfg)
    assert model_before < 3.2 and model_after > model_before + 3.0


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_produce_writes_the_declared_topics(name: str) -> None:
    ex, bus = example(name), MemoryBus()
    counts = produce(ex.config(count=40, drift_at=None), bus=bus, example=name,
                     options=ProduceOptions(rate=0, label_delay_ms=0))
    assert counts == {"events": 40, "labels": 40}
    raw, labels = bus.records(bus.topic(ex.raw_topic)), bus.records(bus.topic(ex.label_topic))
    assert len(raw) == len(labels) == 40
    assert {json.loads(r.value)[ex.entity.id_field] for r in raw} == {r.key.decode() for r in raw}
    header = labels[0].headers.get("message-type", b"").decode() or None
    assert decode_label(labels[0].value, ex.model, ex.entity.id_field, header).entity_id == labels[0].key.decode()
