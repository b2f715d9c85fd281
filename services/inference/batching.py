"""Adaptive batching: concurrent requests for the same model version merged into one onnxruntime call.

A collector task takes everything queued (up to `max_batch_size` rows; optionally waiting `max_wait_s` for more),
runs it in a worker thread and hands each caller its slice. While a batch runs, new requests queue up and form the
next one: at low load a request runs alone at once, under load batches grow by themselves.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from services.inference.metrics import BATCH_ROWS
from services.inference.models import ModelVersion


@dataclass
class _Item:
    model: ModelVersion
    x: np.ndarray
    future: asyncio.Future[list[np.ndarray]]


def _run(model: ModelVersion, x: np.ndarray) -> list[np.ndarray]:
    BATCH_ROWS.observe(len(x))
    return model.run(x)


class Batcher:
    def __init__(self, executor: ThreadPoolExecutor, *, enabled: bool, max_batch_size: int, max_wait_s: float,
                 max_in_flight: int):
        self._executor = executor
        self._enabled = enabled
        self._max_rows = max_batch_size
        self._max_wait = max_wait_s
        self._queue: asyncio.Queue[_Item] | None = None
        self._collector: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(max_in_flight)
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, model: ModelVersion, x: np.ndarray) -> list[np.ndarray]:
        """The model's outputs for `x` (rows in order), possibly computed together with other requests."""
        loop = asyncio.get_running_loop()
        if not self._enabled or len(x) >= self._max_rows:
            async with self._slots:
                return await loop.run_in_executor(self._executor, _run, model, x)
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._collector = asyncio.create_task(self._collect(), name="inference-batcher")
        item = _Item(model, x, loop.create_future())
        self._queue.put_nowait(item)
        return await item.future

    async def _collect(self) -> None:
        assert self._queue is not None
        queue, loop = self._queue, asyncio.get_running_loop()
        while True:
            await self._slots.acquire()  # a free worker first: while all are busy, requests keep queueing
            items = [await queue.get()]
            rows = len(items[0].x)
            deadline = loop.time() + self._max_wait
            while rows < self._max_rows:
                if queue.empty():
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        nxt = await asyncio.wait_for(queue.get(), remaining)
                    except TimeoutError:
                        break
                else:
                    nxt = queue.get_nowait()
                items.append(nxt)
                rows += len(nxt.x)
            task = asyncio.create_task(self._execute(items))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _execute(self, items: list[_Item]) -> None:
        try:
            groups: dict[int, list[_Item]] = {}
            for it in items:
                groups.setdefault(id(it.model), []).append(it)
            loop = asyncio.get_running_loop()
            for group in groups.values():
                model = group[0].model
                x = group[0].x if len(group) == 1 else np.concatenate([it.x for it in group])
                try:
                    outs = await loop.run_in_executor(self._executor, _run, model, x)
                except Exception as exc:
                    for it in group:
                        if not it.future.done():
                            it.future.set_exception(exc)
                    continue
                start = 0
                for it in group:
                    n = len(it.x)
                    if not it.future.done():
                        it.future.set_result([o[start:start + n] for o in outs] if len(group) > 1 else outs)
                    start += n
        finally:
            self._slots.release()

    async def close(self) -> None:
        if self._collector is not None:
            self._collector.cancel()
            try:
                await self._collector
            except asyncio.CancelledError:
                pass
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
