"""Adaptive batching: concurrent requests for the same model version merged into one onnxruntime call.

Requests append themselves to a pending list; the first one schedules a flush on the event loop (`call_soon`, or
`call_later(max_wait_s)`). The flush takes everything pending (up to `max_rows`), merges it per model version
and runs it — on the event-loop thread itself when the merged batch is small (`inline_max_rows`: an onnxruntime
call of a few rows costs less than the hop to a worker thread and back), else in the worker pool. A small request
that finds the batcher idle (nothing pending, no pool call running) runs at once without suspending: merging it
would save fewer onnxruntime calls than the extra event-loop turns cost. While `max_in_flight` pool calls run,
new requests keep pending and form the next batch when one finishes: at low load a request runs alone at once,
under load batches grow by themselves. No queue, no collector task: a request costs one future and one list
append.
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from services.inference.core.models import ModelVersion
from services.inference.errors import ShuttingDown
from services.inference.metrics import BATCH_ROWS
from services.inference.settings import InferenceSettings, effective_inline_max_rows


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """How the batcher merges: `enabled` at all, at most `max_rows` per call, waiting up to `max_wait_s` for more,
    at most `max_in_flight` pool calls at once, merged batches up to `inline_max_rows` on the event-loop thread."""

    enabled: bool = True
    max_rows: int = 256
    max_wait_s: float = 0.0
    max_in_flight: int = 2
    inline_max_rows: int = 0

    @classmethod
    def from_settings(cls, settings: InferenceSettings) -> BatchPolicy:
        return cls(settings.batching, settings.max_batch_size, settings.max_batch_wait_ms / 1000.0,
                   settings.ort_workers, effective_inline_max_rows(settings))


@dataclass(slots=True)
class _Item:
    model: ModelVersion
    x: np.ndarray
    future: asyncio.Future[list[np.ndarray]]


def _run(model: ModelVersion, x: np.ndarray) -> list[np.ndarray]:
    BATCH_ROWS.observe(len(x))
    return model.run(x)


def _deliver(group: list[_Item], outs: list[np.ndarray]) -> None:
    if len(group) == 1:
        if not group[0].future.done():
            group[0].future.set_result(outs)
        return
    start = 0
    for it in group:
        n = len(it.x)
        if not it.future.done():  # a cancelled caller (client went away) just loses its slice
            it.future.set_result([o[start:start + n] for o in outs])
        start += n


def _fail(group: list[_Item], exc: BaseException) -> None:
    for it in group:
        if not it.future.done():
            it.future.set_exception(exc)


class Batcher:
    def __init__(self, executor: ThreadPoolExecutor, policy: BatchPolicy):
        self._executor = executor
        self.policy = policy
        # read on every request: plain attributes, not a lookup through the policy each time
        self._enabled, self._max_rows, self._max_wait = policy.enabled, policy.max_rows, policy.max_wait_s
        self._max_in_flight, self._inline_max_rows = policy.max_in_flight, policy.inline_max_rows
        self._pending: deque[_Item] = deque()
        self._pending_rows = 0
        self._in_flight = 0  # worker-pool calls running
        self._flush: asyncio.Handle | None = None
        self._running: set[asyncio.Future[list[np.ndarray]]] = set()
        self._closed = False

    async def submit(self, model: ModelVersion, x: np.ndarray) -> list[np.ndarray]:
        """The model's outputs for `x` (rows in order), possibly computed together with other requests."""
        if self._closed:
            raise ShuttingDown()
        n = len(x)
        if n <= self._inline_max_rows and not self._pending and not self._in_flight:
            # idle and small: run it now, on this thread, without suspending the handler (cheaper than merging:
            # an await on a future costs more event-loop work than a few-row onnxruntime call)
            return _run(model, x)
        if not self._enabled or n >= self._max_rows:
            return await self._in_pool(model, x)
        loop = asyncio.get_running_loop()
        item = _Item(model, x, loop.create_future())
        self._pending.append(item)
        self._pending_rows += n
        if self._in_flight < self._max_in_flight:
            if self._flush is None:
                self._flush = (loop.call_later(self._max_wait, self._drain) if self._max_wait > 0
                               else loop.call_soon(self._drain))
            elif self._max_wait > 0 and self._pending_rows >= self._max_rows:
                self._flush.cancel()  # a full batch does not wait
                self._flush = loop.call_soon(self._drain)
        return await item.future

    async def _in_pool(self, model: ModelVersion, x: np.ndarray) -> list[np.ndarray]:
        """A request too large to merge: its own pool call (counted as in flight, so merging waits for it)."""
        self._in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, _run, model, x)
        finally:
            self._in_flight -= 1
            self._schedule()

    def _schedule(self) -> None:
        if self._pending and self._flush is None and not self._closed:
            self._flush = asyncio.get_running_loop().call_soon(self._drain)

    def _take(self) -> list[_Item]:
        items = [self._pending.popleft()]
        rows = len(items[0].x)
        while self._pending and rows + len(self._pending[0].x) <= self._max_rows:
            it = self._pending.popleft()
            items.append(it)
            rows += len(it.x)
        self._pending_rows -= rows
        return items

    def _drain(self) -> None:
        """Run what is pending: small merged batches right here, larger ones in the pool while slots are free."""
        self._flush = None
        loop = asyncio.get_running_loop()
        while self._pending and self._in_flight < self._max_in_flight:
            items = self._take()
            groups: dict[int, list[_Item]] = {}
            for it in items:
                groups.setdefault(id(it.model), []).append(it)
            for group in groups.values():
                model = group[0].model
                x = group[0].x if len(group) == 1 else np.concatenate([it.x for it in group])
                if len(x) <= self._inline_max_rows:
                    try:
                        outs = _run(model, x)
                    except Exception as exc:
                        _fail(group, exc)
                    else:
                        _deliver(group, outs)
                    continue
                self._in_flight += 1
                fut = loop.run_in_executor(self._executor, _run, model, x)
                self._running.add(fut)
                fut.add_done_callback(lambda f, g=group: self._done(f, g))

    def _done(self, fut: asyncio.Future[list[np.ndarray]], group: list[_Item]) -> None:
        self._running.discard(fut)
        self._in_flight -= 1
        if fut.cancelled():
            _fail(group, ShuttingDown())
        elif (exc := fut.exception()) is not None:
            _fail(group, exc)
        else:
            _deliver(group, fut.result())
        self._schedule()

    async def close(self) -> None:
        self._closed = True
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        while self._pending:
            _fail([self._pending.popleft()], ShuttingDown())
        self._pending_rows = 0
