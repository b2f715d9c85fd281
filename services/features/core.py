"""The transport-free core of features: how one event folds into per-entity state and what vector comes out.

State per entity (held by the faust tables at the edge, plain values here):
- `latest`: {"as_of_ms": int, "<source>": float, ...}: the values of the newest event by event time (an event that
  arrives late does not overwrite newer `last` values, but still counts in its windows);
- per window spec and window range: {feature name: [count, sum, min, max]}.

Window ranges are (start_s, end_s) as faust builds them. A tumbling feature reads the window of the event time;
a hopping feature reads the OLDEST window holding it (the one covering the most history: for 30 s / 10 s, the
events of the last 20–30 s), not faust's `current()` (the newest window, only the last 0–10 s).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from mlops.schema import Aggregate, FeatureSet

from .errors import UnsupportedAggregate

Acc = list[float]  # [count, sum, min, max]
WindowState = dict[str, Acc]
FUNCTIONS = ("last", "mean", "count", "min", "max", "sum")


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


def window_groups(feature_set: FeatureSet) -> dict[WindowSpec, tuple[Aggregate, ...]]:
    """The windowed aggregates grouped by window spec: one faust table per spec."""
    groups: dict[WindowSpec, list[Aggregate]] = {}
    for agg in feature_set.features:
        spec = WindowSpec.parse(agg)
        if spec is not None:
            groups.setdefault(spec, []).append(agg)
    return {spec: tuple(aggs) for spec, aggs in groups.items()}


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
    feature_set: FeatureSet, latest: Mapping[str, float], windows: Mapping[WindowSpec, Mapping[str, Acc] | None]
) -> dict[str, float]:
    """The feature vector, in feature-set order, from the latest values and the read window of each spec."""
    out: dict[str, float] = {}
    for agg in feature_set.features:
        spec = WindowSpec.parse(agg)
        if spec is None:
            out[agg.name] = float(latest.get(agg.source, math.nan))
        else:
            out[agg.name] = float(finish(agg, (windows.get(spec) or {}).get(agg.name)))
    return out


# --- window ranges, identical to faust's (faust.windows.HoppingWindow), for the pure reference ----------------


def ranges(spec: WindowSpec, t_s: float) -> list[tuple[float, float]]:
    """Every window range holding `t_s`."""
    first = (t_s // spec.step_s) * spec.step_s - spec.size_s + spec.step_s
    return [(float(s), float(s) + spec.size_s - 0.1) for s in range(int(first), int(t_s) + 1, int(spec.step_s))]


def read_range(spec: WindowSpec, t_s: float) -> tuple[float, float]:
    """The range a feature reads at `t_s`: the oldest window holding it (the only one when tumbling)."""
    return ranges(spec, t_s)[0]


class ReferenceAggregator:
    """The whole computation on plain dicts: the spec the faust app is tested against (and a fallback)."""

    def __init__(self, feature_set: FeatureSet):
        self.feature_set = feature_set
        self.groups = window_groups(feature_set)
        self.latest: dict[str, dict] = {}
        self.windows: dict[tuple[WindowSpec, str, tuple[float, float]], dict] = {}

    def update(self, entity_id: str, event_time_ms: int, values: Mapping[str, float]) -> dict[str, float]:
        self.latest[entity_id] = fold_latest(self.latest.get(entity_id), values, event_time_ms)
        t_s = event_time_ms / 1000.0
        read: dict[WindowSpec, dict | None] = {}
        for spec, aggs in self.groups.items():
            for rng in ranges(spec, t_s):
                key = (spec, entity_id, rng)
                self.windows[key] = fold_window(self.windows.get(key), aggs, values)
            read[spec] = self.windows.get((spec, entity_id, read_range(spec, t_s)))
        return assemble(self.feature_set, self.latest[entity_id], read)
