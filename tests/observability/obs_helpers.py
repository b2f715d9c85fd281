"""Helpers of the observability tests: start services as real processes with the file span exporter, scrape their
ops endpoint, read their span files."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from mlops.settings import KafkaSettings, RedisSettings
from mlops_tools.procs import free_port
from mlops_tools.traceview import Span, load_spans

ROOT = Path(__file__).resolve().parents[2]


def service_env(name: str, kafka: KafkaSettings, redis: RedisSettings, tmp: Path, metrics_port: int) -> dict[str, str]:
    group = f"obs-{name}-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env |= {
        "MLOPS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MLOPS_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "MLOPS_REDIS_URL": redis.url,
        "MLOPS_REDIS_KEY_PREFIX": redis.key_prefix,
        "MLOPS_TELEMETRY_EXPORTER": "file",
        "MLOPS_TELEMETRY_FILE_PATH": str(tmp / f"spans-{name}.jsonl"),  # one file per process: no interleaving
        "MLOPS_TELEMETRY_METRICS_PORT": str(metrics_port),
        "MLOPS_TELEMETRY_LOG_FORMAT": "text",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "libs"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }
    env |= {
        "ingest": {"MLOPS_INGEST_GROUP_ID": group, "MLOPS_INGEST_POLL_TIMEOUT_S": "0.2"},
        "features": {"MLOPS_FEATURES_APP_ID": f"{kafka.topic_prefix}features",
                     "MLOPS_FEATURES_DATA_DIR": str(tmp / "faust")},
        "monitor": {"MLOPS_MONITOR_GROUP_ID": group},
        "trainer": {"MLOPS_TRAINER_GROUP_ID": group},
    }.get(name, {})
    return env


class ServiceProcess:
    """`python -m services.<name>` with its own log and ops port; `stop()` is SIGTERM, then SIGKILL."""

    def __init__(self, name: str, kafka: KafkaSettings, redis: RedisSettings, tmp: Path):
        self.name = name
        self.ops_port = free_port()
        self.span_file = tmp / f"spans-{name}.jsonl"
        self.log_file = tmp / f"{name}.log"
        env = service_env(name, kafka, redis, tmp, self.ops_port) | extra_env(name, free_port())
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ops_port}{path}", timeout=timeout) as resp:
                return resp.status, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, ""
        except OSError:
            return 0, ""

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.get("/readyz", 1.0)[0] == 200:
                return
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not ready within {timeout} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@contextlib.contextmanager
def running(names: Iterable[str], kafka: KafkaSettings, redis: RedisSettings, tmp: Path,
            ready_s: float | None = None) -> Iterator[dict[str, ServiceProcess]]:
    """The named services as real processes (each awaited for `ready_s` when given), stopped on the way out
    whatever happened."""
    procs: dict[str, ServiceProcess] = {}
    try:
        for name in names:
            procs[name] = ServiceProcess(name, kafka, redis, tmp)
        if ready_s is not None:
            for p in procs.values():
                p.wait_ready(ready_s)
        yield procs
    finally:
        for p in procs.values():
            p.stop()


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.2) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def spans_in(files: list[Path]) -> list[Span]:
    return load_spans(files)


def metric_names(exposition: str) -> set[str]:
    """The names an operator queries, from the # TYPE lines of a Prometheus text exposition (a counter family
    `x` is queried as `x_total`)."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()[:4]
            names.add(name if kind != "counter" or name.endswith("_total") else f"{name}_total")
    return names


def extra_env(name: str, grpc_port: int) -> dict[str, str]:
    """Settings a service needs beside the common ones when started by a test."""
    return {
        "registry": {"MLOPS_REGISTRY_GROUP_ID": f"obs-registry-{uuid.uuid4().hex[:8]}",
                     "MLOPS_REGISTRY_GRPC_HOST": "127.0.0.1", "MLOPS_REGISTRY_GRPC_PORT": str(grpc_port)},
        "inference": {"MLOPS_INFERENCE_HOST": "127.0.0.1", "MLOPS_INFERENCE_PORT": str(grpc_port),
                      "MLOPS_INFERENCE_REST_PORT": "0", "MLOPS_INFERENCE_USE_CUDA": "false"},
    }.get(name, {})
