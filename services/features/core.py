"""The transport-free core of features: how one event folds into per-entity state and what vector comes out.

`fold` is the whole computation for one event. It keeps its state in a `State` (get / put by table and key):
the faust tables at the edge, plain dicts in `DictState`, so `ReferenceAggregator` and the agent run the same
code.

State per entity:
- table `LATEST`, key entity: {"as_of_ms": int, "<source>": float, ...}: the values of the newest event by event
  time (an event that arrives late does not overwrite newer `last` values, but still counts in its windows);
- table <WindowSpec>, key (entity, window range): {feature name: [count, sum, min, max]}.

Window ranges are (start_s, end_s) as faust builds them. A tumbling feature reads the window of the event time;
a hopping feature reads the OLDEST window holding it (the one covering the most history: for 30 s / 10 s, the
events of the last 20–30 s), not faust's `current()` (the newest window, only the last 0–10 s).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlops.schema import Aggregate, FeatureSet

from services.features.errors import UnsupportedAggregate

Acc = list[float]  # [count, sum, min, max]
WindowState = dict[str, Acc]
WindowRange = tuple[float, float]
FUNCTIONS = ("last", "mean", "count", "min", "max", "sum")
LATEST = "latest"  # the table of the newest values per entity (faust table name too)


@dataclass(frozen=True)
class WindowSpec:
    kind: str  # tumbling | hopping
    size_s: float
    step_s: float

    @property
    def name(self) -> str:
        if self.kind == "tumbling":
            return f"tumbling-{self.size_s:g}s"
        return f"hopping-{self.size_s:g}s-{self.step_s:g}s"

    @classmethod
    def parse(cls, agg: Aggregate) -> WindowSpec | None:
        if agg.function not in FUNCTIONS:
            raise UnsupportedAggregate(agg.name, f"unknown function {agg.function!r}")
        if agg.window is None:
            if agg.function != "last":
                raise UnsupportedAggregate(agg.name, "only 'last' works without a window")
            return None
        if agg.function == "last":
            raise UnsupportedAggregate(agg.name, "'last' takes no window")
        kind, *parts = agg.window.split(":")
        try:
            nums = [float(p) for p in parts]
        except ValueError as exc:
            raise UnsupportedAggregate(agg.name, f"bad window {agg.window!r}") from exc
        if kind == "tumbling" and len(nums) == 1 and nums[0] > 0:
            return cls("tumbling", nums[0], nums[0])
        if kind == "hopping" and len(nums) == 2 and 0 < nums[1] <= nums[0]:
            return cls("hopping", nums[0], nums[1])
        raise UnsupportedAggregate(agg.name, f"bad window {agg.window!r}")


@dataclass(frozen=True, slots=True)
class Event:
    """One raw event, as the features service sees it."""

    event_id: str
    entity_id: str
    event_time_ms: int
    ingest_time_ms: int  # 0 when unknown
    values: dict[str, float]


@dataclass(frozen=True, slots=True)
class FeatureVector:
    """The features of one entity right after an event: `values` in feature-set order, as of the event's time."""

    entity_id: str
    event_id: str
    as_of_ms: int
    values: dict[str, float]


class State(Protocol):
    """Where `fold` keeps per-entity state: `table` is `LATEST` or a `WindowSpec`; a missing key reads as
    None or an empty dict."""

    def get(self, table: Any, key: Any) -> Any: ...

    def put(self, table: Any, key: Any, value: Any) -> None: ...


@dataclass
class DictState:
    """A `State` in one dict: the reference's state and the edge's unit-test tables."""

    values: dict[tuple[Any, Any], Any] = field(default_factory=dict)

    def get(self, table: Any, key: Any) -> Any:
        return self.values.get((table, key))

    def put(self, table: Any, key: Any, value: Any) -> None:
        self.values[(table, key)] = value


@dataclass(frozen=True)
class Plan:
    """A feature set parsed once: the window spec of each feature and the windowed aggregates per spec (one
    table per spec)."""

    feature_set: FeatureSet
    specs: tuple[tuple[Aggregate, WindowSpec | None], ...]
    groups: dict[WindowSpec, tuple[Aggregate, ...]]

    @classmethod
    def of(cls, feature_set: FeatureSet) -> Plan:
        specs = tuple((agg, WindowSpec.parse(agg)) for agg in feature_set.features)
        groups: dict[WindowSpec, list[Aggregate]] = {}
        for agg, spec in specs:
            if spec is not None:
                groups.setdefault(spec, []).append(agg)
        return cls(feature_set, specs, {spec: tuple(aggs) for spec, aggs in groups.items()})


