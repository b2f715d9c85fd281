"""The fold: one event into the state of each view of its source, and the view's columns as of the event.

State lives per (view, entity) under `state_key(view, entity)` in a `State` (the faust table at the edge, a dict in
`DictState`), so the agent and `ReferenceFeatures` run the same code. A state value is

    {"t": the entity's newest event time in ms, "u": {unit key: unit state},
     "ids": 64-bit hashes of the entity's last `remembered_events` event ids, oldest first}

and only the units of the view version in force are written back: a removed or redefined feature's state goes with
the next update of its entity.

**Replays are not folded twice.** After a crash faust restores the tables from their changelogs, which may already
hold the effect of events whose offsets were not committed; those events are consumed again. An event whose id is
among the view state's remembered ids is skipped for that view (no state change, no vector), so every aggregate
equals the one computed on the de-duplicated stream, as long as a replay reaches back fewer than
`remembered_events` events of the entity (the events since the last commit; an event without an id is always
folded).

`fold_view` gives the columns as of the event's time (what features.log records for that event); `read_view` gives
them as of the entity's newest event time (what the online view shows after a late event).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.features.core.plan import FeaturesConfig, ViewPlan

NAN = math.nan


@dataclass(frozen=True, slots=True)
class Event:
    """One validated event, as features sees it."""

    event_id: str
    source_name: str  # "" when the producer's ingest did not say
    entity_id: str
    event_time_ms: int
    ingest_time_ms: int  # 0 when unknown
    values: Mapping[str, float]
    categories: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FeatureVector:
    """One view's columns for one entity right after an event, as of `as_of_ms` (the event's time)."""

    view: ViewPlan
    entity_id: str
    event_id: str
    as_of_ms: int
    values: dict[str, float]  # in the view's column order


class State(Protocol):
    """Where the fold keeps per-(view, entity) state; a missing key reads as None."""

    def get(self, key: str) -> Any: ...

    def put(self, key: str, value: Any) -> None: ...


@dataclass
class DictState:
    """A `State` in one dict: the reference's state and the edge's unit-test tables."""

    values: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def put(self, key: str, value: Any) -> None:
        self.values[key] = value


def state_key(view: str, entity_id: str) -> str:
    """The table key of an entity's state in a view (view names hold no ':', so the first one splits)."""
    return f"{view}:{entity_id}"


def event_hash(event_id: str) -> int:
    """The 64-bit hash an event id is remembered by (a signed int: fits every serializer's integers)."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "little", signed=True)


def seen_before(prior: Mapping[str, Any] | None, event_id: str) -> bool:
    """Whether the view state already holds the event `event_id` (a replay)."""
    return bool(event_id) and prior is not None and event_hash(event_id) in prior.get("ids", ())


def fold_view(plan: ViewPlan, prior: Mapping[str, Any] | None, event: Event) -> tuple[dict[str, Any], dict[str, float]]:
    """The view's new state after `event`, and its columns as of the event's time."""
    t = event.event_time_ms
    if prior is None:
        newest, units, ids = t, {}, []
    else:
        newest, units, ids = max(prior["t"], t), prior["u"], prior.get("ids", [])
    if event.event_id and plan.remembered_events > 0:
        ids = [*ids, event_hash(event.event_id)][-plan.remembered_events:]
    values, categories = event.values, event.categories
    kept: dict[str, Any] = {}
    for unit in plan.units:
        s = units.get(unit.key)
        x = (categories if unit.categorical else values).get(unit.field)
        if x is not None:  # a missing optional value is skipped
            s = unit.window.update(s, x, t, newest, unit.agg)  # type: ignore[arg-type]
        if s is not None:
            kept[unit.key] = s
    return {"t": newest, "u": kept, "ids": ids}, _columns(plan, kept, t)


def read_view(plan: ViewPlan, state: Mapping[str, Any] | None) -> tuple[int, dict[str, float]] | None:
    """The view's columns as of the entity's newest event time (None: no state)."""
    if state is None:
        return None
    return state["t"], _columns(plan, state["u"], state["t"])


def _columns(plan: ViewPlan, units: Mapping[str, Any], t: int) -> dict[str, float]:
    out: list[float] = []
    for f in plan.features:
        out += f.agg.result(f.window.read(units.get(f.unit), t, f.agg))
    return dict(zip(plan.layout.columns, out, strict=True))


def fold(config: FeaturesConfig, state: State, event: Event) -> list[FeatureVector] | None:
    """Fold `event` into every view of its source; None when its source is not declared (nothing is folded). A view
    that has folded this event before (a replay) is skipped: its vector is missing from the list."""
    views = config.views_for(event.source_name)
    if views is None:
        return None
    out = []
    for plan in views:
        key = state_key(plan.name, event.entity_id)
        prior = state.get(key)
        if seen_before(prior, event.event_id):
            continue
        new, values = fold_view(plan, prior, event)
        state.put(key, new)
        out.append(FeatureVector(plan, event.entity_id, event.event_id, event.event_time_ms, values))
    return out


class ReferenceFeatures:
    """The whole computation on plain dicts: what the faust app is tested against."""

    def __init__(self, config: FeaturesConfig):
        self.config = config
        self.state = DictState()

    def update(self, event: Event) -> dict[str, dict[str, float]]:
        """Each view's columns as of `event` (what features.log gets), by view name."""
        return {v.view.name: v.values for v in fold(self.config, self.state, event) or ()}

    def online(self, view: str, entity_id: str) -> tuple[int, dict[str, float]] | None:
        """(as_of_ms, columns) of the entity's online view now."""
        plan = next(p for p in self.config.views if p.name == view)
        return read_view(plan, self.state.get(state_key(view, entity_id)))
