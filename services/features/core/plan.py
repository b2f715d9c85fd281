"""The definitions in force, compiled once per revision into what the fold runs: views per source, each view's
state units and features, and its online-store layout.

A *unit* is one piece of per-entity state: an accumulator over a window (or, for a sliding window, the buffered
events of a field, which every aggregation over that window reads). Its key says what it holds — source, field,
window, accumulator — so features that declare the same thing share it, and a new view version keeps the state of
every feature whose definition did not change (a changed feature gets a new key, hence fresh state).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from mlops.definitions import Definitions, FeatureView, FieldType, Revision, Window, WindowKind
from mlops.online_store import ViewLayout

from services.features.core.aggregations import Aggregator, aggregator
from services.features.core.windows import Hopping, Sliding, Tumbling, Whole, Windowing


@dataclass(frozen=True)
class Unit:
    key: str
    field: str
    categorical: bool  # read from the event's categories, not its values
    window: Windowing
    agg: Aggregator | None  # None for a sliding buffer: its features fold it with their own aggregator


@dataclass(frozen=True)
class FeaturePlan:
    name: str
    unit: str  # the key of the unit it reads
    window: Windowing
    agg: Aggregator


@dataclass(frozen=True)
class ViewPlan:
    name: str
    layout: ViewLayout
    units: tuple[Unit, ...]
    features: tuple[FeaturePlan, ...]
    remembered_events: int = 64  # recent event ids kept per entity to skip replays (Limits.remembered_events)


@dataclass(frozen=True)
class Limits:
    """Bounds on per-entity state (from the settings)."""

    grace_ms: int = 300_000  # how late an event may be and still count in its window
    sliding_max_events: int = 10_000  # most buffered events per entity, field and sliding window
    remembered_events: int = 64  # recent event ids per entity and view: a replayed one is not folded again


@dataclass(frozen=True)
class FeaturesConfig:
    """What features computes under one definitions revision; immutable, swapped whole on a new revision."""

    revision: int
    views_by_source: MappingProxyType[str, tuple[ViewPlan, ...]]
    only_source: str | None  # the source of an event that names none (when exactly one is declared)

    def views_for(self, source_name: str) -> tuple[ViewPlan, ...] | None:
        """The views of an event's source; None when the source is unknown (or unnamed with several declared)."""
        return self.views_by_source.get(source_name or self.only_source or "")

    @property
    def views(self) -> tuple[ViewPlan, ...]:
        return tuple(v for views in self.views_by_source.values() for v in views)

    @classmethod
    def of(cls, revision: Revision, limits: Limits | None = None) -> FeaturesConfig:
        d = revision.definitions
        by_source: dict[str, list[ViewPlan]] = {s.name: [] for s in d.sources}
        for view in d.feature_views:
            by_source[view.source].append(view_plan(d, view, revision.view_versions[view.name], limits or Limits()))
        only = d.sources[0].name if len(d.sources) == 1 else None
        return cls(revision.number, MappingProxyType({s: tuple(v) for s, v in by_source.items()}), only)


def windowing(window: Window | None, limits: Limits) -> Windowing:
    if window is None:
        return Whole()
    size = round(window.size_s * 1000)
    if window.kind is WindowKind.TUMBLING:
        return Tumbling(size, limits.grace_ms)
    if window.kind is WindowKind.HOPPING:
        assert window.step_s is not None  # checked by the definitions
        return Hopping(size, round(window.step_s * 1000), limits.grace_ms)
    return Sliding(size, limits.grace_ms, limits.sliding_max_events)


def view_plan(d: Definitions, view: FeatureView, version: int, limits: Limits) -> ViewPlan:
    source = d.source(view.source)
    units: dict[str, Unit] = {}
    features: list[FeaturePlan] = []
    for feature in view.features:
        field = source.field(feature.field)
        assert field is not None  # checked by the definitions
        categorical = field.type is FieldType.CATEGORICAL
        agg = aggregator(feature.aggregation, field.vocabulary if categorical else None)
        win = windowing(feature.window, limits)
        shared = isinstance(win, Sliding)
        key = f"{source.name}.{field.name}|{win.key}" + ("" if shared else f"|{agg.kind}")
        units.setdefault(key, Unit(key, field.name, categorical, win, None if shared else agg))
        features.append(FeaturePlan(feature.name, key, win, agg))
    return ViewPlan(view.name, ViewLayout.of(d, view, version), tuple(units.values()), tuple(features),
                    limits.remembered_events)
