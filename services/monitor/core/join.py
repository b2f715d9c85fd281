"""The label join, in bounded memory.

A label joins its prediction by request id when it carries one, else by entity: the entity's waiting prediction
whose as-of time (features_as_of_ms, or the serve time when raw features were sent) is closest to the label's event
time, within a tolerance. Predictions wait at most `join_window_ms` of stream time and at most `capacity` of them
are held (oldest evicted first); labels that arrive before their prediction wait the same way, bounded by
`label_capacity`. Each prediction joins at most one label.

What waits is anything `Joinable`: the drift path holds the champion's `Prediction`s; the challenger judge holds
its own rows (a champion row paired with its shadow row, or one arm's row of a canary) in a joiner of its own, so
one label reaches the champion's row here and the same request's rows there. The judge's joiner is `by_request_only`:
a label that names its request joins that request's rows or none (the entity/time fallback would pair a label with
a neighbouring request's rows when its own were never judged, e.g. before the trial began).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from services.monitor.core.domain import LabelEvent


class Joinable(Protocol):
    """What a label is joined to: a request id, an entity and the time a label's event time is compared with."""

    @property
    def request_id(self) -> str: ...

    @property
    def entity_id(self) -> str: ...

    @property
    def join_time_ms(self) -> int: ...


T = TypeVar("T", bound=Joinable)


class _Waiting(Generic[T]):
    __slots__ = ("joined", "prediction", "t")

    def __init__(self, prediction: T):
        self.prediction = prediction
        self.t = prediction.join_time_ms
        self.joined = False


@dataclass
class JoinCounts:
    joined: int = 0
    predictions_evicted: int = 0  # left without a label
    labels_waiting: int = 0
    labels_evicted: int = 0  # never matched a prediction


class LabelJoiner(Generic[T]):
    def __init__(self, window_ms: int, tolerance_ms: int, capacity: int, label_capacity: int,
                 by_request_only: bool = False):
        self.window_ms = window_ms
        self.by_request_only = by_request_only
        self.tolerance_ms = tolerance_ms
        self.capacity = capacity
        self.label_capacity = label_capacity
        self._order: deque[_Waiting[T]] = deque()
        self._by_entity: dict[str, deque[_Waiting[T]]] = {}
        self._by_request: dict[str, _Waiting[T]] = {}
        self._labels: deque[LabelEvent] = deque()
        self._labels_by_entity: dict[str, list[LabelEvent]] = {}
        self._watermark = 0
        self.counts = JoinCounts()

    def __len__(self) -> int:
        return len(self._order)

    def add_prediction(self, p: T) -> list[tuple[T, LabelEvent]]:
        """Hold `p` for its label; returns joins with labels that arrived before it (usually none)."""
        w = _Waiting(p)
        self._order.append(w)
        q = self._by_entity.get(p.entity_id)
        if q is None:
            q = self._by_entity[p.entity_id] = deque()
        q.append(w)
        if p.request_id:
            self._by_request[p.request_id] = w
        if w.t > self._watermark:
            self._watermark = w.t
        self._evict()
        if self._labels_by_entity and p.entity_id in self._labels_by_entity:
            return self._retry_labels(p.entity_id)
        return []

    def add_label(self, label: LabelEvent) -> T | None:
        """The prediction `label` answers, or None (the label then waits, bounded, for a later prediction)."""
        w = self._match(label)
        if w is not None:
            return self._take(w)
        self._labels.append(label)
        self._labels_by_entity.setdefault(label.entity_id, []).append(label)
        self.counts.labels_waiting = len(self._labels)
        while len(self._labels) > self.label_capacity or (
            self._labels and self._labels[0].event_time_ms < self._watermark - self.window_ms
        ):
            old = self._labels.popleft()
            self._forget_label(old)
            self.counts.labels_evicted += 1
        self.counts.labels_waiting = len(self._labels)
        return None

    # --- internals ---------------------------------------------------------------------------------------

    def _match(self, label: LabelEvent) -> _Waiting[T] | None:
        if label.request_id:
            w = self._by_request.get(label.request_id)
            if w is not None and not w.joined:
                return w
            if self.by_request_only:
                return None
        q = self._by_entity.get(label.entity_id)
        while q and q[0].joined:  # joined ones leave from the front (a deque only shrinks cheaply there)
            q.popleft()
        if not q:
            return None
        best: _Waiting[T] | None = None
        best_gap = self.tolerance_ms + 1
        t = label.event_time_ms
        latest = t + self.tolerance_ms
        for w in q:
            if w.t > latest:  # an entity's predictions arrive in time order (mostly): nothing closer follows
                break
            if w.joined:
                continue
            gap = abs(w.t - t)
            if gap < best_gap:
                best, best_gap = w, gap
                if gap == 0:
                    break
        return best

    def _take(self, w: _Waiting[T]) -> T:
        w.joined = True
        self.counts.joined += 1
        if w.prediction.request_id:
            self._by_request.pop(w.prediction.request_id, None)
        return w.prediction

    def _retry_labels(self, entity_id: str) -> list[tuple[T, LabelEvent]]:
        out = []
        waiting = self._labels_by_entity.get(entity_id, [])
        for label in list(waiting):
            w = self._match(label)
            if w is not None:
                out.append((self._take(w), label))
                waiting.remove(label)
                self._labels.remove(label)
        if not waiting:
            self._labels_by_entity.pop(entity_id, None)
        self.counts.labels_waiting = len(self._labels)
        return out

    def _forget_label(self, label: LabelEvent) -> None:
        lst = self._labels_by_entity.get(label.entity_id)
        if lst is not None:
            try:
                lst.remove(label)
            except ValueError:
                pass
            if not lst:
                del self._labels_by_entity[label.entity_id]

    def _evict(self) -> None:
        order = self._order
        horizon = self._watermark - self.window_ms
        while order and (len(order) > self.capacity or order[0].t < horizon):
            w = order.popleft()
            q = self._by_entity.get(w.prediction.entity_id)
            if q is not None:
                # both queues are in arrival order, so w is the entity's oldest unless a join already pruned it
                if q and q[0] is w:
                    q.popleft()
                if not q:
                    del self._by_entity[w.prediction.entity_id]
            if not w.joined:
                self.counts.predictions_evicted += 1
                if w.prediction.request_id:
                    self._by_request.pop(w.prediction.request_id, None)
