"""Second versions on live traffic: which requests a challenger takes, and the mirror that scores shadow and guard
requests off the response path.

Routing (`share`): a stable hash of a key — blake2b, the same in every process and replica, never Python's
salted `hash()` — mapped to [0, 1); a request is taken when it falls below the challenger's traffic fraction.
- canary: the key is the request's FIRST entity id (its request id when it names no entity), and the whole request
  goes to one version. The same entity is answered by the same version on every request and every replica as long
  as the fraction stays; a request with several entities follows its first (simple, sticky; its other entities
  may be answered by the other version in their own requests).
- shadow and guard: the key is the request id (a hash, not a draw: a retried request is mirrored again or not).

The mirror (`Mirror`): the request path appends the rows it already has to a bounded buffer and returns; a thread
of its own wakes once per interval while work flows (not once per request: a thread wake-up costs more than a
request's share of work), merges what queued per version into one onnxruntime call and hands each request's rows to
the prediction log as that request's shadow/guard rows. A full buffer drops the new request's mirror work and
counts it (`mlops_inference_mirror_dropped_total{reason="queue_full"}`): clients never wait for a challenger.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from services.inference.core.catalog import ModelSpec
from services.inference.core.domain import ServedBatch
from services.inference.core.models import ModelVersion
from services.inference.core.outputs import Binding, served_output
from services.inference.metrics import CHALLENGER_REQUESTS, MIRROR_DROPPED, MIRROR_QUEUE_ROWS

__all__ = ["Mirror", "MirrorJob", "columns_for", "share"]

log = logging.getLogger("mlops.inference")
_SCALE = float(1 << 64)


def share(key: str) -> float:
    """Where `key` falls in [0, 1): the first 8 bytes of its blake2b digest over 2**64 (stable everywhere)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / _SCALE


def columns_for(champion: ModelSpec, second: ModelSpec) -> list[int] | None:
    """Where each input of `second` sits in `champion`'s input (None: `second` reads a feature the champion does
    not, so the champion's rows cannot feed it). Identity is the common case and is answered by the caller."""
    where = {name: i for i, name in enumerate(champion.feature_names)}
    try:
        return [where[name] for name in second.feature_names]
    except KeyError:
        return None


@dataclass(slots=True)
class MirrorJob:
    """One request's rows for a mirrored version: what to run and what its prediction-log rows say."""

    model: ModelVersion
    binding: Binding
    spec: ModelSpec
    role: str
    request_id: str
    x: np.ndarray
    entity_ids: list[str] | None
    as_of_ms: list[int] | None
    started: float  # perf_counter at the request's arrival: the rows' latency runs to the mirror's answer
    trace: object


class Mirror:
    """Scores mirrored requests on its own thread and offers their rows to `sink`; at most `max_rows` rows wait,
    `batch_rows` rows per onnxruntime call, one wake-up per `interval_s` while work flows."""

    def __init__(self, sink: Callable[[ServedBatch], object], max_rows: int, batch_rows: int, interval_s: float):
        self._sink, self._limit, self._batch_rows, self._interval_s = sink, max_rows, batch_rows, interval_s
        self._buffer: collections.deque[MirrorJob] = collections.deque()
        self._pending_rows = 0
        self._cond = threading.Condition()
        self._stop = self._idle = False
        self._thread = threading.Thread(target=self._run, name="inference-mirror", daemon=True)
        self._thread.start()

    def offer(self, job: MirrorJob) -> bool:
        """Queue `job`; False (counted) when the buffer is full or the mirror is closing. Never blocks."""
        n = len(job.x)
        with self._cond:
            if self._stop or self._pending_rows + n > self._limit:
                MIRROR_DROPPED.labels(job.spec.name, job.role, "queue_full").inc()
                return False
            if self._idle:  # wake the thread only from its idle wait: while work flows it runs on a timer
                self._cond.notify()
            self._buffer.append(job)
            self._pending_rows += n
        return True

    def pending_rows(self) -> int:
        return self._pending_rows

    def _take(self) -> list[MirrorJob]:
        with self._cond:
            jobs: list[MirrorJob] = []
            rows = 0
            while self._buffer and (not jobs or rows + len(self._buffer[0].x) <= self._batch_rows):
                job = self._buffer.popleft()
                jobs.append(job)
                rows += len(job.x)
            self._pending_rows -= rows
            return jobs

    def _run(self) -> None:
        flowing = False
        while True:
            with self._cond:
                if not self._buffer and not self._stop and not flowing:
                    self._idle = True
                    self._cond.wait(1.0)
                    self._idle = False
                if self._stop and not self._buffer:
                    return
            if not self._stop:
                time.sleep(self._interval_s)  # let concurrent requests queue up: one wake-up per interval
            flowing = False
            while jobs := self._take():
                flowing = True
                groups: dict[tuple[int, int], list[MirrorJob]] = {}
                for job in jobs:
                    groups.setdefault((id(job.model), id(job.binding)), []).append(job)
                for group in groups.values():
                    self._score(group)
            MIRROR_QUEUE_ROWS.set(self._pending_rows)

    def _score(self, group: list[MirrorJob]) -> None:
        first = group[0]
        try:
            x = first.x if len(group) == 1 else np.concatenate([job.x for job in group])
            output = served_output(first.binding, first.model.run(x))
        except Exception as exc:  # a failing challenger must not kill the mirror
            MIRROR_DROPPED.labels(first.spec.name, first.role, "failed").inc(len(group))
            log.error("mirrored scoring failed", extra={"fields": {
                "model": first.model.name, "version": first.model.version, "role": first.role, "error": str(exc)}})
            return
        now_ms, done = int(time.time() * 1000), time.perf_counter()
        start = 0
        for job in group:
            n = len(job.x)
            spec = job.spec
            self._sink(ServedBatch(
                job.request_id, spec.name, job.model.version, spec.task, spec.classes, spec.feature_names, job.x,
                output[start:start + n], job.entity_ids, job.as_of_ms, int((done - job.started) * 1e6), now_ms,
                job.role, job.trace))
            start += n
        CHALLENGER_REQUESTS.labels(first.spec.name, first.model.version, first.role).inc(len(group))

    def close(self, timeout: float = 10.0) -> None:
        """Score what is queued (up to `timeout`), stop the thread."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout)
