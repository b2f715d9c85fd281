"""The whole declared platform, `Definitions`: its parts (`model.py`) and every reference between them checked.

A document that validates can be applied as it is; each error names the path of the field at fault
(`models[0].features[2]: ...`).
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import model_validator

from mlops.definitions.model import (
    AGGREGATIONS_FOR,
    Aggregation,
    Entity,
    FeatureView,
    FieldType,
    Model,
    SliceAttribute,
    Source,
    _Strict,
    _unique,
)

__all__ = ["Definitions"]


class Definitions(_Strict):
    """The whole declared platform: what `mlops apply` validates, diffs and publishes."""

    entities: tuple[Entity, ...] = ()
    sources: tuple[Source, ...] = ()
    feature_views: tuple[FeatureView, ...] = ()
    models: tuple[Model, ...] = ()

    def entity(self, name: str) -> Entity:
        return _by_name(self.entities, name)

    def source(self, name: str) -> Source:
        return _by_name(self.sources, name)

    def feature_view(self, name: str) -> FeatureView:
        return _by_name(self.feature_views, name)

    def model(self, name: str) -> Model:
        return _by_name(self.models, name)

    def feature_names(self, view: FeatureView) -> tuple[str, ...]:
        """The view's output columns: one per feature, one per vocabulary value for a one-hot feature."""
        source = self.source(view.source)
        names: list[str] = []
        for feature in view.features:
            if feature.aggregation is Aggregation.ONE_HOT:
                field = source.field(feature.field)
                assert field is not None and field.vocabulary is not None  # checked by _references
                names.extend(f"{feature.name}={value}" for value in field.vocabulary)
            else:
                names.append(feature.name)
        return tuple(names)

    def model_inputs(self, model: Model) -> tuple[tuple[str, str], ...]:
        """(view, column) of each model input, in input order."""
        return tuple(_split_ref(ref) for ref in model.features)

    def slices(self, model: Model) -> tuple[SliceAttribute, ...]:
        """What `model`'s holdout is sliced by: its gate's declared `slices.attributes`, then every feature of a
        `sensitive: true` source field the model reads whole (all of a one-hot group's columns) not declared there.
        Raises ValueError naming an attribute that is not a model input (checked when the document validates)."""
        declared = model.gate.slices.attributes if model.gate.slices is not None else ()
        out = [self._slice_attribute(model, ref, f"gate.slices.attributes[{i}]") for i, ref in enumerate(declared)]
        seen = set(declared)
        for view_name, column in self.model_inputs(model):
            view = self.feature_view(view_name)
            feature = next((f for f in view.features if column == f.name or column.startswith(f"{f.name}=")), None)
            field = self.source(view.source).field(feature.field) if feature is not None else None
            ref = f"{view_name}.{feature.name}" if feature is not None else ""
            if field is not None and field.sensitive and ref not in seen:
                seen.add(ref)
                try:
                    out.append(self._slice_attribute(model, ref, "features"))
                except ValueError:  # reads part of a one-hot group only: declare the slices to be judged by
                    continue
        return tuple(out)

    def _slice_attribute(self, model: Model, ref: str, where: str) -> SliceAttribute:
        view_name, name = _split_ref(ref)
        if not name or view_name not in {v.name for v in self.feature_views}:
            raise ValueError(f"{where}: {ref!r} should be `view.feature` of a declared feature view")
        view = self.feature_view(view_name)
        feature = next((f for f in view.features if f.name == name), None)
        if feature is None:
            raise ValueError(f"{where}: feature view {view_name!r} has no feature {name!r}; its features: "
                             f"{[f.name for f in view.features]}")
        field = self.source(view.source).field(feature.field)
        assert field is not None  # checked by _references
        values: tuple[str, ...] | None = None
        one_hot = feature.aggregation is Aggregation.ONE_HOT
        if one_hot:
            values = field.vocabulary
            columns = tuple(f"{view_name}.{c}" for c in self.feature_names(view.model_copy(
                update={"features": (feature,)})))
        else:
            columns = (ref,)
            if feature.aggregation is Aggregation.LAST and field.type is FieldType.CATEGORICAL:
                values = field.vocabulary
            elif feature.aggregation is Aggregation.LAST and field.type is FieldType.BOOL:
                values = ("false", "true")
        missing = [c for c in columns if c not in model.features]
        if missing:
            raise ValueError(f"{where}: {ref!r} is not among model {model.name!r}'s features (lacks "
                             f"{missing}); slices are cut from the holdout's model inputs")
        return SliceAttribute(ref, columns, values, one_hot, field.sensitive)

    @model_validator(mode="after")
    def _references(self) -> Self:
        for kind, items in (("entity", self.entities), ("source", self.sources),
                            ("feature view", self.feature_views), ("model", self.models)):
            _unique([i.name for i in items], kind)
        entities = {e.name for e in self.entities}
        topics: dict[str, str] = {}
        for i, source in enumerate(self.sources):
            where = f"sources[{i}]"
            _known(source.entity, entities, f"{where}.entity", "entity")
            if source.topic in topics:
                raise ValueError(f"{where}.topic: {source.topic!r} is already the topic of source "
                                 f"{topics[source.topic]!r}")
            topics[source.topic] = source.name
            if source.event_time_field in {f.name for f in source.fields}:
                raise ValueError(f"{where}.event_time_field: {source.event_time_field!r} is also declared as a field")
            # a raw record holds the id field, the event time field and these keys side by side
            reserved = {"schema_version", "values", "event_id"}
            id_field = self.entity(source.entity).id_field
            if id_field == source.event_time_field or {id_field, source.event_time_field} & reserved:
                raise ValueError(f"{where}.event_time_field: the id field {id_field!r} and the event time field "
                                 f"{source.event_time_field!r} must differ from each other and from {sorted(reserved)}")
        sources = {s.name: s for s in self.sources}
        for i, view in enumerate(self.feature_views):
            where = f"feature_views[{i}]"
            _known(view.entity, entities, f"{where}.entity", "entity")
            _known(view.source, set(sources), f"{where}.source", "source")
            source = sources[view.source]
            if source.entity != view.entity:
                raise ValueError(f"{where}.entity: {view.entity!r} but source {source.name!r} is keyed by "
                                 f"{source.entity!r}")
            for j, feature in enumerate(view.features):
                fwhere = f"{where}.features[{j}]"
                field = source.field(feature.field)
                if field is None:
                    raise ValueError(f"{fwhere}.field: source {source.name!r} has no field {feature.field!r}; "
                                     f"its fields: {[f.name for f in source.fields]}")
                if feature.aggregation not in AGGREGATIONS_FOR[field.type]:
                    allowed = sorted(a.value for a in AGGREGATIONS_FOR[field.type])
                    raise ValueError(f"{fwhere}.aggregation: {feature.aggregation.value} does not apply to "
                                     f"{field.type.value} field {field.name!r}; use one of {allowed}")
                if feature.aggregation is Aggregation.ONE_HOT and field.vocabulary is None:
                    raise ValueError(f"{fwhere}.aggregation: one_hot needs a vocabulary on field {field.name!r}")
        columns = {v.name: set(self.feature_names(v)) for v in self.feature_views}
        for i, model in enumerate(self.models):
            for j, ref in enumerate(model.features):
                where = f"models[{i}].features[{j}]"
                if "." not in ref:
                    raise ValueError(f"{where}: {ref!r} should be `view.feature`")
                view_name, column = _split_ref(ref)
                _known(view_name, set(columns), where, "feature view")
                if column not in columns[view_name]:
                    raise ValueError(f"{where}: feature view {view_name!r} has no feature {column!r}; "
                                     f"its features: {sorted(columns[view_name])}")
            views = {_split_ref(ref)[0] for ref in model.features}
            view_entities = {self.feature_view(v).entity for v in views}
            if len(view_entities) > 1:
                raise ValueError(f"models[{i}].features: features of several entities {sorted(view_entities)}; "
                                 "a model reads one entity's views")
            try:
                self.slices(model)
            except ValueError as exc:
                raise ValueError(f"models[{i}].{exc}") from None
        return self


def _split_ref(ref: str) -> tuple[str, str]:
    view, _, column = ref.partition(".")
    return view, column


def _known(name: str, known: set[str], where: str, kind: str) -> None:
    if name not in known:
        raise ValueError(f"{where}: unknown {kind} {name!r}; declared: {sorted(known) or 'none'}")


def _by_name(items: tuple[Any, ...], name: str) -> Any:
    for item in items:
        if item.name == name:
            return item
    raise KeyError(name)
