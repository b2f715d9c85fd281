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

Rows of a logged batch wait without a per-row object of their own (`add_rows`): the entry names the batch and the
row, and the row becomes a `Prediction` only if a label joins it.

Early labels are indexed by arrival, by entity (sorted by event time) and by the request they name, so a
prediction looks only at the labels it can join: those naming its request, and its entity's labels within the
tolerance of its time; the first of them to arrive (whose match is this prediction) joins it. A waiting label never
matches a waiting prediction (it would have joined it), so that is the only join a new prediction can make.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from operator import attrgetter
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


class Rows(Protocol[T]):  # type: ignore[misc]
    """Many rows in columns (a logged batch): what `add_rows` holds, one row made an object only when joined."""

    request_ids: Sequence[str]
    entity_ids: Sequence[str]
    join_times_ms: Sequence[int]

    def row(self, i: int) -> T: ...


_SKIP_FROM = 16  # an entity's queue longer than this is searched, not scanned, from where the tolerance begins
_time = attrgetter("t")


class _Queue(deque):  # type: ignore[type-arg]
    """An entity's held predictions in arrival order; `ordered` while their times never went back."""

    __slots__ = ("ordered",)

    def __init__(self) -> None:
        super().__init__()
        self.ordered = True


class _Waiting(Generic[T]):
    """A held prediction: the object itself (index -1), or row `index` of a `Rows`."""

    __slots__ = ("entity_id", "index", "item", "joined", "request_id", "t")

    def __init__(self, item: T | Rows[T], index: int, request_id: str, entity_id: str, t: int):
        self.item = item
        self.index = index
        self.request_id = request_id
        self.entity_id = entity_id
        self.t = t
        self.joined = False

    @property
    def prediction(self) -> T:
        return self.item if self.index < 0 else self.item.row(self.index)  # type: ignore[return-value,union-attr]


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
        self._by_entity: dict[str, _Queue] = {}
        self._by_request: dict[str, _Waiting[T]] = {}
        self._labels: OrderedDict[int, LabelEvent] = OrderedDict()  # arrival number → label, oldest first
        self._labels_by_entity: dict[str, list[tuple[int, int]]] = {}  # (event time, arrival), sorted
        self._labels_by_request: dict[str, list[int]] = {}  # arrivals of the labels naming each request
        self._arrivals = 0
        self._watermark = 0
        self.counts = JoinCounts()

    def __len__(self) -> int:
        return len(self._order)

    def add_prediction(self, p: T) -> list[tuple[T, LabelEvent]]:
        """Hold `p` for its label; returns joins with labels that arrived before it (usually none)."""
        w = _Waiting(p, -1, p.request_id, p.entity_id, p.join_time_ms)
        self._hold(w)
        if self._labels and (w.entity_id in self._labels_by_entity or w.request_id in self._labels_by_request):
            return self._retry_labels(w)
        return []

    def add_rows(self, rows: Rows[T], start: int, stop: int) -> list[tuple[T, LabelEvent]]:
        """Hold rows `start` … `stop - 1` of `rows`, in order, exactly as `add_prediction` would one by one; returns
        the joins with labels that arrived before them."""
        out: list[tuple[T, LabelEvent]] = []
        ids, entities, times = rows.request_ids, rows.entity_ids, rows.join_times_ms
        order, by_entity, by_request = self._order, self._by_entity, self._by_request
        labels_by_entity, labels_by_request = self._labels_by_entity, self._labels_by_request
        capacity, window = self.capacity, self.window_ms
        for i in range(start, stop):
            entity, rid, t = entities[i], ids[i], times[i]
            w = _Waiting(rows, i, rid, entity, t)
            order.append(w)
            q = by_entity.get(entity)
            if q is None:
                q = by_entity[entity] = _Queue()
            elif not q:
                q.ordered = True
            elif t < q[-1].t:
                q.ordered = False
            q.append(w)
            if rid:
                by_request[rid] = w
            if t > self._watermark:
                self._watermark = t
            if len(order) > capacity or order[0].t < self._watermark - window:
                self._evict()
            if self._labels and (entity in labels_by_entity or rid in labels_by_request):
                out += self._retry_labels(w)
        return out

    def labels_wait(self) -> bool:
        """Whether any label waits for its prediction."""
        return bool(self._labels)

    def may_join(self, request_id: str, entity_id: str) -> bool:
        """Whether a prediction of this request and entity would meet a waiting label (a join is possible)."""
        return bool(self._labels) and (entity_id in self._labels_by_entity or request_id in self._labels_by_request)

    def add_label(self, label: LabelEvent) -> T | None:
        """The prediction `label` answers, or None (the label then waits, bounded, for a later prediction)."""
        w = self._match(label)
        if w is not None:
            return self._take(w)
        self._arrivals = seq = self._arrivals + 1
        labels = self._labels
        labels[seq] = label
        insort(self._labels_by_entity.setdefault(label.entity_id, []), (label.event_time_ms, seq))
        if label.request_id:
            self._labels_by_request.setdefault(label.request_id, []).append(seq)
        while labels and (len(labels) > self.label_capacity
                          or next(iter(labels.values())).event_time_ms < self._watermark - self.window_ms):
            self._forget_label(*labels.popitem(last=False))
            self.counts.labels_evicted += 1
        self.counts.labels_waiting = len(labels)
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
        scan: Iterable[_Waiting[T]] = q
        if q.ordered and len(q) > _SKIP_FROM:  # what lies before the tolerance cannot match: skipped in C
            scan = islice(q, bisect_left(q, t - self.tolerance_ms, key=_time), None)
        for w in scan:
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
        if w.request_id:
            self._by_request.pop(w.request_id, None)
        return w.prediction

    def _hold(self, w: _Waiting[T]) -> None:
        self._order.append(w)
        q = self._by_entity.get(w.entity_id)
        if q is None:
            q = self._by_entity[w.entity_id] = _Queue()
        elif not q:
            q.ordered = True
        elif w.t < q[-1].t:
            q.ordered = False
        q.append(w)
        if w.request_id:
            self._by_request[w.request_id] = w
        if w.t > self._watermark:
            self._watermark = w.t
        self._evict()

    def _retry_labels(self, w: _Waiting[T]) -> list[tuple[T, LabelEvent]]:
        """The waiting labels `w` can join: those naming its request, and its entity's within the tolerance of its
        time; the first to arrive whose match is `w` joins it (no other join is possible: see the module)."""
        candidates = list(self._labels_by_request.get(w.request_id, ())) if w.request_id else []
        times = self._labels_by_entity.get(w.entity_id)  # (a label naming no request joins by entity, always)
        if times:
            lo = bisect_left(times, (w.t - self.tolerance_ms,))
            hi = bisect_right(times, (w.t + self.tolerance_ms, self._arrivals + 1))
            candidates += [seq for _, seq in times[lo:hi]]
        labels = self._labels
        for seq in sorted(set(candidates)):
            label = labels[seq]
            if self._match(label) is w:
                del labels[seq]
                self._forget_label(seq, label)
                self.counts.labels_waiting = len(labels)
                return [(self._take(w), label)]
        return []

    def _forget_label(self, seq: int, label: LabelEvent) -> None:
        times = self._labels_by_entity.get(label.entity_id)
        if times is not None:
            key = (label.event_time_ms, seq)
            i = bisect_left(times, key)
            if i < len(times) and times[i] == key:
                del times[i]
            if not times:
                del self._labels_by_entity[label.entity_id]
        if label.request_id:
            seqs = self._labels_by_request.get(label.request_id)
            if seqs is not None:
                seqs.remove(seq)
                if not seqs:
                    del self._labels_by_request[label.request_id]

    def _evict(self) -> None:
        order = self._order
        horizon = self._watermark - self.window_ms
        while order and (len(order) > self.capacity or order[0].t < horizon):
            w = order.popleft()
            q = self._by_entity.get(w.entity_id)
            if q is not None:
                # both queues are in arrival order, so w is the entity's oldest unless a join already pruned it
                if q and q[0] is w:
                    q.popleft()
                if not q:
                    del self._by_entity[w.entity_id]
            if not w.joined:
                self.counts.predictions_evicted += 1
                if w.request_id:
                    self._by_request.pop(w.request_id, None)
