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
request's share of work), merges what queued per version into one onnxruntime call and hands the rows to the
prediction log as ONE batch (a record per partition, not per request: packing and producing a record costs more
than scoring a row), each row carrying its request's id and landing in its request's partition, as the champion's
rows do. A batch of one request carries that request's trace; a merged one carries none. A full buffer drops the
new request's mirror work and counts it (`mlops_inference_mirror_dropped_total{reason="queue_full"}`): clients
never wait for a challenger.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from services.inference.core.catalog import ModelSpec
from services.inference.core.domain import ServedBatch, joined_entities, joined_keys
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


def _merged(group: list[MirrorJob], x: np.ndarray, output: np.ndarray, latency_us: int, now_ms: int) -> ServedBatch:
    """The rows of several mirrored requests as one batch: per row its request id (as the champion's rows derive
    it: the request's id for a one-row request, else `<id>/<row>`), its row index, its entity (or "") and the key
    its request's champion rows were partitioned by (its entity, else its request id)."""
    first, spec = group[0], group[0].spec
    row_ids: list[str] = []
    for job in group:
        n = len(job.x)
        row_ids += [job.request_id] if n == 1 else [f"{job.request_id}/{i}" for i in range(n)]
    entities, as_of = joined_entities(group)
    keys = joined_keys(group)
    index = np.concatenate([np.arange(len(job.x), dtype=np.uint32) for job in group])
    return ServedBatch(first.request_id, spec.name, first.model.version, spec.task, spec.classes, spec.feature_names,
                       x, output, entities, as_of, latency_us, now_ms, first.role, None, row_ids, index, keys)


def _lower_priority(nice: int) -> None:
    """Raise the calling thread's nice value by `nice` (Linux schedules threads as tasks; raising it needs no
    privilege). The onnxruntime call runs on this thread too (one intra-op thread), so the mirror's work gets the
    CPU the request path leaves over instead of competing with it."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as exc:
        log.warning("mirror priority unchanged", extra={"fields": {"error": str(exc)}})


class Mirror:
    """Scores mirrored requests on its own thread and offers their rows to `sink`; at most `max_rows` rows wait,
    `batch_rows` rows per onnxruntime call, one wake-up per `interval_s` while work flows."""

    def __init__(self, sink: Callable[[ServedBatch], object], max_rows: int, batch_rows: int, interval_s: float,
                 nice: int = 0):
        self._sink, self._limit, self._batch_rows, self._interval_s = sink, max_rows, batch_rows, interval_s
        self._nice = nice
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
        _lower_priority(self._nice)
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
                groups: dict[tuple[int, int, str], list[MirrorJob]] = {}
                for job in jobs:
                    groups.setdefault((id(job.model), id(job.binding), job.role), []).append(job)
                for group in groups.values():
                    try:
                        self._score(group)
                    except Exception as exc:  # a failing challenger (or a row it cannot log) must not stop the mirror
                        first = group[0]
                        MIRROR_DROPPED.labels(first.spec.name, first.role, "failed").inc(len(group))
                        log.error("mirrored scoring failed", extra={"fields": {
                            "model": first.model.name, "version": first.model.version, "role": first.role,
                            "error": str(exc)}})
            MIRROR_QUEUE_ROWS.set(self._pending_rows)

    def _score(self, group: list[MirrorJob]) -> None:
        first = group[0]
        x = first.x if len(group) == 1 else np.concatenate([job.x for job in group])
        output = served_output(first.binding, first.model.run(x))
        now_ms, latency_us = int(time.time() * 1000), int((time.perf_counter() - first.started) * 1e6)
        spec = first.spec
        if len(group) == 1:  # one request: its record as the champion's, under its trace
            self._sink(ServedBatch(
                first.request_id, spec.name, first.model.version, spec.task, spec.classes, spec.feature_names, x,
                output, first.entity_ids, first.as_of_ms, latency_us, now_ms, first.role, first.trace))
        else:
            self._sink(_merged(group, x, output, latency_us, now_ms))
        CHALLENGER_REQUESTS.labels(spec.name, first.model.version, first.role).inc(len(group))

    def close(self, timeout: float = 10.0) -> None:
        """Score what is queued (up to `timeout`), stop the thread."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout)
