"""A logged batch through the core at once (`DriftMonitor.observe_block`), with the outcome of feeding its rows one
by one to `observe_prediction`: the same detections, decisions, joins and verdicts, in the same order.

What makes it exact: the rows of a batch share model, version, serve time, trace and role, so what the per-row path
decides at a row's start (a new model or version, a row in flight from the version just replaced, a deferred request
whose cool-down has ended) is decided once, at the first row. After that, a row changes nothing but running
statistics, except at *event rows*: where a stream's window fills (its reference is set, or a KS/PSI test runs), where
the accuracy estimate is reported (every `data_window_step` rows), and where a label that waited may join (the
row's entity or request has a label waiting). Every stretch of rows before the next event row goes in as columns:
window buffers extended from numpy columns (by the rows that bring a new state of their entity: `core/repeats.py`),
the accuracy estimate's bins counted at once, rows held by the label join without an object each; the event row
itself takes the per-row path (`DriftMonitor._row`). An online detector (reported only) still steps through every
value, from a list, and its firings are reported in row order.

Rows of a second version (shadow, canary, guard), and the champion's rows while a challenger is judged, reach the
`ChallengerJudge` one by one (it pairs them by request): there a row is made a `Prediction`.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING

import numpy as np

from services.monitor.core.domain import Detection, PredictionBlock, RetrainDecision
from services.monitor.core.judge import CHAMPION
from services.monitor.core.model_state import SCORE_STREAM, ModelState
from services.monitor.core.stats import StreamStats

if TYPE_CHECKING:
    from services.monitor.core.drift import DriftMonitor

__all__ = ["observe_block"]

# below this many rows the columns' fixed cost (a list per column, numpy calls) exceeds what they save: row by row
COLUMNS_FROM_ROWS = 8


def observe_block(m: DriftMonitor, block: PredictionBlock) -> list[RetrainDecision]:
    n = block.rows
    if not n:
        return []
    m.predictions += n
    judge = block.model_name in m.judge.trials or (block.role or CHAMPION) != CHAMPION
    if judge:  # the judge pairs rows by request: one object per row (its verdicts do not depend on the drift path)
        second = [m.judge.observe_prediction(block.row(i)) for i in range(n)]
        if all(second):
            return []
    else:
        m.judge.champions[block.model_name] = block.model_version
    state = m._admit(block.model_name, block.model_version, block.timestamp_ms)
    if state is None:
        m.unwatched += n
        return []
    if block.model_version != state.version:  # in flight from the version just replaced
        m.stale_predictions += n
        return m._joins(state.joiner.add_rows(block, 0, n)) if state.joiner is not None else []
    if n < COLUMNS_FROM_ROWS or _row_by_row(state, block):
        for i in range(n):
            m._row(state, block.row(i))
    else:
        _columns(m, state, block)
    return m._drain()


def _row_by_row(state: ModelState, block: PredictionBlock) -> bool:
    """Cases the columns do not cover, taken row by row: repeated feature names (a row's inputs keep the last), and
    scores the accuracy estimate cannot bin (the per-row path raises on them, after the rows before)."""
    names = block.feature_names
    if state.watch_features and len(set(names)) != len(names):
        return True
    return state.estimator is not None and not bool(np.isfinite(block.scores).all())


def _columns(m: DriftMonitor, state: ModelState, block: PredictionBlock) -> None:
    n, pos = block.rows, 0
    if state.watch_features and any(name not in state.streams for name in block.feature_names):
        m._row(state, block.row(0))  # creates the streams in the per-row order (each re-splits the budget)
        pos = 1
    columns: list[tuple[StreamStats, list[float]]] = []
    if state.watch_features:
        x = block.x
        columns = [(state.streams[name], x[:, j].tolist()) for j, name in enumerate(block.feature_names)]
    if state.score is not None:
        columns.append((state.score, block.scores.tolist()))
    fresh = state.repeats.fresh_rows(block, pos) if columns else []  # the rows the streams take
    joiner, est = state.joiner, state.estimator
    every = m.settings.data_window_step
    waiting = [] if joiner is None or not joiner.labels_wait() else [
        i for i in range(pos, n) if joiner.may_join(block.request_ids[i], block.entity_ids[i])]
    waiting.reverse()  # popped from the end, earliest first
    while pos < n:
        event = n  # the next event row
        first = bisect_left(fresh, pos)
        for st, _ in columns:  # the row of the value that fills its window
            last = first + st.room()
            event = min(event, fresh[last] if last < len(fresh) else n)
        if est is not None:
            event = min(event, pos + every - 1 - state.records % every)
        while waiting and waiting[-1] < pos:
            waiting.pop()
        if waiting:
            event = min(event, waiting[-1])
        if event > pos:
            _stretch(m, state, block, columns, fresh[first:bisect_left(fresh, event)], pos, event)
        if event == n:
            return
        at = bisect_left(fresh, event)
        m._row(state, block.row(event), fresh=at < len(fresh) and fresh[at] == event)
        pos = event + 1


def _stretch(m: DriftMonitor, state: ModelState, block: PredictionBlock,
             columns: list[tuple[StreamStats, list[float]]], fresh: list[int], start: int, stop: int) -> None:
    """Rows `start` … `stop - 1`, none of them an event row, as columns; the streams take the `fresh` rows."""
    k, t = stop - start, block.timestamp_ms
    state.records += k
    if block.trace_id:
        trace = (block.trace_id, block.span_id)
        for _ in range(min(k, state.traces.maxlen or k)):
            state.traces.append(trace)
    fired: list[tuple[int, int, StreamStats, float]] = []
    every_row = len(fresh) == k
    for order, (st, values) in enumerate(columns):
        taken = values[start:stop] if every_row else [values[i] for i in fresh]
        fired += [(fresh[i], order, st, z) for i, z in st.extend(taken, t)]
    for _, _, st, z in sorted(fired, key=lambda f: (f[0], f[1])):  # row order, then stream order, as row by row
        score = st is state.score
        m._detected(state, Detection(
            block.model_name, state.version, "prediction" if score else "data", st.detector_label,
            "score_mean" if score else "mean", SCORE_STREAM if score else st.name, z, st.window_start_ms, t,
            counts=False))
    est = state.estimator
    if est is not None:
        est.add_predictions(block.scores[start:stop], state.binary)
    if state.joiner is not None:
        for joined, label in state.joiner.add_rows(block, start, stop):  # none: no label waits for these rows
            m._joined(joined, label)
