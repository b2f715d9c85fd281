"""Slices and sensitive attributes in the definitions, and the slice metrics of `mlops.evaluation`: plain values."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlops import definitions as d
from mlops.definitions.model import SliceAttribute
from mlops.evaluation import interval, slice_scores, slice_values

ROOT = Path(__file__).resolve().parents[2]
DELIVERY = ROOT / "examples" / "delivery" / "definitions.yaml"


def delivery(**gate: object) -> dict:
    doc = yaml.safe_load(DELIVERY.read_text())
    doc["models"][0]["gate"] = {"metric": "mae", **gate}
    return doc


def refused(document: dict) -> list[tuple[str, str]]:
    with pytest.raises(d.DefinitionsError) as info:
        d.parse(document)
    return info.value.problems


def test_the_delivery_example_slices_by_channel_and_basket_value() -> None:
    defs = d.load(DELIVERY)
    model = defs.model("delivery_time")
    channel, amount = defs.slices(model)
    assert channel == SliceAttribute("customer_orders.channel", tuple(
        f"customer_orders.channel={v}" for v in ("web", "app", "store")), ("web", "app", "store"), True, True)
    assert amount == SliceAttribute("customer_orders.amount_last", ("customer_orders.amount_last",), None)
    assert model.gate.slices.max_slice_loss == 2.0 and defs.source("orders").field("channel").sensitive


def test_a_sensitive_field_a_model_reads_is_sliced_without_being_declared() -> None:
    doc = delivery()
    defs = d.parse(doc)
    assert [a.name for a in defs.slices(defs.model("delivery_time"))] == ["customer_orders.channel"]
    doc["sources"][0]["fields"][3]["sensitive"] = False
    defs = d.parse(doc)
    assert defs.slices(defs.model("delivery_time")) == ()


def test_a_slice_attribute_that_is_not_a_model_input_is_refused_naming_the_field() -> None:
    problems = refused(delivery(slices={"attributes": ["customer_orders.payments_1d"]}))
    assert problems[0][0] == ""  # a reference between sections: the path is in the message
    assert problems[0][1].startswith("models[0].gate.slices.attributes[0]: 'customer_orders.payments_1d' is not "
                                     "among model 'delivery_time''s features"), problems
    problems = refused(delivery(slices={"attributes": ["customer_orders.nope"]}))
    assert "models[0].gate.slices.attributes[0]: feature view 'customer_orders' has no feature 'nope'" in \
        problems[0][1]
    problems = refused(delivery(slices={"attributes": ["nowhere.x"]}))
    assert "gate.slices.attributes[0]: 'nowhere.x' should be `view.feature`" in problems[0][1]


def test_slice_thresholds_are_checked_naming_the_field() -> None:
    problems = refused(delivery(slices={"max_slice_loss": -1}))
    assert problems[0][0] == "models[0].gate.slices.max_slice_loss"
    problems = refused(delivery(slices={"bins": 1}))
    assert problems[0][0] == "models[0].gate.slices.bins"
    problems = refused(delivery(slices={"attributes": ["a.b", "a.b"]}))
    assert "duplicate slice attribute name 'a.b'" in problems[0][1]


def test_the_json_schema_documents_slices_and_sensitive() -> None:
    import jsonschema

    schema = d.json_schema()
    jsonschema.validate(yaml.safe_load(DELIVERY.read_text()), schema)
    assert "max_slice_loss" in schema["$defs"]["SlicePolicy"]["properties"]
    assert "sensitive" in schema["$defs"]["SourceField"]["properties"]


def test_slice_values_read_one_hot_groups_indices_and_quantile_bins() -> None:
    onehot = SliceAttribute("v.c", ("v.c=a", "v.c=b"), ("a", "b"), one_hot=True)
    cols = np.array([[1, 0], [0, 1], [0, 0], [np.nan, np.nan]], dtype=np.float32)
    assert list(slice_values(onehot, cols)) == ["a", "b", "__other__", "missing"]
    index = SliceAttribute("v.c", ("v.c",), ("a", "b"))
    assert list(slice_values(index, np.array([[0], [1], [-1], [np.nan]]))) == ["a", "b", "__other__", "missing"]
    numeric = SliceAttribute("v.x", ("v.x",), None)
    bins = slice_values(numeric, np.arange(100, dtype=np.float64).reshape(-1, 1), bins=4)
    assert sorted(set(bins)) == ["[0, 24.75)", "[24.75, 49.5)", "[49.5, 74.25)", "[74.25, 99]"]
    assert [int(np.sum(bins == b)) for b in sorted(set(bins))] == [25, 25, 25, 25]


def test_accuracy_gets_wilson_interval_and_other_metrics_a_seeded_bootstrap() -> None:
    y = np.array([1.0] * 8 + [0.0] * 2)
    proba = np.column_stack([1 - np.ones(10) * 0.9, np.ones(10) * 0.9])  # always predicts 1: accuracy 0.8
    value, low, high = interval(d.Task.BINARY, "accuracy", y, proba)
    # Wilson score interval for 8 of 10, z = 1.96 (e.g. statsmodels' proportion_confint(8, 10, method="wilson"))
    assert (value, round(low, 4), round(high, 4)) == (0.8, 0.4902, 0.9433)
    rng = np.random.default_rng(0)
    y = rng.normal(0, 1, 400)
    pred = y + rng.normal(0, 1, 400)
    mae, low, high = interval(d.Task.REGRESSION, "mae", y, pred)
    assert low < mae < high and high - low < 0.3
    assert interval(d.Task.REGRESSION, "mae", y, pred) == (mae, low, high)  # seeded: the same every time
    # the normal approximation of the mean absolute error's interval agrees with the bootstrap to a few percent
    se = np.std(np.abs(y - pred), ddof=1) / math.sqrt(len(y))
    assert low == pytest.approx(mae - 1.96 * se, abs=0.03) and high == pytest.approx(mae + 1.96 * se, abs=0.03)


def test_slice_scores_give_each_slice_its_metric_and_count() -> None:
    y = np.array([0.0, 1.0, 1.0, 0.0, 5.0, 5.0])
    pred = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    groups = {"v.c": np.array(["a", "a", "a", "a", "b", "b"], dtype=object)}
    a, b = slice_scores(d.Task.REGRESSION, "mae", y, pred, groups)
    assert (a.value, a.rows, a.metric, b.value, b.rows, b.metric) == ("a", 4, 0.0, "b", 2, 4.0)
