"""Unit tests of what the definitions make of serving (no broker): the catalog per revision, the online join per
view with older-version fallback and the declared missing-entity policy, outputs by task, and batch scoring on the
same code as a request."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from inference_helpers import DELIVERY, SEA, SEA_COLUMNS, make_onnx, make_regression_onnx, revision
from mlops.definitions import Task, parse
from mlops.definitions.model import ServingPolicy
from mlops.online_store import MemoryOnlineStore, ViewLayout, ViewUpdate

from services.inference.core import (
    Batcher,
    BatchPolicy,
    DataPlane,
    InferRequest,
    LayoutHistory,
    ModelRepository,
    ModelVersion,
    build_catalog,
    scores_and_labels,
)
from services.inference.core.features import assemble
from services.inference.core.scoring import BY_ENTITY, BY_FEATURES, input_mode, output_columns, parse_features, score
from services.inference.errors import EntityNotFound, InvalidInput, ModelMismatch
from services.inference.settings import InferenceSettings


def test_the_sea_catalog_reads_its_one_view_directly() -> None:
    catalog = build_catalog(revision(SEA))
    spec = catalog.models["sea"]
    assert spec.task is Task.BINARY and spec.k == 6 and spec.id_field == "entity_id"
    assert (spec.output.name, spec.output.onnx_name, spec.output.width) == ("probabilities", "probabilities", 2)
    (read,) = spec.views
    assert read.direct and read.layouts == (ViewLayout.of(SEA, "entity_activity", 1),)


def test_delivery_reads_a_subset_of_its_view_in_declared_order() -> None:
    spec = build_catalog(revision(DELIVERY)).models["delivery_time"]
    assert spec.task is Task.REGRESSION and spec.id_field == "customer_id"
    assert (spec.output.name, spec.output.onnx_name, spec.output.width) == ("predictions", "variable", 1)
    (read,) = spec.views
    assert not read.direct and read.positions == tuple(range(8))
    layout = read.layouts[0]
    assert [layout.columns[i] for i in read.indexes[0]] == [f.partition(".")[2] for f in spec.feature_names]


def _sea_with_extra_feature():  # type: ignore[no-untyped-def]
    doc = SEA.model_dump(mode="json")
    doc["feature_views"][0]["features"].append({"name": "x2_max", "field": "x2", "aggregation": "max"})
    return parse(doc)


async def test_an_entity_missing_in_the_current_view_version_is_read_from_an_older_one() -> None:
    first = revision(SEA)
    second = revision(_sea_with_extra_feature(), first)
    assert second.view_versions["entity_activity"] == 2
    history = LayoutHistory()
    history.add(first)
    history.add(second)
    spec = build_catalog(second, history).models["sea"]
    (read,) = spec.views
    assert [lay.version for lay in read.layouts] == [2, 1]
    v1, v2 = read.layouts[1], read.layouts[0]
    store = MemoryOnlineStore()
    await store.write_many([
        ViewUpdate(v2, "new", dict.fromkeys(v2.columns, 2.0), 200),
        ViewUpdate(v1, "old", dict.fromkeys(v1.columns, 1.0), 100),
        ViewUpdate(v1, "new", dict.fromkeys(v1.columns, 9.0), 50),  # the current version wins
    ])
    got = await assemble(store, spec, ["new", "old"])
    assert got.x.tolist() == [[2.0] * 6, [1.0] * 6] and got.as_of_ms == [200, 100]
    with pytest.raises(EntityNotFound, match="'ghost'") as exc:
        await assemble(store, spec, ["old", "ghost"])
    assert exc.value.entity_ids == ["ghost"] and exc.value.model == "sea"
    # without the history (a process that never saw revision 1) only the current version is read
    with pytest.raises(EntityNotFound, match="'old'"):
        await assemble(store, build_catalog(second).models["sea"], ["old"])


async def test_missing_entities_get_nan_under_the_defaults_policy() -> None:
    lenient = SEA.model_copy(update={"models": (SEA.models[0].model_copy(
        update={"serving": ServingPolicy(missing_entity="defaults")}),)})
    spec = build_catalog(revision(lenient)).models["sea"]
    store = MemoryOnlineStore()
    await store.write_many([ViewUpdate(spec.views[0].layouts[0], "e1", dict.fromkeys(SEA_COLUMNS, 3.0), 7)])
    got = await assemble(store, spec, ["e1", "nobody"])
    assert got.x[0].tolist() == [3.0] * 6 and np.isnan(got.x[1]).all() and got.as_of_ms == [7, 0]
    assert [f.entity_id for f in got.seen] == ["e1"]


def test_outputs_by_task() -> None:
    probs = np.array([[0.2, 0.8], [0.9, 0.1]], dtype=np.float32)
    scores, labels = scores_and_labels(Task.BINARY, probs, None)
    assert scores == pytest.approx([0.8, 0.1]) and labels == [1.0, 0.0]
    multi = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], dtype=np.float32)
    scores, labels = scores_and_labels(Task.MULTICLASS, multi, (3, 5, 7))
    assert scores == pytest.approx([0.7, 0.5]) and labels == [5.0, 3.0]
    scores, labels = scores_and_labels(Task.REGRESSION, np.array([[12.5], [3.0]], dtype=np.float32), None)
    assert scores == labels == [12.5, 3.0]


def _multiclass_doc():  # type: ignore[no-untyped-def]
    doc = SEA.model_dump(mode="json")
    doc["models"][0] |= {"name": "tri", "task": "multiclass", "classes": [0, 1, 2], "gate": {}}
    return parse(doc)


def test_a_binary_model_does_not_fit_a_multiclass_declaration() -> None:
    spec = build_catalog(revision(_multiclass_doc())).models["tri"]
    assert spec.output.width == 3 and output_columns(spec) == [
        "probability_0", "probability_1", "probability_2", "score", "predicted_label"]
    model = ModelVersion.load("tri", "1", make_onnx(), spec.feature_names)
    with pytest.raises(ModelMismatch, match=r"output 'probabilities' has shape \[-1, 2\]"):
        model.bound(spec)


async def test_batch_scoring_equals_a_request_for_the_same_rows() -> None:
    rev = revision(DELIVERY)
    spec = build_catalog(rev).models["delivery_time"]
    model = ModelVersion.load("delivery_time", "1", make_regression_onnx(spec.k), spec.feature_names)
    layout = spec.views[0].layouts[0]
    store = MemoryOnlineStore()
    rng = np.random.default_rng(5)
    ids = [f"c{i}" for i in range(20)]
    await store.write_many([ViewUpdate(layout, e, {c: float(v) for c, v in zip(layout.columns, rng.uniform(
        0, 10, len(layout.columns)), strict=True)}, 1) for e in ids])
    repo = ModelRepository()
    repo.promote(model)
    with ThreadPoolExecutor(1) as ex:
        batcher = Batcher(ex, BatchPolicy())
        dp = DataPlane(InferenceSettings(), repo, batcher, store, catalog=build_catalog(rev))
        online = await dp.infer(InferRequest("delivery_time", parameters={"entity_id": ",".join(ids)}))
        await batcher.close()
    assert input_mode(spec, ["customer_id", "other"]) == BY_ENTITY
    by_entity = await score(spec, model, entity_ids=ids, store=store)
    assert np.array_equal(by_entity.output, online.outputs[0].data)
    assert by_entity.scores == by_entity.labels == online.outputs[0].data.reshape(-1).astype(float).tolist()

    assert input_mode(spec, list(spec.feature_names)) == BY_FEATURES
    columns = {name: [repr(float(v)) for v in by_entity.x[:, j]] for j, name in enumerate(spec.feature_names)}
    by_features = await score(spec, model, x=parse_features(spec, columns))
    assert np.array_equal(by_features.output, online.outputs[0].data)
    with pytest.raises(InvalidInput, match="'customer_id'.*missing"):
        input_mode(spec, ["customer_orders.amount_last"])
    with pytest.raises(InvalidInput, match="row 2, column 'customer_orders.amount_last'"):
        parse_features(spec, columns | {"customer_orders.amount_last": ["1", "lots"] + ["1"] * 18}, first_row=1)
    empty = parse_features(spec, columns | {"customer_orders.amount_last": [""] * 20})
    assert np.isnan(empty[:, 0]).all()


def test_a_version_keeps_serving_with_the_inputs_it_was_trained_on_after_the_model_gains_a_feature() -> None:
    first = revision(DELIVERY)
    old_inputs = DELIVERY.model("delivery_time").features
    grown = DELIVERY.model_copy(update={"models": (DELIVERY.model("delivery_time").model_copy(
        update={"features": (*old_inputs, "customer_orders.items_sum_1d")}),)})
    second = revision(parse(grown.model_dump(mode="json")), first)
    catalog = build_catalog(second)
    assert catalog.models["delivery_time"].k == len(old_inputs) + 1  # what the next training reads
    v1 = ModelVersion.load("delivery_time", "1", make_regression_onnx(len(old_inputs)), old_inputs)
    spec = catalog.for_inputs("delivery_time", v1.feature_names)
    assert spec.k == len(old_inputs) and spec.feature_names == old_inputs
    assert v1.bound(spec) is not None  # fits: served, no FAILED_PRECONDITION
    assert catalog.for_inputs("delivery_time", v1.feature_names) is spec  # built once per feature list
    with pytest.raises(ModelMismatch):
        v1.bound(catalog.models["delivery_time"])  # against the grown declaration it would not fit
