"""The closed-loop demo as a plain API: drift → detection → retrain → gate → hot swap, on the real stack.

`Demo(config).run()` does what `mlops demo` shows, at any scale (the end-to-end test runs it smaller):

1. `Stack().up()` (Kafka + Redis, idempotent); a fresh topic prefix and Redis key prefix for this run (its topics
   created first, then each chosen example's definitions applied as `mlops apply` would), so runs never see each
   other's records; the six services started as background processes with that prefix, their own consumer groups,
   file-exported traces and default (or free) ports; each awaited (/readyz).
2. Each example's synthetic stream (mlops_tools.generators) with a KNOWN drift point is produced to its declared
   source topic at `rate`/s, its labels to the model's label topic `label_delay_ms` later. Event time advances
   faster than the wall clock (`Example.event_interval_ms` per record: 100 ms for SEA, 6 s for delivery), so the
   feature windows fill in seconds and the monitor's reference windows span several of them.
3. Each model's v1 is bootstrapped by a RetrainRequest once `bootstrap_rows` of its labels exist; once it is
   promoted and served (gRPC ModelReady), one thread sends OIP ModelInfer requests by entity id at
   `predict_rate`/s, taking turns among the models served — one inference server serves them all.
4. A watcher reads the run's outcome topics and builds the timeline per model: drift detected, retrain, gate
   decision, v2 promoted, v2 serving (demo.watch) — with the shadow rollout, first v2 as a challenger, the live
   verdict, the promotion (or retirement: `worse_challenger`) and the guard, each switch with the requests so far.

The result is a `DemoResult` (figures + timeline) whose `table()` is the demo's closing summary. Ctrl-C (or any
exception) leaves `run()` with a partial result; `close()` stops what `start()` started.
"""

from __future__ import annotations

import sys
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

from mlops_tools.cli.services_cmd import (
    GRPC_PORTS,
    HTTP_PORTS,
    OPS_PORTS,
    SERVICES,
    service_process,
    start_service,
    stop_services,
)
from mlops_tools.demo.config import DemoConfig
from mlops_tools.demo.loop import Traffic
from mlops_tools.demo.ops import DemoOps
from mlops_tools.demo.summary import DemoResult
from mlops_tools.demo.timeline import Timeline
from mlops_tools.demo.watch import watch
from mlops_tools.examples import EXAMPLES_DIR, apply_definitions
from mlops_tools.procs import ManagedProcess, free_port, port_open

__all__ = ["Demo"]


def _port(default: int, prefer_default: bool) -> int:
    return default if prefer_default and not port_open("127.0.0.1", default) else free_port("0.0.0.0")


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (loopback)
            return bool(resp.status == 200)
    except Exception:
        return False


