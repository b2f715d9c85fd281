"""Expected online features computed straight from the raw events, written plainly and apart from the app's code.

The app folds events into accumulators per window (services/features/core); this oracle shares none of it: it keeps
every event of an entity and, as of the entity's newest event time T, filters them by the window's definition and
aggregates with Python's own sum/len/statistics. Events here are at most `grace` late, so every event counts in the
window it belongs to (the app drops only events later than its 300 s grace).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RawEvent:
    t: int  # event time, epoch ms
    values: dict[str, float]
    categories: dict[str, str] = field(default_factory=dict)


def newest_time(events: list[RawEvent]) -> int:
    return max(e.t for e in events)


def last(events: list[RawEvent], name: str, categorical: bool = False) -> float | str:
    """The value of the newest event by event time; of equal times, the one that arrived last."""
    having = [(e.t, i, e) for i, e in enumerate(events) if name in (e.categories if categorical else e.values)]
    _t, _i, newest = max(having)
    return newest.categories[name] if categorical else newest.values[name]


def tumbling(events: list[RawEvent], size_s: int) -> list[RawEvent]:
    """The events in the tumbling window [k*size, (k+1)*size) that holds T."""
    size = size_s * 1000
    start = newest_time(events) // size * size
    return [e for e in events if start <= e.t < start + size]


def hopping(events: list[RawEvent], size_s: int, step_s: int) -> list[RawEvent]:
    """The events of the OLDEST hopping window [k*step, k*step + size) that holds T (the one with the most history,
    as the definitions document a hopping feature)."""
    size, step, t = size_s * 1000, step_s * 1000, newest_time(events)
    start = min(k * step for k in range((t - size) // step, t // step + 1) if k * step <= t < k * step + size)
    return [e for e in events if start <= e.t < start + size]


def sliding(events: list[RawEvent], size_s: int) -> list[RawEvent]:
    """The events in (T - size, T]."""
    t = newest_time(events)
    return [e for e in events if t - size_s * 1000 < e.t <= t]


def mean(events: list[RawEvent], name: str) -> float:
    xs = [e.values[name] for e in events if name in e.values]
    return sum(xs) / len(xs) if xs else math.nan


def std(events: list[RawEvent], name: str) -> float:
    xs = [e.values[name] for e in events if name in e.values]
    return statistics.pstdev(xs) if xs else math.nan


def sea_online(events: list[RawEvent]) -> dict[str, float]:
    """examples/sea's `entity_activity` view, as of the entity's newest event."""
    return {
        "x0_last": last(events, "x0"),
        "x1_last": last(events, "x1"),
        "x2_last": last(events, "x2"),
        "x0_mean_60s": mean(tumbling(events, 60), "x0"),
        "x1_mean_60s": mean(tumbling(events, 60), "x1"),
        "events_30s": float(len(hopping(events, 30, 10))),
    }  # type: ignore[dict-item]


def delivery_online(events: list[RawEvent]) -> dict[str, float]:
    """examples/delivery's `customer_orders` view, as of the customer's newest order."""
    channel = last(events, "channel", categorical=True)
    hour = sliding(events, 3600)
    payments = {e.categories["payment"] for e in hopping(events, 86_400, 3600) if "payment" in e.categories}
    return {
        "amount_last": last(events, "amount"),
        "items_last": last(events, "items"),
        "express_last": last(events, "express"),
        **{f"channel={v}": float(channel == v) for v in ("web", "app", "store")},  # __other__: all zero
        "amount_mean_1h": mean(hour, "amount"),
        "amount_std_1h": std(hour, "amount"),
        "orders_1h": float(len(hour)),
        "items_sum_1d": float(sum(e.values["items"] for e in tumbling(events, 86_400))),
        "payments_1d": float(len(payments)),
    }  # type: ignore[dict-item]
