"""One accumulator per declared aggregation: how a value is added and what columns it gives.

An accumulator is a small JSON-friendly list (faust tables serialize their values as JSON), updated in place; None
is the accumulator of no value yet. `result(acc)` gives the feature's columns: one float, or one per vocabulary value
for one_hot. With no value, `count` and `distinct_count` are 0 and every other aggregation is NaN.

- last: the value of the newest event by event time (ties: the later arrival); a category reads as its index in the
  vocabulary, -1 for `__other__` (or a value the vocabulary no longer holds);
- one_hot: 1.0 in the column of the newest category, 0.0 elsewhere (all 0.0 for `__other__`);
- count, sum, mean, min, max; distinct_count (of the values, `__other__` counting as one);
- std: the POPULATION standard deviation (ddof 0: one value gives 0.0), by Welford's update, which stays exact
  where the sum of squares would cancel.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from mlops.definitions import Aggregation

Value = float | str  # a numeric value (bool 0/1, timestamp epoch ms) or a category
Acc = list
NAN = math.nan


@dataclass(frozen=True)
class Aggregator:
    """How one aggregation folds values (`add`) and reads out (`result`); `kind` names the accumulator, so features
    whose accumulators are alike can share one state (last and one_hot keep the same)."""

    kind: str
    add: Callable[[Acc | None, Value, int], Acc]  # (acc, value, event time ms) -> the acc, updated in place
    result: Callable[[Acc | None], list[float]]
    width: int = 1  # columns


def _last_add(acc: Acc | None, x: Value, t: int) -> Acc:
    if acc is None:
        return [t, x]
    if t >= acc[0]:
        acc[0], acc[1] = t, x
    return acc


def _count_add(acc: Acc | None, x: Value, t: int) -> Acc:
    if acc is None:
        return [1]
    acc[0] += 1
    return acc


def _sum_add(acc: Acc | None, x: Value, t: int) -> Acc:  # [count, sum]: mean reads it too
    if acc is None:
        return [1, float(x)]
    acc[0] += 1
    acc[1] += x
    return acc


def _min_add(acc: Acc | None, x: Value, t: int) -> Acc:
    if acc is None:
        return [x]
    if x < acc[0]:  # type: ignore[operator]
        acc[0] = x
    return acc


def _max_add(acc: Acc | None, x: Value, t: int) -> Acc:
    if acc is None:
        return [x]
    if x > acc[0]:  # type: ignore[operator]
        acc[0] = x
    return acc


def _std_add(acc: Acc | None, x: Value, t: int) -> Acc:  # [count, mean, M2]
    x = float(x)
    if acc is None:
        return [1, x, 0.0]
    n = acc[0] + 1
    delta = x - acc[1]
    mean = acc[1] + delta / n
    acc[0], acc[1], acc[2] = n, mean, acc[2] + delta * (x - mean)
    return acc


def _distinct_add(acc: Acc | None, x: Value, t: int) -> Acc:  # the distinct values (a list: JSON has no sets)
    if acc is None:
        return [x]
    if x not in acc:
        acc.append(x)
    return acc


def _one(fn: Callable[[Acc], float], empty: float = NAN) -> Callable[[Acc | None], list[float]]:
    return lambda acc: [empty if acc is None else fn(acc)]


def aggregator(aggregation: Aggregation, vocabulary: tuple[str, ...] | None = None) -> Aggregator:
    """The aggregator of `aggregation`; `vocabulary` for a categorical field (last reads the index, one_hot needs
    it)."""
    if aggregation is Aggregation.LAST:
        if vocabulary is None:
            return Aggregator("last", _last_add, _one(lambda a: float(a[1])))
        index = {v: float(i) for i, v in enumerate(vocabulary)}
        return Aggregator("last", _last_add, _one(lambda a: index.get(a[1], -1.0)))
    if aggregation is Aggregation.ONE_HOT:
        assert vocabulary is not None, "one_hot needs a vocabulary (checked by the definitions)"
        vocab, width = vocabulary, len(vocabulary)

        def one_hot(acc: Acc | None) -> list[float]:
            if acc is None:
                return [NAN] * width
            return [1.0 if v == acc[1] else 0.0 for v in vocab]

        return Aggregator("last", _last_add, one_hot, width)
    simple: dict[Aggregation, Aggregator] = {
        Aggregation.COUNT: Aggregator("count", _count_add, _one(lambda a: float(a[0]), 0.0)),
        Aggregation.SUM: Aggregator("sum", _sum_add, _one(lambda a: a[1])),
        Aggregation.MEAN: Aggregator("sum", _sum_add, _one(lambda a: a[1] / a[0])),
        Aggregation.MIN: Aggregator("min", _min_add, _one(lambda a: float(a[0]))),
        Aggregation.MAX: Aggregator("max", _max_add, _one(lambda a: float(a[0]))),
        Aggregation.STD: Aggregator("std", _std_add, _one(lambda a: math.sqrt(max(a[2], 0.0) / a[0]))),
        Aggregation.DISTINCT_COUNT: Aggregator("distinct", _distinct_add, _one(lambda a: float(len(a)), 0.0)),
    }
    return simple[aggregation]
