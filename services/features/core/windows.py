"""Windows: which events of an entity a feature aggregates, read as of an event time `t` (epoch ms).

- whole: the entity's whole history (no window declared);
- tumbling `size`: the bucket [k*size, (k+1)*size) holding t;
- hopping `size` every `step`: windows [k*step, k*step + size); a feature reads the OLDEST window holding t, the one
  covering the most history (`hopping_start`): for 30 s every 10 s, the events of the last 20-30 s, so `events_30s`
  means "about the last 30 s" (the newest window holding t would only hold the last 0-10 s);
- sliding `size`: the events in (t - size, t], kept in a bounded buffer per entity (at most `max_events`: the
  oldest go first).

State is JSON-friendly (lists of [start_ms, acc] or [time_ms, value]). Events may arrive out of order: a bucket, a
window or a buffered event is kept while its end is within `grace_ms` of the entity's newest event time, so an event
that late still counts where it belongs; the bucket of an event later than that is made for it and dropped on the
next update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.features.core.aggregations import Acc, Aggregator, Value

State = Any  # a JSON-friendly value


def hopping_start(t: int, size: int, step: int) -> int:
    """The start of the window a hopping feature reads at `t`: the oldest window holding it."""
    return ((t - size) // step + 1) * step


@dataclass(frozen=True)
class Whole:
    key = "whole"

    def update(self, state: State, x: Value, t: int, newest: int, agg: Aggregator) -> State:
        return agg.add(state, x, t)

    def read(self, state: State, t: int, agg: Aggregator) -> Acc | None:
        return state


def _find(windows: list, start: int) -> Acc | None:
    for w in windows:
        if w[0] == start:
            return w[1]
    return None


def _add_to(windows: list, start: int, x: Value, t: int, agg: Aggregator) -> None:
    for w in windows:
        if w[0] == start:
            w[1] = agg.add(w[1], x, t)
            return
    windows.append([start, agg.add(None, x, t)])


@dataclass(frozen=True)
class Tumbling:
    size: int  # ms
    grace: int  # ms

    @property
    def key(self) -> str:
        return f"tumbling:{self.size}"

    def update(self, state: State, x: Value, t: int, newest: int, agg: Aggregator) -> State:
        start = t - t % self.size
        horizon = newest - self.grace
        windows = [w for w in state or () if w[0] + self.size > horizon or w[0] == start]
        _add_to(windows, start, x, t, agg)
        return windows

    def read(self, state: State, t: int, agg: Aggregator) -> Acc | None:
        return _find(state, t - t % self.size) if state else None


@dataclass(frozen=True)
class Hopping:
    size: int  # ms
    step: int  # ms
    grace: int  # ms

    @property
    def key(self) -> str:
        return f"hopping:{self.size}:{self.step}"

    def starts(self, t: int) -> range:
        """Every window start holding `t`, oldest first."""
        return range(hopping_start(t, self.size, self.step), t + 1, self.step)

    def update(self, state: State, x: Value, t: int, newest: int, agg: Aggregator) -> State:
        held = self.starts(t)
        horizon = newest - self.grace
        windows = [w for w in state or () if w[0] + self.size > horizon or w[0] in held]
        for start in held:
            _add_to(windows, start, x, t, agg)
        return windows

    def read(self, state: State, t: int, agg: Aggregator) -> Acc | None:
        return _find(state, hopping_start(t, self.size, self.step)) if state else None


@dataclass(frozen=True)
class Sliding:
    """A buffer of [time, value] in event-time order (equal times in arrival order), shared by every aggregation of
    one field over the same window: `read` folds the buffered events in (t - size, t]."""

    size: int  # ms
    grace: int  # ms
    max_events: int

    @property
    def key(self) -> str:
        return f"sliding:{self.size}"

    def update(self, state: State, x: Value, t: int, newest: int, agg: Aggregator | None = None) -> State:
        buffer = state if state is not None else []
        i = len(buffer)
        while i and buffer[i - 1][0] > t:  # late: walk back to its place (in order: no step at all)
            i -= 1
        buffer.insert(i, [t, x])
        horizon = newest - self.size - self.grace
        drop = 0
        while drop < len(buffer) and buffer[drop][0] <= horizon and drop != i:
            drop += 1
        drop = max(drop, len(buffer) - self.max_events)
        if drop:
            del buffer[:drop]
        return buffer

    def read(self, state: State, t: int, agg: Aggregator) -> Acc | None:
        acc: Acc | None = None
        lo = t - self.size
        add = agg.add
        for ti, xi in state or ():
            if ti > t:
                break
            if ti > lo:
                acc = add(acc, xi, ti)
        return acc


Windowing = Whole | Tumbling | Hopping | Sliding
