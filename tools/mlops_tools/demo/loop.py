"""The demo's traffic: each example's stream with its labels (through `mlops produce`'s own code), the bootstrap
request for each model's v1, and gRPC predictions by entity id for every model that serves. Each stream and each
bootstrap runs in a thread of its own; one thread drives the predictions of all models."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from mlops.bus import Bus

from mlops_tools.demo.challengers import Switch
from mlops_tools.demo.config import DemoConfig
from mlops_tools.demo.summary import DemoResult, ModelLoop
from mlops_tools.demo.timeline import Timeline
from mlops_tools.generators import Example, example

# the client span of a ModelInfer call, named per the RPC conventions as the server's span is
_INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"
_INFER_ATTRIBUTES = {"rpc.system": "grpc", "rpc.service": "inference.GRPCInferenceService", "rpc.method": "ModelInfer"}

__all__ = ["Stream", "Traffic"]


@dataclass
class Stream:
    """One example's stream and its model's loop: what went out (the ground truth a served prediction is scored
    against) and whether the model serves yet."""

    example: Example
    loop: ModelLoop
    bootstrap_id: str
    counts: dict[str, int] = field(default_factory=lambda: {"events": 0, "labels": 0})  # produce() counts here
    entities: list[str] = field(default_factory=list)
    # (entity id, event time ms) → (record index, label, drifted)
    truth: dict[tuple[str, int], tuple[int, float, bool]] = field(default_factory=dict)
    serving: threading.Event = field(default_factory=threading.Event)  # v1 answers ModelReady

    @property
    def model(self) -> str:
        return self.example.model.name


@dataclass
class Traffic:
    """What the traffic threads share with the watcher and the status line: the run's settings, a `Stream` per
    model, and the stop flag every thread obeys."""

    cfg: DemoConfig
    bus: Bus
    inference_port: int
    result: DemoResult
    timeline: Timeline
    stop: threading.Event = field(default_factory=threading.Event)
    streams: dict[str, Stream] = field(default_factory=dict)  # model name → its stream
    request_times: list[float] = field(default_factory=list)
    episode_over: threading.Event = field(default_factory=threading.Event)  # worse_challenger: back to normal
    done: threading.Event = field(default_factory=threading.Event)  # end_when_done: every loop's story is told

    def __post_init__(self) -> None:
        run = uuid.uuid4().hex[:8]
        for name in self.cfg.examples:
            ex = example(name)
            model = ex.model.name
            loop = self.result.loops.setdefault(model, ModelLoop(model, self.cfg.drift_at, ex.model.task.value))
            self.streams[model] = Stream(ex, loop, f"demo-bootstrap-{model}-{run}")

    @property
    def produced(self) -> int:
        return sum(s.counts["events"] for s in self.streams.values())

    @property
    def labels(self) -> int:
        return sum(s.counts["labels"] for s in self.streams.values())

    def say(self, stream: Stream, what: str) -> None:
        """A timeline event, naming the model when several loops share the timeline."""
        self.timeline.event(f"[{stream.model}] {what}" if len(self.streams) > 1 else what)

    def switch(self, stream: Stream, what: str) -> None:
        """A change of what serves the model: a timeline event with the client's requests and failures so far
        (the figure every switch must leave at 0 failed), kept in the model's loop."""
        lp = stream.loop
        lp.live.switches.append(Switch(self.timeline.now(), what, lp.requests, lp.failed_requests))
        self.say(stream, f"{what}  [requests {lp.requests + lp.failed_requests}, failed {lp.failed_requests}]")

    # --- the streams ----------------------------------------------------------------------------------------------
    def stream(self, model: str | None = None) -> None:
        """Produce one example's stream and labels (thread body); a producer failure ends the run with its reason."""
        from mlops_tools.cli.produce_cmd import ProduceOptions, produce

        s = self.streams[model] if model is not None else next(iter(self.streams.values()))
        cfg = self.cfg
        config = s.example.config(count=cfg.records, drift_at=cfg.drift_at, entities=cfg.entities, seed=cfg.seed,
                                  start_ms=int(time.time() * 1000),
                                  interval_ms=cfg.event_interval_ms or s.example.interval_ms(cfg.records))
        options = ProduceOptions(rate=cfg.rate, label_delay_ms=cfg.label_delay_ms)
        placed = cfg.drift_at is not None and (cfg.worse_challenger or cfg.wait_for_monitor)
        # else the generator's own, byte for byte (what produce() would generate)
        records = self._drifting(s, config) if placed else s.example.generate(config)
        try:
            produce(config, options=options, bus=self.bus, on_record=lambda rec: self._on_produced(s, rec),
                    counts=s.counts, stop=self.stop, example=s.example.name, records=self._until_done(records))
            s.loop.records_produced, s.loop.labels_sent = s.counts["events"], s.counts["labels"]
            if not self.stop.is_set():
                early = " (ended early: every loop's story is told)" if self.done.is_set() else ""
                self.say(s, f"stream done: {s.counts['events']} records, {s.counts['labels']} labels{early}")
        except Exception as exc:
            self.result.error = f"producer ({s.example.name}): {type(exc).__name__}: {exc}"
            self.stop.set()

    def _until_done(self, records: Iterator[Any]) -> Iterator[Any]:
        """The records until `done` is set (end_when_done); produce() then sends the labels still due and flushes,
        as at the end of a stream."""
        for rec in records:
            if self.done.is_set():
                return
            yield rec

    def _drifting(self, s: Stream, config: Any) -> Iterator[Any]:
        """The stream with its drift placed by the run: from `drift_at` on — or, with `wait_for_monitor`, from the
        first record after it at which the monitor is armed (the model has answered `monitor_min_records`
        requests; at the latest halfway to the end), so a slow bootstrap on a busy machine does not leave the drift
        unwatched — the records follow the new concept. `worse_challenger`: only until a retrain the episode
        causes has put its candidate on live traffic as a challenger (`episode_over`, set by the watcher) or
        `episode_max_records` passed, and without the covariate shift; then the old concept again. Both concepts
        come from the example's own generator, record for record (same index, entity, event time and event id)."""
        cfg = self.cfg
        first = cfg.drift_at or 0
        latest = first + (cfg.records - first) // 2 if cfg.wait_for_monitor else first
        normal = s.example.generate(replace(config, drift_at=None))
        drifted = s.example.generate(replace(config, drift_at=0,
                                             covariate_shift=config.covariate_shift and not cfg.worse_challenger))
        start: int | None = None
        ended = False
        for plain, odd in zip(normal, drifted, strict=True):
            i = plain.index
            if start is None and i >= first and (i >= latest or self._armed(s)):
                start = i
            if start is not None and cfg.worse_challenger and not ended:
                ended = self.episode_over.is_set() or i >= start + cfg.episode_max_records
                if ended:
                    self.say(s, f"EPISODE over at record {i} ({i - start} records): the old concept is back "
                                "(x0 + x1 > 7)")
            yield odd if start is not None and not ended else plain

    def _armed(self, s: Stream) -> bool:
        """The model serves and has answered enough requests for the monitor to judge a drift (with a margin)."""
        return s.serving.is_set() and s.loop.requests >= self.cfg.monitor_min_records + 100

    def _on_produced(self, s: Stream, rec: Any) -> None:
        s.truth[(rec.entity_id, rec.event_time_ms)] = (rec.index, float(rec.label), rec.drifted)
        s.loop.records_produced = s.counts["events"]
        if rec.drifted and s.loop.drift_t_s is None:  # the first record of the new concept
            s.loop.drift_at, s.loop.drift_t_s = rec.index, self.timeline.now()
            if self.cfg.worse_challenger:
                self.say(s, f"EPISODE begins at record {rec.index}: for a while the labels follow x0 + x1 > 9.5 "
                            f"(a transient regime; no covariate shift)")
            else:
                self.say(s, f"DRIFT injected at record {rec.index} ({s.example.drift})")
        if rec.entity_id not in s.entities and len(s.entities) < self.cfg.entities:
            s.entities.append(rec.entity_id)

    # --- model v1 -------------------------------------------------------------------------------------------------
    def bootstrap_v1(self, model: str, stream: threading.Thread) -> None:
        """Ask for `model`'s v1 once enough labels exist; wait until it is promoted and served (ModelReady)."""
        import grpc
        from mlops.contracts import models_pb2
        from mlops.contracts.oip import pb2, pb2_grpc
        from mlops.topics import RETRAIN_REQUESTED

        cfg, s = self.cfg, self.streams[model]
        while s.counts["labels"] < cfg.bootstrap_rows:
            if not stream.is_alive() or self.stop.is_set():
                raise RuntimeError(f"the {s.example.name} stream ended before enough labels for v1")
            self.show_status()
            time.sleep(0.2)
        producer = self.bus.producer(client_id=f"mlops-demo-{model}")
        deadline = time.monotonic() + cfg.v1_timeout_s
        attempt = 0
        with grpc.insecure_channel(f"127.0.0.1:{self.inference_port}") as channel:
            stub = pb2_grpc.GRPCInferenceServiceStub(channel)

            def ready() -> bool:
                try:
                    return bool(stub.ModelReady(pb2.ModelReadyRequest(name=model), timeout=2).ready)
                except grpc.RpcError:
                    return False

            while True:
                attempt += 1
                failures, rejections = len(s.loop.training_failures), self._rejections(s)
                req = models_pb2.RetrainRequest(
                    model_name=model, request_id=f"{s.bootstrap_id}-{attempt}",
                    reason="demo: bootstrap model v1", detector="manual", requested_at_ms=int(time.time() * 1000),
                    requested_by="demo")
                producer.send(self.bus.topic(RETRAIN_REQUESTED), req, key=model)
                producer.flush()
                self.say(s, f"bootstrap: {s.counts['labels']} labels sent, v1 requested ({req.request_id})")
                while not ready():
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{model} v1 not served within {cfg.v1_timeout_s:.0f}s")
                    if self.stop.is_set():
                        raise RuntimeError(self.result.error or "stopped")
                    if len(s.loop.training_failures) > failures or self._rejections(s) > rejections:
                        break  # not enough joinable rows yet (a lagging feature pipeline): ask again shortly
                    self.show_status()
                    time.sleep(0.2)
                if ready():
                    break
                time.sleep(3.0)
        s.serving.set()
        self.say(s, f"v1 serving on gRPC 127.0.0.1:{self.inference_port} (ModelReady); "
                    f"driving {cfg.predict_rate:g} req/s by entity id")

    @staticmethod
    def _rejections(s: Stream) -> int:
        return sum(1 for _, d, _ in s.loop.gate if d == "rejected")

    # --- predictions ----------------------------------------------------------------------------------------------
    def predict(self) -> None:
        """Send OIP ModelInfer requests by entity id at `predict_rate`/s, taking turns among the models that serve
        (one inference server for all), counting failures per model (thread body)."""
        import numpy as np
        import tritonclient.grpc as grpcclient
        from mlops.telemetry import tracer
        from opentelemetry.propagate import inject
        from opentelemetry.trace import SpanKind


        cfg = self.cfg
        rng = random.Random(cfg.seed + 1)
        tr = tracer("mlops.demo")
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{self.inference_port}")
        started = time.monotonic()
        n = 0
        try:
            while not self.stop.is_set():
                wait = started + n / cfg.predict_rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                elif wait < -1.0:  # fell behind (a busy machine): do not burst to catch up
                    started, n = time.monotonic(), 0
                n += 1
                serving = [s for s in self.streams.values() if s.serving.is_set() and s.entities]
                if not serving:
                    continue
                s = serving[n % len(serving)]
                inp = grpcclient.InferInput("entity_id", [1], "BYTES")
                inp.set_data_from_numpy(np.array([rng.choice(s.entities).encode()], dtype=np.object_))
                with tr.start_as_current_span(_INFER_METHOD, kind=SpanKind.CLIENT, attributes=_INFER_ATTRIBUTES):
                    headers: dict[str, str] = {}
                    inject(headers)
                    try:
                        resp = client.infer(s.model, [inp], headers=headers, client_timeout=10)
                    except Exception as exc:
                        s.loop.failed_requests += 1
                        s.loop.last_error = str(exc)[:300]
                        continue
                version = resp.get_response().model_version
                t = self.timeline.now()
                self.request_times.append(t)
                s.loop.requests += 1
                if version not in s.loop.serving:
                    s.loop.serving[version] = t
                    if len(s.loop.serving) > 1:
                        self.switch(s, f"v{version} SERVING: first response from v{version}")
        finally:
            client.close()

    # --- status ---------------------------------------------------------------------------------------------------
    def show_status(self) -> None:
        now = self.timeline.now()
        recent = [t for t in self.request_times[-400:] if t > now - 2.0]
        per_model = []
        for s in self.streams.values():
            lp = s.loop
            serving = max(lp.serving, key=lambda v: lp.serving[v]) if lp.serving else "-"
            per_model.append(f"{s.model}: {s.counts['events']}/{self.cfg.records} rec, v{serving}, "
                             f"retrains {lp.retrains}, failed {lp.failed_requests}")
        self.timeline.status(f"[{now:7.1f}s] requests {len(self.request_times)} ({len(recent) / 2:.0f}/s) · "
                             + " · ".join(per_model))
