"""What applying new definitions over the registered ones changes, and whether it may.

The one rule that keeps serving correct: **a feature's name keeps its meaning for as long as a registered model
reads it.** A model version is trained on named feature columns; inference keeps serving it from the online view
until a newer version replaces it. So `apply` refuses to remove or redefine a column a registered model reads, to
change a source field's type, an entity's id field or a source's entity, or a model's task; anything else (new
features, sources, views, models, policies) applies. A feature view whose content changes gets the next version
number, which a model's lineage records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlops.definitions.document import Definitions
from mlops.definitions.load import DefinitionsError, parse
from mlops.definitions.model import FeatureView

__all__ = ["Change", "check_compatible", "diff", "merge", "view_versions"]

_KINDS = (("entity", "entities"), ("source", "sources"), ("feature view", "feature_views"), ("model", "models"))


@dataclass(frozen=True)
class Change:
    kind: str  # entity | source | feature view | model
    name: str
    action: str  # added | removed | changed
    details: tuple[str, ...] = ()

    def __str__(self) -> str:
        sign = {"added": "+", "removed": "-", "changed": "~"}[self.action]
        head = f"{sign} {self.kind} {self.name} {self.action}"
        return head + "".join(f"\n    {d}" for d in self.details)


def _named(items: Any) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


def _value_diff(path: str, old: Any, new: Any) -> list[str]:
    """Readable differences between two JSON values; lists of named objects are compared by name."""
    if old == new:
        return []
    named = all(isinstance(x, list) and all(isinstance(i, dict) and "name" in i for i in x) for x in (old, new))
    if named:
        before, after = _named(old), _named(new)
        out = [f"{path}: added {n}" for n in after if n not in before]
        out += [f"{path}: removed {n}" for n in before if n not in after]
        for n in after:
            if n in before:
                out += _value_diff(f"{path}[{n}]", before[n], after[n])
        return out
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _value_diff(f"{path}.{key}" if path else key, old.get(key), new.get(key))
        return out
    return [f"{path}: {_short(old)} -> {_short(new)}"]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def diff(old: Definitions | None, new: Definitions) -> list[Change]:
    """Every object added, removed or changed, with field-level details, in a stable order."""
    before = old.model_dump(mode="json") if old is not None else {section: [] for _, section in _KINDS}
    after = new.model_dump(mode="json")
    changes: list[Change] = []
    for kind, section in _KINDS:
        b, a = _named(before[section]), _named(after[section])
        changes += [Change(kind, n, "added") for n in a if n not in b]
        changes += [Change(kind, n, "removed") for n in b if n not in a]
        for n in a:
            if n in b and a[n] != b[n]:
                changes.append(Change(kind, n, "changed", tuple(_value_diff("", b[n], a[n]))))
    return changes


def merge(old: Definitions | None, new: Definitions, *, prune: bool = False) -> Definitions:
    """What applying `new` over `old` leaves in force: as `kubectl apply`, the objects `new` declares replace
    those of the same kind and name and the others stay (two teams apply their own files side by side); with
    `prune`, only what `new` declares stays."""
    if old is None or prune:
        return new
    before, after = old.model_dump(mode="json"), new.model_dump(mode="json")
    merged = {}
    for _, section in _KINDS:
        items = _named(before[section]) | _named(after[section])
        merged[section] = list(items.values())
    return parse(merged, "the definitions in force merged with the applied file")


def _columns(definitions: Definitions, view: FeatureView) -> dict[str, dict[str, Any]]:
    """Each output column of a view with the definition that gives it its meaning."""
    source = definitions.source(view.source)
    out: dict[str, dict[str, Any]] = {}
    for feature in view.features:
        field = source.field(feature.field)
        meaning = feature.model_dump(mode="json", exclude={"description"}) | {
            "source": view.source, "field_type": field.type.value if field else None}
        for column in definitions.feature_names(view.model_copy(update={"features": (feature,)})):
            out[column] = meaning
    return out


def check_compatible(old: Definitions | None, new: Definitions) -> None:
    """Raise DefinitionsError naming every field whose change would break data already flowing or a model
    already trained; return when `new` may replace `old`."""
    if old is None:
        return
    problems: list[tuple[str, str]] = []
    for entity in new.entities:
        if entity.name in {e.name for e in old.entities}:
            before = old.entity(entity.name)
            if before.id_field != entity.id_field:
                problems.append((f"entities[{entity.name}].id_field",
                                 f"{before.id_field!r} -> {entity.id_field!r} re-keys every view; "
                                 "declare a new entity"))
    for source in new.sources:
        if source.name not in {s.name for s in old.sources}:
            continue
        before_source = old.source(source.name)
        if before_source.entity != source.entity:
            problems.append((f"sources[{source.name}].entity",
                             f"{before_source.entity!r} -> {source.entity!r}; declare a new source"))
        for field in source.fields:
            prior = before_source.field(field.name)
            if prior is not None and prior.type != field.type:
                problems.append((f"sources[{source.name}].fields[{field.name}].type",
                                 f"{prior.type.value} -> {field.type.value} is incompatible with records already "
                                 "written; declare a new field"))
    new_columns = {v.name: _columns(new, v) for v in new.feature_views}
    for model in old.models:
        if model.name not in {m.name for m in new.models}:
            continue  # retired with its versions: nothing reads its columns any more
        current = new.model(model.name)
        if current.task != model.task:
            problems.append((f"models[{model.name}].task",
                             f"{model.task.value} -> {current.task.value}; declare a new model"))
        for view_name, column in old.model_inputs(model):
            meaning = _columns(old, old.feature_view(view_name)).get(column)
            now = new_columns.get(view_name, {}).get(column)
            if now is None:
                problems.append((f"feature_views[{view_name}].features",
                                 f"{column!r} is read by registered model {model.name!r}; keep it until that model "
                                 "is retrained without it or removed"))
            elif now != meaning:
                problems.append((f"feature_views[{view_name}].features[{column}]",
                                 f"redefined while registered model {model.name!r} reads it; add a feature with a "
                                 "new name instead"))
    if problems:
        raise DefinitionsError(problems, head="refused: incompatible with the definitions in force")


def view_versions(old: Definitions | None, old_versions: dict[str, int], new: Definitions) -> dict[str, int]:
    """The version of every view in `new`: unchanged views keep theirs, changed ones get the next number, new ones
    start at 1 (or after the last version of a view of that name that was removed and declared again)."""
    out: dict[str, int] = {}
    before = {v.name: v for v in old.feature_views} if old is not None else {}
    for view in new.feature_views:
        prior = old_versions.get(view.name, 0)
        same = view.name in before and before[view.name] == view and prior > 0
        out[view.name] = prior if same else prior + 1
    return out
