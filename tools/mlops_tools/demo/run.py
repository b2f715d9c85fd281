"""The closed-loop demo as a plain API: drift → detection → retrain → gate → hot swap, on the real stack.

`Demo(config).run()` does what `mlops demo` shows, at any scale (the end-to-end test runs it smaller):

1. `Stack().up()` (Kafka + Redis, idempotent); a fresh topic prefix and Redis key prefix for this run (its topics
   created first), so runs never see each other's records; the six services started as background processes with
   that prefix, their own consumer groups, file-exported traces and default (or free) ports; each awaited (/readyz).
2. The synthetic SEA stream (mlops_tools.datagen) with a KNOWN drift point is produced to raw.events at `rate`/s, its
   labels to `labels` `label_delay_ms` later. Event time advances `event_interval_ms` per record (faster than the
   wall clock by default, so the 30 s / 60 s feature windows fill in seconds and the monitor's reference windows
   span several of them).
3. Model v1 is bootstrapped by a RetrainRequest once `bootstrap_rows` labels exist; once it is promoted and served
   (gRPC ModelReady), a thread sends OIP ModelInfer requests by entity id at `predict_rate`/s, counting failures.
4. A watcher reads the run's topics (retrain.requested, model.candidates, training.failures, registry.log,
   model.promoted, predictions, events.dlq) and builds the timeline: drift detected, retrain, gate decision, v2
   promoted, v2 serving; accuracy is the served prediction (PredictionRecord) against the label of the record whose
   features it used (entity + features_as_of_ms identify that record).

The result is a `DemoResult` (figures + timeline) whose `table()` is the demo's closing summary. Ctrl-C (or any
exception) leaves `run()` with a partial result; `close()` stops what `start()` started.
"""

from __future__ import annotations

import heapq
import random
import socket
import sys
import threading
import time
import urllib.request
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from mlops_tools.procs import ManagedProcess, port_open

SERVICES = ("ingest", "features", "trainer", "registry", "inference", "monitor")
DEFAULT_OPS_PORTS = {"ingest": 9101, "features": 9102, "trainer": 9103, "registry": 9104, "inference": 9105,
                     "monitor": 9106}
DEFAULT_INFERENCE_PORT, DEFAULT_REGISTRY_PORT = 8001, 8002
MODEL = "sea"

__all__ = ["Demo", "DemoConfig", "DemoResult", "TimelineEvent"]


@dataclass(frozen=True)
class DemoConfig:
    records: int = 12_000
    rate: float = 100.0  # records per second into raw.events
    drift_at: int | None = 6_000  # index of the first record of the new concept; None: a no-drift control run
    seed: int = 42
    entities: int = 100
    label_delay_ms: int = 1_000
    predict_rate: float = 50.0  # gRPC requests per second once v1 serves
    event_interval_ms: float = 100.0  # event time between two records (the wall clock does 1000 / rate)
    bootstrap_rows: int = 600  # labels sent before v1 is requested
    train_window_rows: int = 600  # MLOPS_TRAINER_MAX_ROWS: the trainer's sliding window (0: every row)
    train_max_iter: int = 50  # MLOPS_TRAINER_MAX_ITER
    monitor_window: int = 500  # MLOPS_MONITOR_WINDOW_SIZE (predictions per reference / current window)
    monitor_min_records: int = 1_000  # MLOPS_MONITOR_MIN_RECORDS (predictions of a version before a retrain)
    default_ports: bool = True  # the conventional ports when free (else free ones); False: always free ones
    process_dir: Path | None = None  # None: pids/logs in the stack's run folder like `mlops up`; else there
    run_dir: Path | None = None  # traces and the faust data of this run (default .run/demo-<ts>)
    ready_timeout_s: float = 120.0
    v1_timeout_s: float = 120.0
    v2_wait_s: float = 30.0  # after the stream ends, how long to wait for a pending v2
    extra_env: dict[str, str] = field(default_factory=dict)  # more MLOPS_* settings for every service

    def __post_init__(self) -> None:
        if self.records < 1 or self.rate <= 0 or self.predict_rate <= 0:
            raise ValueError("records, rate and predict_rate must be positive")
        if self.drift_at is not None and not 0 < self.drift_at < self.records:
            raise ValueError(f"drift_at must lie in (0, {self.records}), got {self.drift_at}")
        if self.bootstrap_rows >= (self.drift_at if self.drift_at is not None else self.records):
            raise ValueError("bootstrap_rows must come before the drift point (and the end of the stream)")


