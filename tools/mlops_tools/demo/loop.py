"""The demo's traffic: the SEA stream with its labels (through `mlops produce`'s own code), the bootstrap request
for model v1, and gRPC predictions by entity id once v1 serves. Each runs in a thread of its own."""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from mlops.bus import Bus

from mlops_tools.demo.config import MODEL, DemoConfig
from mlops_tools.demo.summary import DemoResult
from mlops_tools.demo.timeline import Timeline

__all__ = ["Traffic"]


@dataclass
class Traffic:
    """What the traffic threads share with the watcher and the status line: the run's settings, the stream's
    ground truth and counters, and the stop flag every thread obeys."""

    cfg: DemoConfig
    bus: Bus
    inference_port: int
    result: DemoResult
    timeline: Timeline
    stop: threading.Event = field(default_factory=threading.Event)
    bootstrap_id: str = field(default_factory=lambda: f"demo-bootstrap-{uuid.uuid4().hex[:8]}")
    counts: dict[str, int] = field(default_factory=lambda: {"events": 0, "labels": 0})  # produce() counts here
    entities: list[str] = field(default_factory=list)
    # (entity id, event time ms) → (record index, label, drifted): what a served prediction is scored against
    truth: dict[tuple[str, int], tuple[int, int, bool]] = field(default_factory=dict)
    request_times: list[float] = field(default_factory=list)

    @property
    def produced(self) -> int:
        return self.counts["events"]

    @property
    def labels(self) -> int:
        return self.counts["labels"]

    # --- the stream -----------------------------------------------------------------------------------------------
    def stream(self) -> None:
        """Produce the SEA stream and its labels (thread body); a producer failure ends the run with its reason."""
        from mlops_tools.cli.produce_cmd import ProduceOptions, produce
        from mlops_tools.datagen import StreamConfig

        cfg = self.cfg
        stream = StreamConfig(count=cfg.records, drift_at=cfg.drift_at, entities=cfg.entities, seed=cfg.seed,
                              start_ms=int(time.time() * 1000), interval_ms=cfg.event_interval_ms)
        options = ProduceOptions(rate=cfg.rate, label_delay_ms=cfg.label_delay_ms)
        try:
            produce(stream, options=options, bus=self.bus, on_record=self._on_produced, counts=self.counts,
                    stop=self.stop)
            if not self.stop.is_set():
                self.timeline.event(f"stream done: {self.produced} records, {self.labels} labels")
        except Exception as exc:
            self.result.error = f"producer: {type(exc).__name__}: {exc}"
            self.stop.set()

    def _on_produced(self, rec: Any) -> None:
        self.truth[(rec.entity_id, rec.event_time_ms)] = (rec.index, rec.label, rec.drifted)
        if rec.index == self.cfg.drift_at:
            self.result.drift_t_s = self.timeline.now()
            self.timeline.event(f"DRIFT injected at record {rec.index} (SEA variant 2 → 3, x2 → [5, 10])")
        if rec.entity_id not in self.entities and len(self.entities) < self.cfg.entities:
            self.entities.append(rec.entity_id)

    # --- model v1 -------------------------------------------------------------------------------------------------
    def bootstrap_v1(self, stream: threading.Thread) -> None:
        """Ask for v1 once enough labels exist; wait until it is promoted and served (ModelReady)."""
        import grpc
        from mlops.contracts import models_pb2
        from mlops.contracts.oip import pb2, pb2_grpc
        from mlops.topics import RETRAIN_REQUESTED

        cfg = self.cfg
        while self.labels < cfg.bootstrap_rows:
            if not stream.is_alive() or self.stop.is_set():
                raise RuntimeError("the stream ended before enough labels for v1")
            self.show_status()
            time.sleep(0.2)
        producer = self.bus.producer(client_id="mlops-demo")
        deadline = time.monotonic() + cfg.v1_timeout_s
        attempt = 0
        with grpc.insecure_channel(f"127.0.0.1:{self.inference_port}") as channel:
            stub = pb2_grpc.GRPCInferenceServiceStub(channel)

            def ready() -> bool:
                try:
                    return bool(stub.ModelReady(pb2.ModelReadyRequest(name=MODEL), timeout=2).ready)
                except grpc.RpcError:
                    return False

            while True:
                attempt += 1
                failures, rejections = len(self.result.training_failures), self._rejections()
                req = models_pb2.RetrainRequest(
                    model_name=MODEL, request_id=f"{self.bootstrap_id}-{attempt}",
                    reason="demo: bootstrap model v1", detector="manual", requested_at_ms=int(time.time() * 1000),
                    requested_by="demo")
                producer.send(self.bus.topic(RETRAIN_REQUESTED), req, key=MODEL)
                producer.flush()
                self.timeline.event(f"bootstrap: {self.labels} labels sent, v1 requested ({req.request_id})")
                while not ready():
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"v1 not served within {cfg.v1_timeout_s:.0f}s")
                    if self.stop.is_set():
                        raise RuntimeError(self.result.error or "stopped")
                    if len(self.result.training_failures) > failures or self._rejections() > rejections:
                        break  # not enough joinable rows yet (a lagging feature pipeline): ask again shortly
                    self.show_status()
                    time.sleep(0.2)
                if ready():
                    break
                time.sleep(3.0)
        self.timeline.event(f"v1 serving on gRPC 127.0.0.1:{self.inference_port} (ModelReady); "
                            f"driving {cfg.predict_rate:g} req/s by entity id")

    def _rejections(self) -> int:
        return sum(1 for _, d, _ in self.result.gate if d == "rejected")

    # --- predictions ----------------------------------------------------------------------------------------------
    def predict(self) -> None:
        """Send OIP ModelInfer requests by entity id at `predict_rate`/s, counting failures (thread body)."""
        import numpy as np
        import tritonclient.grpc as grpcclient
        from mlops.telemetry import tracer
        from opentelemetry.propagate import inject

        cfg, result = self.cfg, self.result
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
                entity = rng.choice(self.entities)
                inp = grpcclient.InferInput("entity_id", [1], "BYTES")
                inp.set_data_from_numpy(np.array([entity.encode()], dtype=np.object_))
                with tr.start_as_current_span("demo ModelInfer"):
                    headers: dict[str, str] = {}
                    inject(headers)
                    try:
                        resp = client.infer(MODEL, [inp], headers=headers, client_timeout=10)
                    except Exception as exc:
                        result.failed_requests += 1
                        result.last_error = str(exc)[:300]
                        continue
                version = resp.get_response().model_version
                t = self.timeline.now()
                self.request_times.append(t)
                if version not in result.serving:
                    result.serving[version] = t
                    if len(result.serving) > 1:
                        self.timeline.event(f"v{version} SERVING: first response from v{version}")
        finally:
            client.close()

    # --- status ---------------------------------------------------------------------------------------------------
    def show_status(self) -> None:
        r = self.result
        now = self.timeline.now()
        recent = [t for t in self.request_times[-400:] if t > now - 2.0]
        serving = max(r.serving, key=lambda v: r.serving[v]) if r.serving else "-"
        self.timeline.status(
            f"[{now:7.1f}s] produced {self.produced}/{self.cfg.records} · labels {self.labels} · "
            f"requests {len(self.request_times)} ({len(recent) / 2:.0f}/s) · serving v{serving} · "
            f"failed {r.failed_requests} · retrains {r.retrains}")