class Demo:
    def __init__(self, config: DemoConfig | None = None, out: TextIO | None = None):
        self.cfg = config or DemoConfig()
        self.tag = f"demo-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
        self.result = DemoResult(self.tag)
        self.timeline = Timeline(self.result, out or sys.stdout)
        self.traffic: Traffic | None = None  # set by start()
        self.ports: dict[str, int] = {}
        self.run_dir = (self.cfg.run_dir or Path(".run") / self.tag).resolve()
        self._stop = threading.Event()
        self._started_procs: list[tuple[str, ManagedProcess]] = []
        self._stack_started: list[str] = []
        self._threads: list[threading.Thread] = []
        self.ops: DemoOps | None = None  # set by start()

    # --- start: stack, topics, services --------------------------------------------------------------------------
    def start(self) -> None:
        # tritonclient is imported here, before any thread starts: protobuf modules imported by two threads at once
        # can register half a file in the descriptor pool ("depends on file 'model_config.proto' ... not loaded")
        import tritonclient.grpc  # noqa: F401
        from mlops.bus import KafkaBus
        from mlops.settings import RedisSettings
        from mlops.telemetry import setup_tracing
        from mlops.topics import ensure_topics

        from mlops_tools.stack import Stack

        cfg, say = self.cfg, self.timeline.say
        say(f"mlops demo {self.tag}: starting Kafka + Redis (idempotent)...")
        stack = Stack()
        states = stack.up()
        self._stack_started = [k for k in ("kafka", "redis") if states.get(k) == "started"]
        self._stack = stack
        say("  " + ", ".join(f"{k}: {v}" for k, v in states.items()))
        kafka = stack.kafka_settings().model_copy(update={"topic_prefix": f"{self.tag}."})
        redis = RedisSettings(url=stack.redis_settings().url, key_prefix=self.tag)
        ensure_topics(kafka)
        say(f"  topics created under prefix {kafka.topic_prefix!r}; Redis key prefix {self.tag!r}")
        for name in cfg.examples:  # what `mlops apply examples/NAME/definitions.yaml` does
            path = cfg.definitions_file(name)
            revision = apply_definitions(kafka, path, applied_by="mlops-demo")
            if revision is not None:
                models = ", ".join(f"{m.name} (rollout {m.rollout.mode.value})" for m in revision.definitions.models)
                say(f"  applied {path.relative_to(EXAMPLES_DIR.parent)}: revision {revision.number} "
                    f"(models: {models})")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        traces = self.run_dir / "traces.jsonl"
        self.ops = DemoOps(stack, self.tag, say, enabled=cfg.ops)
        telemetry = self.ops.telemetry(traces)
        self.result.traces_file = self.ops.traces_location(telemetry)

        if cfg.process_dir is None:
            running = [n for n in SERVICES if service_process(n).running()]
            if running:
                say(f"  stopping services started by `mlops up` first: {', '.join(running)}")
                stop_services(running)

        self.ports = {f"ops-{n}": _port(p, cfg.default_ports) for n, p in OPS_PORTS.items()}
        self.ports |= {n: _port(p, cfg.default_ports) for n, p in GRPC_PORTS.items()}
        self.ports |= {f"http-{n}": _port(p, cfg.default_ports) for n, p in HTTP_PORTS.items()}
        self.traffic = Traffic(cfg, KafkaBus(kafka), self.ports["inference"], self.result, self.timeline, self._stop)
        common = {
            "MLOPS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "MLOPS_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
            "MLOPS_REDIS_URL": redis.url,
            "MLOPS_REDIS_KEY_PREFIX": redis.key_prefix,
            "MLOPS_TELEMETRY_EXPORTER": telemetry.exporter,
            "MLOPS_TELEMETRY_FILE_PATH": str(traces),
            "MLOPS_TELEMETRY_OTLP_ENDPOINT": telemetry.otlp_endpoint or "",
        }
        per = {
            "ingest": {"MLOPS_INGEST_GROUP_ID": f"{self.tag}-ingest"},
            "features": {"MLOPS_FEATURES_APP_ID": f"{kafka.topic_prefix}features",
                         "MLOPS_FEATURES_DATA_DIR": str(self.run_dir / "features")},
            "trainer": {"MLOPS_TRAINER_GROUP_ID": f"{self.tag}-trainer",
                        "MLOPS_TRAINER_MAX_ROWS": str(cfg.train_window_rows),
                        "MLOPS_TRAINER_MAX_ITER": str(cfg.train_max_iter),
                        "MLOPS_TRAINER_LABELS_WITHIN_FEATURES": "true"},
            "registry": {"MLOPS_REGISTRY_GROUP_ID": f"{self.tag}-registry", "MLOPS_REGISTRY_GRPC_HOST": "127.0.0.1",
                         "MLOPS_REGISTRY_GRPC_PORT": str(self.ports["registry"])},
            "inference": {"MLOPS_INFERENCE_HOST": "127.0.0.1", "MLOPS_INFERENCE_PORT": str(self.ports["inference"]),
                          "MLOPS_INFERENCE_REST_PORT": str(self.ports["http-inference"])},
            "monitor": {"MLOPS_MONITOR_GROUP_ID": f"{self.tag}-monitor",
                        "MLOPS_MONITOR_WINDOW_SIZE": str(cfg.monitor_window),
                        "MLOPS_MONITOR_MIN_RECORDS": str(cfg.monitor_min_records)},
            "console": {"MLOPS_CONSOLE_HOST": "127.0.0.1", "MLOPS_CONSOLE_PORT": str(self.ports["http-console"]),
                        "MLOPS_CONSOLE_REGISTRY_ADDRESS": f"127.0.0.1:{self.ports['registry']}",
                        **self.ops.console_env()},
        }
        say("starting the services:")
        for name in SERVICES:
            env = common | per[name] | {"MLOPS_TELEMETRY_METRICS_PORT": str(self.ports[f"ops-{name}"])} \
                | cfg.extra_env
            proc, state = start_service(name, env, cfg.process_dir)
            self._started_procs.append((name, proc))
            grpc = f", gRPC {self.ports[name]}" if name in GRPC_PORTS else ""
            http = f", HTTP {self.ports[f'http-{name}']}" if name in HTTP_PORTS else ""
            say(f"  {name:10} {state} (ops {self.ports[f'ops-{name}']}{grpc}{http})")
        self.ops.start_prometheus({n: self.ports[f"ops-{n}"] for n in SERVICES})
        # the demo's own spans (one producer span per raw event) go to the same place
        setup_tracing("mlops-demo", telemetry)
        self._wait_ready()
        say(f"console: http://127.0.0.1:{self.ports['http-console']}/  (models, drift, health, traces, dead letters)")

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
                    self.timeline.say(f"  {name:10} ready after {time.monotonic() - t0:.1f}s")
            if not waiting:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"services not ready after {self.cfg.ready_timeout_s:.0f}s: {waiting}")
            self.timeline.status(f"waiting for {', '.join(waiting)} ({time.monotonic() - t0:.0f}s)")
            time.sleep(0.5)
        self.timeline.clear()

    # --- run ------------------------------------------------------------------------------------------------------
    def run(self) -> DemoResult:
        """Start (if not yet), stream, drive and watch; returns the result (partial after Ctrl-C or a failure)."""
        started = time.monotonic()
        try:
            if self.traffic is None:
                self.start()
            self._loop()
        except KeyboardInterrupt:
            self.result.interrupted = True
            self.timeline.say("interrupted: stopping (partial summary follows)")
        except Exception as exc:
            self.result.error = f"{type(exc).__name__}: {exc}"
            self.timeline.say(f"demo failed: {self.result.error}")
        finally:
            self._stop.set()
            for t in self._threads:
                t.join(10)
            self.timeline.clear()
            self.result.elapsed_s = time.monotonic() - started
            for stream in self.traffic.streams.values() if self.traffic is not None else ():
                stream.loop.records_produced, stream.loop.labels_sent = stream.counts["events"], stream.counts["labels"]
        return self.result

    def _loop(self) -> None:
        cfg, traffic = self.cfg, self.traffic
        assert traffic is not None
        drift = (f"drift at record {cfg.drift_at} (~{cfg.drift_at / cfg.rate:.0f}s)" if cfg.drift_at is not None
                 else "no drift (control)")
        for s in traffic.streams.values():
            what = s.example.drift if cfg.drift_at is not None else ""
            if cfg.worse_challenger:
                drift, what = f"a transient episode from record {cfg.drift_at}", "x0 + x1 > 7 → > 9.5, then back"
            drift += " (or later, once the monitor is armed)" if cfg.wait_for_monitor and cfg.drift_at else ""
            self.timeline.say(f"streaming {cfg.records} {s.example.name} records at {cfg.rate:g}/s to "
                              f"{s.example.source.topic!r} for model {s.model!r} ({s.example.model.task.value}); "
                              f"{drift}{': ' + what if what else ''}")
        self.timeline.say(f"labels {cfg.label_delay_ms} ms late on each model's label topic")
        self.timeline.start_clock()
        watcher = threading.Thread(target=watch, args=(traffic,), name="demo-watch", daemon=True)
        streams = {m: threading.Thread(target=traffic.stream, args=(m,), name=f"demo-produce-{m}", daemon=True)
                   for m in traffic.streams}
        # one thread drives every model's predictions, each model once it serves (one inference server for all)
        predictor = threading.Thread(target=traffic.predict, name="demo-predict", daemon=True)
        self._threads += [watcher, *streams.values(), predictor]
        watcher.start()
        for t in streams.values():
            t.start()
        predictor.start()
        failed: list[Exception] = []

        def bootstrap(model: str) -> None:
            try:
                traffic.bootstrap_v1(model, streams[model])
            except Exception as exc:  # raised below, in the run's own thread
                failed.append(exc)

        # each model's v1 on its own: a slow training of one must not hold the other back
        boots = [threading.Thread(target=bootstrap, args=(m,), name=f"demo-v1-{m}", daemon=True) for m in streams]
        self._threads += boots
        for t in boots:
            t.start()
        while any(t.is_alive() for t in [*boots, *streams.values()]):
            if failed:
                raise failed[0]
            if cfg.end_when_done and not traffic.done.is_set() and \
                    all(lp.done(cfg.done_after_requests, cfg.done_guard_rows, cfg.watched_requests)
                        for lp in self.result.loops.values()):
                traffic.done.set()
                self.timeline.event("the loop's story is told (end_when_done): ending the streams")
            traffic.show_status()
            time.sleep(0.5)
        if failed:
            raise failed[0]
        if cfg.drift_at is not None:  # the streams are over; give a pending v2 a little time
            # a live judgement needs labels, and the last ones come label_delay after the last record
            deadline, labels_end = time.monotonic() + cfg.v2_wait_s, time.monotonic() + cfg.label_delay_ms / 1000 + 5
            while time.monotonic() < deadline and not self._stop.is_set():
                if not any(lp.pending or (lp.live.judging and time.monotonic() < labels_end)
                           for lp in self.result.loops.values()):
                    break
                traffic.show_status()
                time.sleep(0.5)
        time.sleep(min(3.0, cfg.label_delay_ms / 1000 + 1))  # the last predictions reach the watcher
        self._stop.set()

    # --- stop -----------------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every service this demo started (and the stack components it started)."""
        self._stop.set()
        for t in self._threads:
            t.join(5)
        if self.ops is not None:
            self.ops.drop_targets()
        # all at once: each takes its own seconds to drain and leave its consumer group, and none waits for another
        with ThreadPoolExecutor(max_workers=max(1, len(self._started_procs))) as pool:
            list(pool.map(lambda named: named[1].stop(timeout=15), reversed(self._started_procs)))
        self._started_procs.clear()
        for name in self._stack_started:
            getattr(self._stack, name).stop()
        self._stack_started = []
        if self.ops is not None:
            self.ops.stop()