@dataclass(frozen=True)
class TimelineEvent:
    t_s: float  # seconds since the stream started
    what: str


@dataclass
class DemoResult:
    tag: str
    drift_at: int | None
    records_produced: int = 0
    labels_sent: int = 0
    dlq: int = 0
    drift_t_s: float | None = None
    detections: list[tuple[float, int, str]] = field(default_factory=list)  # (t_s, records since drift, reason)
    false_alarms: int = 0  # monitor requests before the drift point (or in a no-drift run)
    retrains: int = 0  # trainings that answered a monitor request (candidates)
    monitor_requests: int = 0
    candidates: int = 0
    training_failures: list[str] = field(default_factory=list)
    gate: list[tuple[str, str, str]] = field(default_factory=list)  # (version, decision, reason)
    promoted: list[tuple[float, str]] = field(default_factory=list)  # (t_s, version)
    serving: dict[str, float] = field(default_factory=dict)  # version → t_s of its first response
    requests: int = 0
    failed_requests: int = 0
    last_error: str = ""
    accuracy: dict[tuple[str, bool], list[int]] = field(default_factory=dict)  # (version, drifted) → [hits, n]
    example_trace_id: str = ""
    traces_file: str = ""
    timeline: list[TimelineEvent] = field(default_factory=list)
    elapsed_s: float = 0.0
    interrupted: bool = False
    error: str = ""

    # --- derived figures ----------------------------------------------------------------------------------------
    def acc(self, version: str, drifted: bool) -> float | None:
        hits, n = self.accuracy.get((version, drifted), (0, 0))
        return hits / n if n else None

    def count(self, version: str, drifted: bool) -> int:
        return self.accuracy.get((version, drifted), (0, 0))[1]

    @property
    def detection_delay_s(self) -> float | None:
        if self.drift_t_s is None or not self.detections:
            return None
        return self.detections[0][0] - self.drift_t_s

    @property
    def detection_delay_records(self) -> int | None:
        return self.detections[0][1] if self.detections and self.drift_t_s is not None else None

    @property
    def v1(self) -> str | None:
        """The version the demo bootstrapped (the first one promoted)."""
        return self.promoted[0][1] if self.promoted else None

    @property
    def v2(self) -> str | None:
        """The first version promoted after the drift point."""
        if self.drift_t_s is None:
            return None
        return next((v for t, v in self.promoted if t >= self.drift_t_s), None)

    @property
    def loop_time_s(self) -> float | None:
        """Drift injected → the first response served by the new version."""
        v2 = self.v2
        if v2 is None or v2 not in self.serving or self.drift_t_s is None:
            return None
        return self.serving[v2] - self.drift_t_s

    def table(self) -> str:
        def pct(v: float | None, n: int) -> str:
            return f"{v * 100:6.2f} %  (n={n})" if v is not None else "    -"

        def sec(v: float | None) -> str:
            return f"{v:.1f} s" if v is not None else "-"

        v1, v2 = self.v1 or "1", self.v2
        rows = [
            ("records produced / DLQ'd", f"{self.records_produced} / {self.dlq}  ({self.labels_sent} labels)"),
            ("drift injected", "none (control run)" if self.drift_at is None else
             f"record {self.drift_at} at {sec(self.drift_t_s)}" if self.drift_t_s is not None else
             f"record {self.drift_at} (not reached)"),
            (f"v{v1} accuracy, pre-drift" if self.drift_at is not None else f"v{v1} accuracy",
             pct(self.acc(v1, False), self.count(v1, False))),
        ]
        if self.drift_at is not None:
            rows.append((f"v{v1} accuracy, post-drift", pct(self.acc(v1, True), self.count(v1, True))))
        if v2 is not None:
            rows.append((f"v{v2} accuracy, post-drift", pct(self.acc(v2, True), self.count(v2, True))))
        det = (f"{sec(self.detection_delay_s)} / {self.detection_delay_records} records"
               if self.detection_delay_s is not None else "not detected" if self.drift_at is not None else "-")
        rows += [
            ("detection delay", det),
            ("false alarms", str(self.false_alarms)),
            ("retrains (monitor-requested)", f"{self.retrains} ({self.monitor_requests} requests)"),
            ("gate decisions", "; ".join(f"v{v} {d}" for v, d, _ in self.gate) or "-"),
            (f"loop time drift → v{v2 or '2'} serving", f"{sec(self.loop_time_s)} (target <= 20 s)"
             if self.drift_at is not None else "-"),
            ("inference requests / failed", f"{self.requests} / {self.failed_requests}"),
            ("run time", sec(self.elapsed_s) + ("  (interrupted: partial)" if self.interrupted else "")),
        ]
        width = max(len(k) for k, _ in rows)
        lines = ["", "summary " + "─" * (width + 40)]
        lines += [f"  {k:<{width}}  {v}" for k, v in rows]
        if self.last_error:
            lines.append(f"  last request error: {self.last_error}")
        if self.error:
            lines.append(f"  error: {self.error}")
        if self.traces_file:
            lines.append(f"  traces: {self.traces_file}")
            if self.example_trace_id:
                lines.append(f"  one prediction's trace: mlops trace {self.example_trace_id} "
                             f"--file {self.traces_file}")
        return "\n".join(lines)


