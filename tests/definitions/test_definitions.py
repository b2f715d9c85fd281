"""The definitions model, its loader and the apply plan: plain values, no broker."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml
from mlops import definitions as d
from mlops.contracts import decode, encode
from mlops.contracts.v1 import definitions_pb2

ROOT = Path(__file__).resolve().parents[2]
SEA = ROOT / "examples" / "sea" / "definitions.yaml"


def sea_document() -> dict:
    return yaml.safe_load(SEA.read_text())


def refused(document: dict) -> list[tuple[str, str]]:
    with pytest.raises(d.DefinitionsError) as info:
        d.parse(document)
    return info.value.problems


def test_the_sea_example_declares_the_demo_model() -> None:
    defs = d.load(SEA)
    view = defs.feature_view("entity_activity")
    assert defs.feature_names(view) == ("x0_last", "x1_last", "x2_last", "x0_mean_60s", "x1_mean_60s", "events_30s")
    model = defs.model("sea")
    assert (model.task, model.metric, model.higher_is_better) == (d.Task.BINARY, "logloss", False)
    assert defs.model_inputs(model)[3] == ("entity_activity", "x0_mean_60s")


def test_json_schema_accepts_the_example_and_refuses_a_wrong_type() -> None:
    schema = d.json_schema()
    jsonschema.validate(sea_document(), schema)
    bad = sea_document()
    bad["models"][0]["task"] = "ranking"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_unknown_aggregation_names_the_field() -> None:
    doc = sea_document()
    doc["feature_views"][0]["features"][0]["aggregation"] = "median"
    [(path, message)] = refused(doc)
    assert path == "feature_views[0].features[0].aggregation"
    assert "median" in message


def test_aggregation_that_does_not_fit_the_field_type_is_refused() -> None:
    doc = sea_document()
    doc["feature_views"][0]["features"][0]["aggregation"] = "one_hot"
    [(_, message)] = refused(doc)
    assert "feature_views[0].features[0].aggregation" in message and "float field 'x0'" in message


def test_model_naming_a_missing_feature_is_refused() -> None:
    doc = sea_document()
    doc["models"][0]["features"].append("entity_activity.x9_last")
    [(_, message)] = refused(doc)
    assert "models[0].features[6]" in message and "x9_last" in message


def test_duplicate_names_are_refused() -> None:
    doc = sea_document()
    doc["models"].append(dict(doc["models"][0]))
    [(_, message)] = refused(doc)
    assert "duplicate model name 'sea'" in message


def test_gate_metric_must_fit_the_task() -> None:
    doc = sea_document()
    doc["models"][0]["gate"]["metric"] = "rmse"
    [(path, message)] = refused(doc)
    assert path == "models[0]" and "gate.metric 'rmse'" in message


def test_categorical_fields_one_hot_into_one_column_per_value(tmp_path: Path) -> None:
    doc = sea_document()
    doc["sources"][0]["fields"].append(
        {"name": "color", "type": "categorical", "vocabulary": ["red", "blue"], "unknown": "other"})
    doc["feature_views"][0]["features"].append({"name": "color", "field": "color", "aggregation": "one_hot"})
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({k: doc[k] for k in ("entities", "sources")}))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({k: doc[k] for k in ("feature_views", "models")}))
    defs = d.load(tmp_path)  # a folder: its files' lists are concatenated
    assert defs.feature_names(defs.feature_views[0])[-2:] == ("color=red", "color=blue")


def test_unknown_section_and_bad_yaml_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("modles: []\n")
    with pytest.raises(d.DefinitionsError) as info:
        d.load(tmp_path / "x.yaml")
    assert info.value.problems[0][0] == "modles" and str(tmp_path / "x.yaml") in str(info.value)
    (tmp_path / "x.yaml").write_text("models: [\n")
    with pytest.raises(d.DefinitionsError, match="not valid YAML"):
        d.load(tmp_path / "x.yaml")


def registered() -> d.Revision:
    first = d.plan(None, d.load(SEA), "alice", now_ms=1)
    assert first.revision is not None
    return first.revision


def test_unchanged_definitions_plan_no_revision() -> None:
    assert d.plan(registered(), d.load(SEA), "bob") == d.Plan((), None)


def test_adding_a_feature_versions_the_view_and_reports_the_change() -> None:
    doc = sea_document()
    doc["feature_views"][0]["features"].append(
        {"name": "x2_max_5m", "field": "x2", "aggregation": "max", "window": {"kind": "sliding", "size_s": 300}})
    result = d.plan(registered(), d.parse(doc), "bob", now_ms=2)
    assert result.revision is not None
    assert (result.revision.number, result.revision.view_versions) == (2, {"entity_activity": 2})
    [change] = result.changes
    assert (change.kind, change.name, change.action) == ("feature view", "entity_activity", "changed")
    assert change.details == ("features: added x2_max_5m",)


def test_removing_a_feature_a_registered_model_reads_is_refused() -> None:
    doc = sea_document()
    doc["feature_views"][0]["features"] = [f for f in doc["feature_views"][0]["features"] if f["name"] != "x2_last"]
    doc["models"][0]["features"].remove("entity_activity.x2_last")
    with pytest.raises(d.DefinitionsError) as info:
        d.plan(registered(), d.parse(doc), "bob")
    [(path, message)] = info.value.problems
    assert path == "feature_views[entity_activity].features" and "'x2_last'" in message and "'sea'" in message


def test_redefining_a_feature_in_use_and_changing_a_field_type_are_refused() -> None:
    doc = sea_document()
    doc["feature_views"][0]["features"][3]["window"]["size_s"] = 120
    doc["sources"][0]["fields"][2]["type"] = "int"
    with pytest.raises(d.DefinitionsError) as info:
        d.plan(registered(), d.parse(doc), "bob")
    paths = [p for p, _ in info.value.problems]
    assert paths == ["sources[sea_events].fields[x2].type", "feature_views[entity_activity].features[x2_last]",
                     "feature_views[entity_activity].features[x0_mean_60s]"]


def test_a_retired_model_frees_its_features() -> None:
    doc = sea_document()
    doc["models"] = []
    doc["feature_views"][0]["features"] = doc["feature_views"][0]["features"][:1]
    result = d.plan(registered(), d.parse(doc), "bob", prune=True)
    assert result.revision is not None and result.revision.view_versions == {"entity_activity": 2}
    assert {(c.kind, c.action) for c in result.changes} == {("model", "removed"), ("feature view", "changed")}


def test_a_revision_survives_its_contract_round_trip() -> None:
    revision = registered()
    record = decode(definitions_pb2.DefinitionsRevision, encode(revision.to_record()))
    again = d.Revision.from_record(record)
    assert again == revision and record.spec_sha256 == revision.sha256


def test_labels_are_read_as_declared_and_checked_per_task() -> None:
    from mlops.definitions.labels import LabelError, decode_label

    delivery = d.load(ROOT / "examples" / "delivery" / "definitions.yaml").model("delivery_time")
    row = decode_label(b'{"customer_id": "c1", "event_time": 1700000000000, "minutes": 31.5}', delivery,
                       "customer_id")
    assert (row.entity_id, row.event_time_ms, row.value) == ("c1", 1700000000000, 31.5)
    sea = d.load(SEA).model("sea")
    with pytest.raises(LabelError) as info:
        decode_label(b'{"entity_id": "e1", "event_time": 1, "label": 2.0}', sea, "entity_id")
    assert info.value.field == "label" and "not 0 or 1" in info.value.reason
    with pytest.raises(LabelError, match="minutes: missing"):
        decode_label(b'{"customer_id": "c1", "event_time": 1}', delivery, "customer_id")
    with pytest.raises(LabelError, match="not a finite number"):
        decode_label(b'{"customer_id": "c1", "event_time": 1, "minutes": NaN}', delivery, "customer_id")


def test_apply_keeps_what_other_files_declared_unless_pruned() -> None:
    delivery = d.load(ROOT / "examples" / "delivery" / "definitions.yaml")
    both = d.plan(registered(), delivery, "carol")
    assert both.revision is not None
    assert [m.name for m in both.revision.definitions.models] == ["sea", "delivery_time"]
    assert both.revision.view_versions == {"entity_activity": 1, "customer_orders": 1}
    assert {(c.kind, c.name, c.action) for c in both.changes} >= {("model", "delivery_time", "added")}
    pruned = d.plan(both.revision, delivery, "carol", prune=True)
    assert pruned.revision is not None and [m.name for m in pruned.revision.definitions.models] == ["delivery_time"]
    # a removed view keeps its number: declared again, it continues after it
    assert pruned.revision.view_versions == {"entity_activity": 1, "customer_orders": 1}


def test_a_record_layout_that_would_be_ambiguous_is_refused() -> None:
    doc = sea_document()
    doc["sources"][0]["event_time_field"] = "entity_id"
    [(_, message)] = refused(doc)
    assert "sources[0].event_time_field" in message and "must differ" in message
    doc = sea_document()
    doc["entities"][0]["id_field"] = "values"
    [(_, message)] = refused(doc)
    assert "'values'" in message
