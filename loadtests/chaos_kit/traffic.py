"""The traffic a scenario runs under: SEA records (JSON, as any Kafka client writes them) for the scenario's own
entities at a steady rate, each labelled at once, and gRPC ModelInfer requests by entity id whose outcomes (and
status codes) are kept with their times, so a scenario counts the requests that failed during its fault.

Entities are `<tag>.e<i>` and event ids `<tag>.<i>`: every figure of a scenario is read back by its tag.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mlops.bus import Producer
from mlops.settings import KafkaSettings

__all__ = ["QUIET", "RecordStream", "Requests", "entity_ids", "sea_record"]

# our own clients keep quiet while the broker is down on purpose (librdkafka logs each refused connect)
QUIET: dict[str, object] = {"log_level": 2}
THRESHOLD = 7.0  # SEA variant 2: label = x0 + x1 > 7 (examples/sea)


def entity_ids(tag: str, n: int) -> list[str]:
    return [f"{tag}.e{i}" for i in range(n)]


def sea_record(rng: random.Random, tag: str, i: int, entity: str, t_ms: int) -> tuple[bytes, float]:
    """One raw SEA record (the JSON envelope of examples/sea) and its label."""
    x = [round(rng.uniform(0, 10), 4) for _ in range(3)]
    doc = {"entity_id": entity, "event_time": t_ms, "schema_version": 1, "event_id": f"{tag}.{i}",
           "values": {"x0": x[0], "x1": x[1], "x2": x[2]}}
    return json.dumps(doc, separators=(",", ":")).encode(), float(x[0] + x[1] > THRESHOLD)


@dataclass
class RecordStream:
    """`count` records for `entities` entities of `tag` at `rate`/s in a thread — and on while `more` is set (a
    scenario keeps the stream going until its fault is over; `count` is then what was sent); `at(n)` waits until n
    were sent."""

    kafka: KafkaSettings
    tag: str
    count: int
    rate: float
    entities: int = 50
    labels: bool = True
    interval_ms: int = 100  # event time between records (the demo's pace: windows fill in seconds)
    sent: int = 0
    error: str = ""
    more: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _progress: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> RecordStream:
        self._thread = threading.Thread(target=self._run, name=f"chaos-stream-{self.tag}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        from mlops.contracts import events_pb2
        from mlops.topics import LABELS, topic_name

        raw, labels = f"{self.kafka.topic_prefix}raw.events", topic_name(LABELS, self.kafka)
        producer = Producer(self.kafka, client_id=f"chaos-stream-{self.tag}", extra=QUIET)
        rng, ents = random.Random(self.tag), entity_ids(self.tag, self.entities)
        start_ms, started = int(time.time() * 1000), time.monotonic()
        try:
            i = 0
            while i < self.count or self.more.is_set():
                wait = started + i / self.rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                entity, t = ents[i % len(ents)], start_ms + i * self.interval_ms
                value, label = sea_record(rng, self.tag, i, entity, t)
                producer.send(raw, value, key=entity, headers={"content-type": "application/json"})
                if self.labels:
                    producer.send(labels, events_pb2.Label(entity_id=entity, event_time_ms=t, label=label,
                                                           event_id=f"{self.tag}.{i}"), key=entity)
                producer.poll(0)
                with self._progress:
                    self.sent = i = i + 1
                    self._progress.notify_all()
            self.count = i
            producer.flush(120)  # a broker restart may hold the tail back for a while
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            with self._progress:
                self._progress.notify_all()

    def at(self, n: int, timeout: float = 300.0) -> None:
        with self._progress:
            if not self._progress.wait_for(lambda: self.sent >= n or self.error or not self.running, timeout):
                raise TimeoutError(f"{self.tag}: {self.sent} of {n} records sent after {timeout}s")
        if self.error:
            raise RuntimeError(f"{self.tag} stream failed: {self.error}")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float = 300.0) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        if self.error:
            raise RuntimeError(f"{self.tag} stream failed: {self.error}")


@dataclass
class Requests:
    """ModelInfer by entity id at `rate`/s against inference (thread); each outcome kept as (wall time, code)."""

    port: int
    model: str
    entities: Callable[[], list[str]]
    rate: float = 20.0
    deadline_s: float = 2.0
    outcomes: list[tuple[float, str]] = field(default_factory=list)  # (time.time(), "OK" or the status code)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Requests:
        self._thread = threading.Thread(target=self._run, name="chaos-requests", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        import grpc
        from mlops.contracts.oip import grpc_predict_v2_pb2 as pb2
        from mlops.contracts.oip import grpc_predict_v2_pb2_grpc as pb2_grpc

        rng = random.Random(7)
        channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        stub = pb2_grpc.GRPCInferenceServiceStub(channel)
        started, n = time.monotonic(), 0
        try:
            while not self._stop.is_set():
                wait = started + n / self.rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                elif wait < -1.0:  # a busy machine: do not burst to catch up
                    started, n = time.monotonic(), 0
                n += 1
                entity = rng.choice(self.entities()).encode()
                req = pb2.ModelInferRequest(model_name=self.model, inputs=[pb2.ModelInferRequest.InferInputTensor(
                    name="entity_id", datatype="BYTES", shape=[1],
                    contents=pb2.InferTensorContents(bytes_contents=[entity]))])
                try:
                    stub.ModelInfer(req, timeout=self.deadline_s)
                    code = "OK"
                except grpc.RpcError as exc:
                    code = exc.code().name if exc.code() is not None else "UNKNOWN"
                self.outcomes.append((time.time(), code))
        finally:
            channel.close()

    def between(self, t0: float, t1: float) -> list[tuple[float, str]]:
        return [o for o in list(self.outcomes) if t0 <= o[0] < t1]

    def first_ok_after(self, t: float) -> float | None:
        return next((ts for ts, code in list(self.outcomes) if ts >= t and code == "OK"), None)