# --- helpers ------------------------------------------------------------------------------------------------------


_PICKED: set[int] = set()


def _free_port() -> int:
    """A free port below the usual ephemeral range (32768+), where outgoing connections of this busy machine
    (Kafka clients) do not grab it between our check and the service's bind; never one handed out before."""
    rng = random.Random()
    for _ in range(1000):
        port = rng.randint(20_000, 32_000)
        if port in _PICKED:
            continue
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        _PICKED.add(port)
        return port
    raise RuntimeError("no free port found in 20000-32000")


def _port(default: int, prefer_default: bool) -> int:
    return default if prefer_default and not port_open("127.0.0.1", default) else _free_port()


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (loopback)
            return bool(resp.status == 200)
    except Exception:
        return False


class _Status:
    """One-line live status on a terminal; plain periodic lines otherwise. Timeline lines always print."""

    def __init__(self, out: TextIO, every_s: float = 5.0):
        self.out = out
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.every_s = every_s
        self._last = -1e9
        self._shown = False
        self._lock = threading.Lock()

    def event(self, line: str) -> None:
        with self._lock:
            if self._shown:
                self.out.write("\r\033[K")
                self._shown = False
            self.out.write(line + "\n")
            self.out.flush()

    def status(self, line: str) -> None:
        with self._lock:
            now = time.monotonic()
            if self.tty:
                self.out.write("\r\033[K" + line[:160])
                self._shown = True
                self.out.flush()
            elif now - self._last >= self.every_s:
                self.out.write(line + "\n")
                self.out.flush()
                self._last = now

    def clear(self) -> None:
        with self._lock:
            if self._shown:
                self.out.write("\r\033[K")
                self.out.flush()
                self._shown = False


# --- the demo -----------------------------------------------------------------------------------------------------


