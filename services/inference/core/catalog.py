"""What the declared definitions say about serving: per model its inputs, task, outputs and how to read its
features from the online views, built once per definitions revision into an immutable `Catalog`.

The data plane holds one Catalog reference and a new revision swaps it whole, so a request sees one revision from
start to end. A version is served with the inputs it was trained on (its promotion's feature names), which may be
fewer than the declaration names after a model gained a feature: `Catalog.for_inputs` builds that variant of the
spec once per feature list.

How a model reads a view (`ViewRead`): the current version's layout first, then each older version of the view
that has every column the model needs from it (a column's meaning never changes while a registered model reads it,
so an older version's value is still the right one), newest first. Older layouts are only known from revisions
this process has seen, which `LayoutHistory` remembers (the definitions follower replays them all at start).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mlops.definitions import Definitions, Revision, Task
from mlops.definitions.model import MissingEntity, Model
from mlops.online_store import ViewLayout

from services.inference.errors import ModelMismatch, ModelNotFound

__all__ = ["Catalog", "LayoutHistory", "ModelSpec", "OutputSpec", "ViewRead", "build_catalog"]

PROBABILITIES = "probabilities"
PREDICTIONS = "predictions"


@dataclass(frozen=True)
class ViewRead:
    """How one model reads one feature view: layouts to try in order, and where each of its columns goes."""

    view: str
    layouts: tuple[ViewLayout, ...]  # the current version first, then older ones that have every column
    columns: tuple[str, ...]  # the model's columns from this view, in model-input order
    positions: tuple[int, ...]  # their positions in the model input
    indexes: tuple[tuple[int, ...], ...]  # per layout: where each column sits in that layout's record
    direct: bool  # the current layout's record IS the model input (every column, in order): no reordering


@dataclass(frozen=True)
class OutputSpec:
    """The one output a model serves, by task: its Open Inference Protocol name and shape, and the ONNX output
    it comes from (`mlops.evaluation.ONNX_OUTPUT`)."""

    name: str
    onnx_name: str
    width: int  # classes for probabilities, 1 for a regression value


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: Task
    feature_names: tuple[str, ...]  # declared refs `view.column`, in model-input order
    id_field: str  # the entity's id field (what batch-scoring rows name the entity by)
    classes: tuple[int, ...] | None
    missing_entity: MissingEntity
    entity_join: bool
    views: tuple[ViewRead, ...]
    output: OutputSpec

    @property
    def k(self) -> int:
        return len(self.feature_names)


@dataclass(frozen=True)
class Catalog:
    """The models one definitions revision declares, by name."""

    revision: int
    models: Mapping[str, ModelSpec] = field(default_factory=dict)
    definitions: Definitions | None = None
    view_versions: Mapping[str, int] = field(default_factory=dict)
    history: LayoutHistory | None = None
    _variants: dict[tuple[str, tuple[str, ...]], ModelSpec] = field(default_factory=dict, repr=False)

    def for_inputs(self, name: str, feature_names: tuple[str, ...]) -> ModelSpec:
        """The declared spec of `name`, read with `feature_names` as its inputs (a version trained before the
        model's feature list changed); the declared spec itself when they are the same or unknown."""
        spec = self.get(name)
        if not feature_names or feature_names == spec.feature_names or self.definitions is None:
            return spec
        key = (name, feature_names)
        variant = self._variants.get(key)
        if variant is None:
            declared = {c for v in self.definitions.feature_views for c in
                        (f"{v.name}.{col}" for col in self.definitions.feature_names(v))}
            unknown = [f for f in feature_names if f not in declared]
            if unknown:
                raise ModelMismatch(name, f"it was trained on features the definitions no longer declare: {unknown}")
            model = self.definitions.model(name).model_copy(update={"features": feature_names})
            variant = self._variants[key] = _spec(self.definitions, model, self.view_versions, self.history)
        return variant

    def get(self, name: str, served: list[str] | None = None) -> ModelSpec:
        spec = self.models.get(name)
        if spec is None:
            raise ModelNotFound(name, served=served if served is not None else sorted(self.models),
                                reason="is not declared")
        return spec


class LayoutHistory:
    """Every (view, version) layout seen in a revision, so a reader can fall back to older versions. Written by
    the one thread that follows the definitions; readers only see the immutable Catalogs built from it."""

    def __init__(self) -> None:
        self._layouts: dict[str, dict[int, ViewLayout]] = {}

    def add(self, revision: Revision) -> None:
        d = revision.definitions
        for view in d.feature_views:
            version = revision.view_versions[view.name]
            self._layouts.setdefault(view.name, {})[version] = ViewLayout.of(d, view, version)

    def older(self, view: str, version: int, columns: tuple[str, ...]) -> list[ViewLayout]:
        """Layouts of `view` older than `version` that hold every one of `columns`, newest first."""
        known = self._layouts.get(view, {})
        return [known[v] for v in sorted(known, reverse=True)
                if v < version and set(columns) <= set(known[v].columns)]


def output_spec(model: Model) -> OutputSpec:
    from mlops.evaluation import ONNX_OUTPUT

    if model.task is Task.REGRESSION:
        return OutputSpec(PREDICTIONS, ONNX_OUTPUT[model.task], 1)
    width = 2 if model.task is Task.BINARY else len(model.classes or ())
    return OutputSpec(PROBABILITIES, ONNX_OUTPUT[model.task], width)


def _view_reads(d: Definitions, model: Model, versions: Mapping[str, int],
                history: LayoutHistory | None) -> tuple[ViewRead, ...]:
    by_view: dict[str, list[tuple[int, str]]] = {}
    for position, (view, column) in enumerate(d.model_inputs(model)):
        by_view.setdefault(view, []).append((position, column))
    reads = []
    for view, wanted in by_view.items():
        columns = tuple(c for _, c in wanted)
        current = ViewLayout.of(d, view, versions[view])
        layouts = [current] + (history.older(view, current.version, columns) if history is not None else [])
        positions = tuple(p for p, _ in wanted)
        indexes = tuple(tuple(layout.columns.index(c) for c in columns) for layout in layouts)
        every = tuple(range(len(model.features)))
        direct = positions == every and indexes[0] == every and len(current.columns) == len(every)
        reads.append(ViewRead(view, tuple(layouts), columns, positions, indexes, direct))
    return tuple(reads)


def _spec(d: Definitions, model: Model, versions: Mapping[str, int], history: LayoutHistory | None) -> ModelSpec:
    entity = d.entity(d.feature_view(d.model_inputs(model)[0][0]).entity)
    return ModelSpec(model.name, model.task, model.features, entity.id_field, model.classes,
                     model.serving.missing_entity, model.serving.entity_join,
                     _view_reads(d, model, versions, history), output_spec(model))


def build_catalog(revision: Revision, history: LayoutHistory | None = None) -> Catalog:
    """The serving view of `revision` (with `history`: older view versions to fall back to)."""
    d = revision.definitions
    models = {model.name: _spec(d, model, revision.view_versions, history) for model in d.models}
    return Catalog(revision.number, models, d, revision.view_versions, history)
