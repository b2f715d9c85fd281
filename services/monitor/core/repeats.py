"""Which predictions bring a new state of their entity: the data streams' KS windows take only those.

With the online join, a prediction's inputs are its entity's features as of the last event. An entity asked for
again before its next event repeats the same inputs and score, so a window of N predictions can hold far fewer
than N independent values; the KS test's level assumes N, and on a stationary stream with hot entities it fired
hundreds of times per 100,000 predictions where the budget allows 0.01 (`tests/monitor/test_monitor_repeats.py`
measures it). Taking one value per state restores independent values: each state comes from its own event. A state
is known by the features' as-of time and the score (two numbers every row carries, so the check costs little);
what the windows then compare is the distribution of entity states, not of requests — a change in which entities
are asked for is not a data drift of theirs.
"""

from __future__ import annotations

from services.monitor.core.domain import PredictionBlock

__all__ = ["RepeatFilter"]


class RepeatFilter:
    """The last state (features' as-of time, score) of each of the `capacity` entities seen most recently (0: every
    row is new). A row without an entity id or an as-of time (its inputs came with the request) is always new."""

    __slots__ = ("_capacity", "_last")

    def __init__(self, capacity: int):
        self._capacity = capacity
        self._last: dict[str, tuple[int, float]] = {}

    def fresh(self, entity_id: str, as_of_ms: int, score: float) -> bool:
        if not (entity_id and as_of_ms and self._capacity):
            return True
        last = self._last
        state = (as_of_ms, score)
        before = last.pop(entity_id, None)
        last[entity_id] = state  # re-inserted: the dict's order is the order entities were last seen in
        if before is None and len(last) > self._capacity:
            del last[next(iter(last))]
        return before != state

    def fresh_rows(self, block: PredictionBlock, start: int) -> list[int]:
        """The rows `start` … of `block` that bring a new state, as `fresh` row by row would say."""
        fresh, entities, as_of = self.fresh, block.entity_ids, block.as_of_ms
        scores = block.scores[start:].tolist()
        return [i for i, score in enumerate(scores, start) if fresh(entities[i], as_of[i], score)]