class Demo:
    def __init__(self, config: DemoConfig | None = None, out: TextIO | None = None):
        self.cfg = config or DemoConfig()
        self.out = out or sys.stdout
        self.ui = _Status(self.out)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.tag = f"demo-{stamp}-{uuid.uuid4().hex[:4]}"
        self.result = DemoResult(self.tag, self.cfg.drift_at)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._t0: float | None = None  # monotonic start of the stream
        self._started_procs: list[tuple[str, ManagedProcess]] = []
        self._stack_started: list[str] = []
        self._threads: list[threading.Thread] = []
        self._truth: dict[tuple[str, int], tuple[int, int, bool]] = {}  # (entity, event ms) → (index, label, drift)
        self._produced = 0
        self._labels = 0
        self._entities: list[str] = []
        self._request_times: list[float] = []
        self._bootstrap_id = f"demo-bootstrap-{uuid.uuid4().hex[:8]}"
        self.kafka: Any = None
        self.redis: Any = None
        self.ports: dict[str, int] = {}
        self.run_dir = (self.cfg.run_dir or Path(".run") / self.tag).resolve()

    # --- timeline -------------------------------------------------------------------------------------------------
    def _now(self) -> float:
        return 0.0 if self._t0 is None else time.monotonic() - self._t0

    def _event(self, what: str) -> None:
        t = self._now()
        with self._lock:
            self.result.timeline.append(TimelineEvent(t, what))
        self.ui.event(f"[{t:7.1f}s] {what}")

    def _say(self, what: str) -> None:
        self.ui.event(what)

    # --- start: stack, topics, services --------------------------------------------------------------------------
    def start(self) -> None:
        from mlops_tools.cli.services_cmd import service_process, stop_services
        from mlops.settings import RedisSettings, TelemetrySettings
        from mlops_tools.stack import Stack
        from mlops.telemetry import setup_tracing
        from mlops.topics import ensure_topics

        cfg = self.cfg
        self._say(f"mlops demo {self.tag}: starting Kafka + Redis (idempotent)...")
        stack = Stack()
        states = stack.up()
        self._stack_started = [k for k in ("kafka", "redis") if states.get(k) == "started"]
        self._stack = stack
        self._say("  " + ", ".join(f"{k}: {v}" for k, v in states.items()))
        self.kafka = stack.kafka_settings().model_copy(update={"topic_prefix": f"{self.tag}."})
        self.redis = RedisSettings(url=stack.redis_settings().url, key_prefix=self.tag)
        ensure_topics(self.kafka)
        self._say(f"  topics created under prefix {self.kafka.topic_prefix!r}; Redis key prefix {self.tag!r}")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        traces = self.run_dir / "traces.jsonl"
        self.result.traces_file = str(traces)

        if cfg.process_dir is None:
            running = [n for n in SERVICES if service_process(n).running()]
            if running:
                self._say(f"  stopping services started by `mlops up` first: {', '.join(running)}")
                stop_services(running)

        prefer = cfg.default_ports
        self.ports = {f"ops-{n}": _port(p, prefer) for n, p in DEFAULT_OPS_PORTS.items()}
        self.ports["inference"] = _port(DEFAULT_INFERENCE_PORT, prefer)
        self.ports["registry"] = _port(DEFAULT_REGISTRY_PORT, prefer)
        common = {
            "MLOPS_KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "MLOPS_KAFKA_TOPIC_PREFIX": self.kafka.topic_prefix,
            "MLOPS_REDIS_URL": self.redis.url,
            "MLOPS_REDIS_KEY_PREFIX": self.redis.key_prefix,
            "MLOPS_TELEMETRY_EXPORTER": "file",
            "MLOPS_TELEMETRY_FILE_PATH": str(traces),
        }
        per = {
            "ingest": {"MLOPS_INGEST_GROUP_ID": f"{self.tag}-ingest"},
            "features": {"MLOPS_FEATURES_APP_ID": f"{self.kafka.topic_prefix}features",
                         "MLOPS_FEATURES_DATA_DIR": str(self.run_dir / "features")},
            "trainer": {"MLOPS_TRAINER_GROUP_ID": f"{self.tag}-trainer",
                        "MLOPS_TRAINER_MAX_ROWS": str(cfg.train_window_rows),
                        "MLOPS_TRAINER_MAX_ITER": str(cfg.train_max_iter),
                        "MLOPS_TRAINER_LABELS_WITHIN_FEATURES": "true"},
            "registry": {"MLOPS_REGISTRY_GROUP_ID": f"{self.tag}-registry", "MLOPS_REGISTRY_GRPC_HOST": "127.0.0.1",
                         "MLOPS_REGISTRY_GRPC_PORT": str(self.ports["registry"])},
            "inference": {"MLOPS_INFERENCE_HOST": "127.0.0.1", "MLOPS_INFERENCE_PORT": str(self.ports["inference"])},
            "monitor": {"MLOPS_MONITOR_GROUP_ID": f"{self.tag}-monitor",
                        "MLOPS_MONITOR_WINDOW_SIZE": str(cfg.monitor_window),
                        "MLOPS_MONITOR_MIN_RECORDS": str(cfg.monitor_min_records)},
        }
        self._say("starting the six services:")
        for name in SERVICES:
            env = common | per[name] | {"MLOPS_TELEMETRY_METRICS_PORT": str(self.ports[f"ops-{name}"])} \
                | cfg.extra_env
            proc, state = self._start_service(name, env)
            self._started_procs.append((name, proc))
            extra = {"inference": f", gRPC {self.ports['inference']}", "registry": f", gRPC {self.ports['registry']}"}
            self._say(f"  {name:10} {state} (ops {self.ports[f'ops-{name}']}{extra.get(name, '')})")
        # the demo's own spans (one producer span per raw event) go to the same file
        setup_tracing("mlops-demo", TelemetrySettings(exporter="file", file_path=traces))
        self._wait_ready()

    def _start_service(self, name: str, env: dict[str, str]) -> tuple[ManagedProcess, str]:
        if self.cfg.process_dir is None:
            from mlops_tools.cli.services_cmd import service_process, start_services

            return service_process(name), start_services([name], env=env)[name]
        proc = ManagedProcess(f"svc-{name}", self.cfg.process_dir.resolve())
        pid = proc.start([sys.executable, "-m", f"services.{name}"], env=env)
        return proc, f"started (pid {pid}, log {proc.log_file})"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.cfg.ready_timeout_s
        waiting = list(SERVICES)
        t0 = time.monotonic()
        while waiting:
            for name in list(waiting):
                proc = dict(self._started_procs)[name]
                if proc.exited_early():
                    raise RuntimeError(f"{name} exited at start; last log lines:\n{proc.log_tail()}")
                # inference is ready only with a model: until v1, it is enough that it answers
                path = "healthz" if name == "inference" else "readyz"
                if _http_ok(f"http://127.0.0.1:{self.ports[f'ops-{name}']}/{path}"):
                    waiting.remove(name)
                    self._say(f"  {name:10} ready after {time.monotonic() - t0:.1f}s")
            if not waiting:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"services not ready after {self.cfg.ready_timeout_s:.0f}s: {waiting}")
            self.ui.status(f"waiting for {', '.join(waiting)} ({time.monotonic() - t0:.0f}s)")
            time.sleep(0.5)
        self.ui.clear()

    # --- run ------------------------------------------------------------------------------------------------------
    def run(self) -> DemoResult:
        """Start (if not yet), stream, drive and watch; returns the result (partial after Ctrl-C or a failure)."""
        started = time.monotonic()
        try:
            if self.kafka is None:
                self.start()
            self._loop()
        except KeyboardInterrupt:
            self.result.interrupted = True
            self.ui.event("interrupted: stopping (partial summary follows)")
        except Exception as exc:
            self.result.error = f"{type(exc).__name__}: {exc}"
            self.ui.event(f"demo failed: {self.result.error}")
        finally:
            self._stop.set()
            for t in self._threads:
                t.join(10)
            self.ui.clear()
            self.result.elapsed_s = time.monotonic() - started
            self.result.records_produced, self.result.labels_sent = self._produced, self._labels
            self.result.requests = len(self._request_times) + self.result.failed_requests
        return self.result

    def _loop(self) -> None:
        cfg = self.cfg
        self._say(f"streaming {cfg.records} SEA records at {cfg.rate:g}/s"
                  + (f", concept drift (SEA variant 2 → 3, x2 shifted) at record {cfg.drift_at}"
                     f" (~{cfg.drift_at / cfg.rate:.0f}s)" if cfg.drift_at is not None else ", no drift (control)")
                  + f"; labels {cfg.label_delay_ms} ms late")
        self._t0 = time.monotonic()
        watcher = threading.Thread(target=self._watch, name="demo-watch", daemon=True)
        producer = threading.Thread(target=self._produce, name="demo-produce", daemon=True)
        self._threads += [watcher, producer]
        watcher.start()
        producer.start()
        self._bootstrap_v1(producer)
        predictor = threading.Thread(target=self._predict, name="demo-predict", daemon=True)
        self._threads.append(predictor)
        predictor.start()
        while producer.is_alive():
            self._show_status()
            producer.join(0.5)
        if cfg.drift_at is not None:  # the stream is over; give a pending v2 a little time
            deadline = time.monotonic() + cfg.v2_wait_s
            while self.result.loop_time_s is None and time.monotonic() < deadline and not self._stop.is_set():
                if not self._pending_after_drift():
                    break
                self._show_status()
                time.sleep(0.5)
        time.sleep(min(3.0, cfg.label_delay_ms / 1000 + 1))  # the last predictions reach the watcher
        self._stop.set()

    def _rejections(self) -> int:
        return sum(1 for _, d, _ in self.result.gate if d == "rejected")

    @staticmethod
    def _model_ready(stub: Any) -> bool:
        import grpc

        from mlops.contracts.oip import pb2

        try:
            return bool(stub.ModelReady(pb2.ModelReadyRequest(name=MODEL), timeout=2).ready)
        except grpc.RpcError:
            return False

    def _pending_after_drift(self) -> bool:
        """A retrain was requested after the drift and its outcome is still due (or v2 not served yet)."""
        r = self.result
        if not r.detections:
            return False
        if r.v2 is not None:
            return r.v2 not in r.serving
        return not any(d == "rejected" for _, d, _ in r.gate) and not r.training_failures

    def _show_status(self) -> None:
        r = self.result
        now = self._now()
        recent = [t for t in self._request_times[-400:] if t > now - 2.0]
        serving = max(r.serving, key=lambda v: r.serving[v]) if r.serving else "-"
        self.ui.status(
            f"[{now:7.1f}s] produced {self._produced}/{self.cfg.records} · labels {self._labels} · "
            f"requests {len(self._request_times)} ({len(recent) / 2:.0f}/s) · serving v{serving} · "
            f"failed {r.failed_requests} · retrains {r.retrains}")

    def _bootstrap_v1(self, producer: threading.Thread) -> None:
        """Ask for v1 once enough labels exist; wait until it is promoted and served."""
        from mlops.bus import Producer
        from mlops.contracts import models_pb2
        from mlops.topics import RETRAIN_REQUESTED, topic_name

        cfg = self.cfg
        while self._labels < cfg.bootstrap_rows:
            if not producer.is_alive() or self._stop.is_set():
                raise RuntimeError("the stream ended before enough labels for v1")
            self._show_status()
            time.sleep(0.2)
        import grpc

        from mlops.contracts.oip import pb2, pb2_grpc

        p = Producer(self.kafka, client_id="mlops-demo")
        deadline = time.monotonic() + cfg.v1_timeout_s
        attempt = 0
        with grpc.insecure_channel(f"127.0.0.1:{self.ports['inference']}") as ch:
            stub = pb2_grpc.GRPCInferenceServiceStub(ch)
            while True:
                attempt += 1
                failures, rejections = len(self.result.training_failures), self._rejections()
                req = models_pb2.RetrainRequest(
                    model_name=MODEL, request_id=f"{self._bootstrap_id}-{attempt}",
                    reason="demo: bootstrap model v1", detector="manual", requested_at_ms=int(time.time() * 1000),
                    requested_by="demo")
                p.send(topic_name(RETRAIN_REQUESTED, self.kafka), req, key=MODEL)
                p.flush()
                self._event(f"bootstrap: {self._labels} labels sent, v1 requested ({req.request_id})")
                while True:
                    try:
                        if stub.ModelReady(pb2.ModelReadyRequest(name=MODEL), timeout=2).ready:
                            break
                    except grpc.RpcError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"v1 not served within {cfg.v1_timeout_s:.0f}s")
                    if self._stop.is_set():
                        raise RuntimeError(self.result.error or "stopped")
                    if len(self.result.training_failures) > failures or self._rejections() > rejections:
                        break  # not enough joinable rows yet (a lagging feature pipeline): ask again shortly
                    self._show_status()
                    time.sleep(0.2)
                if self._model_ready(stub):
                    break
                time.sleep(3.0)
        self._event(f"v1 serving on gRPC 127.0.0.1:{self.ports['inference']} (ModelReady); "
                    f"driving {cfg.predict_rate:g} req/s by entity id")

    # --- threads --------------------------------------------------------------------------------------------------
    def _produce(self) -> None:
        from opentelemetry.trace import SpanKind

        from mlops_tools import datagen
        from mlops.bus import Producer
        from mlops.contracts import events_pb2
        from mlops.telemetry import messaging_attributes, tracer
        from mlops.topics import LABELS, RAW_EVENTS, topic_name

        cfg = self.cfg
        tr = tracer("mlops.demo")
        raw_topic, label_topic = topic_name(RAW_EVENTS, self.kafka), topic_name(LABELS, self.kafka)
        producer = Producer(self.kafka, client_id="mlops-demo-produce")
        stream = datagen.StreamConfig(
            count=cfg.records, drift_at=cfg.drift_at, entities=cfg.entities, seed=cfg.seed,
            start_ms=int(time.time() * 1000), interval_ms=cfg.event_interval_ms)
        pending: list[tuple[float, int, Any, str]] = []
        started = time.monotonic()

        def send_due(now: float) -> None:
            while pending and pending[0][0] <= now:
                _, _, label, key = heapq.heappop(pending)
                producer.send(label_topic, label, key=key)
                self._labels += 1

        try:
            for rec in datagen.generate(stream):
                if self._stop.is_set():
                    return
                wait = started + rec.index / cfg.rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                self._truth[(rec.entity_id, rec.event_time_ms)] = (rec.index, rec.label, rec.drifted)
                with tr.start_as_current_span(
                    f"{raw_topic} publish", kind=SpanKind.PRODUCER,
                    attributes=messaging_attributes("publish", raw_topic, key=rec.entity_id),
                ):
                    producer.send(raw_topic, rec.raw_json(), key=rec.entity_id,
                                  headers={"content-type": "application/json"})
                if rec.index == cfg.drift_at:
                    self.result.drift_t_s = self._now()
                    self._event(f"DRIFT injected at record {rec.index} (SEA variant 2 → 3, x2 → [5, 10])")
                if rec.entity_id not in self._entities and len(self._entities) < cfg.entities:
                    self._entities.append(rec.entity_id)
                self._produced = rec.index + 1
                label = events_pb2.Label(entity_id=rec.entity_id, event_time_ms=rec.event_time_ms,
                                         label=float(rec.label), event_id=rec.event_id)
                heapq.heappush(pending, (time.monotonic() + cfg.label_delay_ms / 1000, rec.index, label,
                                         rec.entity_id))
                send_due(time.monotonic())
            while pending and not self._stop.is_set():
                time.sleep(max(0.0, min(0.2, pending[0][0] - time.monotonic())))
                send_due(time.monotonic())
            producer.flush()
            self._event(f"stream done: {self._produced} records, {self._labels} labels")
        except Exception as exc:  # a producer failure ends the run with its reason
            self.result.error = f"producer: {type(exc).__name__}: {exc}"
            self._stop.set()

    def _predict(self) -> None:
        import numpy as np
        import tritonclient.grpc as grpcclient
        from opentelemetry.propagate import inject

        from mlops.telemetry import tracer

        cfg = self.cfg
        rng = random.Random(cfg.seed + 1)
        tr = tracer("mlops.demo")
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{self.ports['inference']}")
        started = time.monotonic()
        n = 0
        try:
            while not self._stop.is_set():
                wait = started + n / cfg.predict_rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                elif wait < -1.0:  # fell behind (a busy machine): do not burst to catch up
                    started, n = time.monotonic(), 0
                n += 1
                entity = rng.choice(self._entities)
                inp = grpcclient.InferInput("entity_id", [1], "BYTES")
                inp.set_data_from_numpy(np.array([entity.encode()], dtype=np.object_))
                with tr.start_as_current_span("demo ModelInfer"):
                    headers: dict[str, str] = {}
                    inject(headers)
                    try:
                        resp = client.infer(MODEL, [inp], headers=headers, client_timeout=10)
                    except Exception as exc:
                        self.result.failed_requests += 1
                        self.result.last_error = str(exc)[:300]
                        continue
                version = resp.get_response().model_version
                t = self._now()
                self._request_times.append(t)
                if version not in self.result.serving:
                    self.result.serving[version] = t
                    if len(self.result.serving) > 1:
                        self._event(f"v{version} SERVING: first response from v{version}")
        finally:
            client.close()

    def _watch(self) -> None:
        """Read every outcome topic of this run from the start and turn records into timeline events/figures."""
        from confluent_kafka import Consumer, TopicPartition

        from mlops import contracts
        from mlops.contracts import models_pb2
        from mlops.topics import (
            EVENTS_DLQ,
            MODEL_CANDIDATES,
            MODEL_PROMOTED,
            PREDICTIONS,
            REGISTRY_LOG,
            RETRAIN_REQUESTED,
            TRAINING_FAILURES,
            topic_name,
        )

        specs = {RETRAIN_REQUESTED.name: models_pb2.RetrainRequest,
                 MODEL_CANDIDATES.name: models_pb2.ModelCandidate,
                 TRAINING_FAILURES.name: models_pb2.TrainingFailed, REGISTRY_LOG.name: models_pb2.RegistryEvent,
                 MODEL_PROMOTED.name: models_pb2.ModelPromoted, PREDICTIONS.name: models_pb2.PredictionRecord,
                 EVENTS_DLQ.name: None}
        by_topic = {topic_name(s, self.kafka): s.name for s in (RETRAIN_REQUESTED, MODEL_CANDIDATES,
                                                                TRAINING_FAILURES, REGISTRY_LOG, MODEL_PROMOTED,
                                                                PREDICTIONS, EVENTS_DLQ)}
        consumer = Consumer(self.kafka.client_config() | {
            "group.id": f"{self.tag}-watch", "enable.auto.commit": False,
            "fetch.max.bytes": self.kafka.max_message_bytes,
            "max.partition.fetch.bytes": self.kafka.max_message_bytes})
        assignment = []
        for topic in by_topic:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            assignment += [TopicPartition(topic, p, 0) for p in meta.partitions]
        consumer.assign(assignment)
        try:
            while not self._stop.is_set():
                for msg in consumer.consume(500, 0.2):
                    if msg.error() or msg.value() is None:
                        continue
                    kind = by_topic.get(msg.topic())
                    if kind == EVENTS_DLQ.name:
                        self.result.dlq += 1
                        continue
                    try:
                        value = contracts.decode(specs[kind], msg.value())  # type: ignore[arg-type]
                    except contracts.ContractError:
                        continue
                    self._on_record(kind, value)
        finally:
            consumer.close()

    def _on_record(self, kind: str | None, m: Any) -> None:
        r = self.result
        if kind == "predictions":
            truth = self._truth.get((m.entity_id, m.features_as_of_ms))
            if truth is not None:
                acc = r.accuracy.setdefault((m.model_version, truth[2]), [0, 0])
                acc[0] += int(round(m.predicted_label) == truth[1])
                acc[1] += 1
            if not r.example_trace_id and m.trace_id:
                r.example_trace_id = m.trace_id
        elif kind == "retrain.requested":
            if m.requested_by != "monitor":
                return
            r.monitor_requests += 1
            if r.drift_t_s is None:
                r.false_alarms += 1
                self._event(f"FALSE ALARM: monitor requested a retrain before any drift: {m.reason}")
                return
            since = max(0, self._produced - (self.cfg.drift_at or 0))
            r.detections.append((self._now(), since, m.reason))
            self._event(f"DRIFT DETECTED by the monitor {self._now() - r.drift_t_s:.1f}s / {since} records after "
                        f"the drift: {m.reason}")
        elif kind == "model.candidates":
            r.candidates += 1
            ids = set(m.lineage.coalesced_request_ids) | {m.lineage.retrain_request_id}
            if not any(i.startswith(self._bootstrap_id) for i in ids):
                r.retrains += 1
            self._event(f"trained: candidate {m.artifact_sha256[:12]} on {m.lineage.row_count} rows "
                        f"(holdout auc {m.metrics.get('auc', float('nan')):.4f}, "
                        f"accuracy {m.metrics.get('accuracy', float('nan')):.4f})")
        elif kind == "training.failures":
            r.training_failures.append(m.reason)
            self._event(f"TRAINING FAILED: {m.reason}")
        elif kind == "registry.log":
            if m.record_kind == "state" and m.gate_decision and m.status in ("champion", "rejected") \
                    and m.version not in {v for v, _, _ in r.gate}:
                r.gate.append((m.version, m.gate_decision, m.gate_reason))
                self._event(f"gate: v{m.version} {m.gate_decision.upper()}: {m.gate_reason}")
        elif kind == "model.promoted":
            r.promoted.append((self._now(), m.version))
            self._event(f"v{m.version} promoted (previous v{m.previous_version or '-'})")

    # --- stop -----------------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every service this demo started (and the stack components it started)."""
        self._stop.set()
        for t in self._threads:
            t.join(5)
        for _name, proc in reversed(self._started_procs):
            proc.stop(timeout=15)
        self._started_procs.clear()
        for name in self._stack_started:
            getattr(self._stack, name).stop()
        self._stack_started = []



def group_accuracy(result: DemoResult) -> dict[str, dict[bool, float | None]]:
    """{version: {drifted: accuracy}} (a convenience for tests and reports)."""
    out: dict[str, dict[bool, float | None]] = defaultdict(dict)
    for (version, drifted), (hits, n) in result.accuracy.items():
        out[version][drifted] = hits / n if n else None
    return dict(out)