def window_groups(feature_set: FeatureSet) -> dict[WindowSpec, tuple[Aggregate, ...]]:
    """The windowed aggregates grouped by window spec: one faust table per spec."""
    return Plan.of(feature_set).groups


def fold(plan: Plan, state: State, event: Event) -> FeatureVector:
    """Fold `event` into its entity's state and return the entity's features as of the event."""
    entity, values = event.entity_id, event.values
    latest = fold_latest(state.get(LATEST, entity), values, event.event_time_ms)
    state.put(LATEST, entity, latest)
    t_s = event.event_time_ms / 1000.0
    read: dict[WindowSpec, Any] = {}
    for spec, aggs in plan.groups.items():
        held = ranges(spec, t_s)
        for rng in held:
            state.put(spec, (entity, rng), fold_window(state.get(spec, (entity, rng)), aggs, values))
        read[spec] = state.get(spec, (entity, held[0]))  # the oldest window holding t
    return FeatureVector(entity, event.event_id, event.event_time_ms, assemble(plan, latest, read))


def fold_latest(latest: Mapping[str, float] | None, values: Mapping[str, float], event_time_ms: int) -> dict:
    """The newest values by event time (ties: the later arrival wins)."""
    if latest and latest.get("as_of_ms", -math.inf) > event_time_ms:
        return dict(latest)
    out = dict(latest or {})
    out.update(values)
    out["as_of_ms"] = event_time_ms
    return out


def fold_window(state: Mapping[str, Acc] | None, aggs: tuple[Aggregate, ...], values: Mapping[str, float]) -> dict:
    """Add one event to a window's accumulators (a source missing from the event is not counted)."""
    out = {k: list(v) for k, v in (state or {}).items()}
    for agg in aggs:
        x = values.get(agg.source)
        if x is None:
            continue
        acc = out.get(agg.name)
        if acc is None:
            out[agg.name] = [1.0, x, x, x]
        else:
            acc[0] += 1.0
            acc[1] += x
            acc[2] = min(acc[2], x)
            acc[3] = max(acc[3], x)
    return out


def finish(agg: Aggregate, acc: Acc | None) -> float:
    if acc is None or acc[0] == 0:
        return 0.0 if agg.function == "count" else math.nan
    count, total, lo, hi = acc
    return {"count": count, "sum": total, "mean": total / count, "min": lo, "max": hi}[agg.function]


def assemble(
    plan: Plan, latest: Mapping[str, float], windows: Mapping[WindowSpec, Mapping[str, Acc] | None]
) -> dict[str, float]:
    """The feature vector, in feature-set order, from the latest values and the read window of each spec."""
    out: dict[str, float] = {}
    for agg, spec in plan.specs:
        if spec is None:
            out[agg.name] = float(latest.get(agg.source, math.nan))
        else:
            out[agg.name] = float(finish(agg, (windows.get(spec) or {}).get(agg.name)))
    return out


def ranges(spec: WindowSpec, t_s: float) -> list[WindowRange]:
    """Every window range holding `t_s`, oldest first: the same ranges as faust's HoppingWindow.ranges."""
    first = (t_s // spec.step_s) * spec.step_s - spec.size_s + spec.step_s
    return [(float(s), float(s) + spec.size_s - 0.1) for s in range(int(first), int(t_s) + 1, int(spec.step_s))]


def read_range(spec: WindowSpec, t_s: float) -> WindowRange:
    """The range a feature reads at `t_s`: the oldest window holding it (the only one when tumbling)."""
    return ranges(spec, t_s)[0]


class ReferenceAggregator:
    """The whole computation on plain dicts, one entity at a time: what the faust app is tested against."""

    def __init__(self, feature_set: FeatureSet):
        self.plan = Plan.of(feature_set)
        self.state = DictState()

    def update(self, entity_id: str, event_time_ms: int, values: Mapping[str, float]) -> dict[str, float]:
        return fold(self.plan, self.state, Event("", entity_id, event_time_ms, 0, dict(values))).values
