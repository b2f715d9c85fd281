"""Several server processes on one gRPC port (`MLOPS_INFERENCE_WORKERS`): one Python process runs its event loop
on one core, so a host with spare cores serves more with more processes.

The process you start is worker 0: it binds the port (SO_REUSEPORT on), then starts workers 1..N-1 as copies of
itself (`python -m services.inference` with the same environment plus `MLOPS_INFERENCE_WORKER_INDEX` and the
bound port), which bind the same port. The kernel spreads incoming *connections* over the processes, so the gain
needs clients with several connections (one HTTP/2 connection always lands on one worker). Each worker loads its
own model copy, follows promotions with its own consumer, and serves its ops endpoint on the metrics port + index
(0 stays 0: ephemeral). A worker stops when worker 0 is gone (it watches its parent pid); when a worker exits on
its own, worker 0 stops the group and exits non-zero, so the supervisor (systemd, Kubernetes) restarts it whole.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

log = logging.getLogger("mlops.inference")


def parent_gone(initial_ppid: int) -> bool:
    """True once the process that started this worker has exited (the worker was re-parented)."""
    return os.getppid() != initial_ppid


def worker_env(index: int, port: int, metrics_port: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of worker `index` (> 0): the same settings, the port worker 0 bound, its own ops port."""
    env = dict(os.environ if base is None else base)
    env |= {"MLOPS_INFERENCE_WORKER_INDEX": str(index), "MLOPS_INFERENCE_PORT": str(port),
            "MLOPS_TELEMETRY_METRICS_PORT": str(metrics_port + index if metrics_port else 0)}
    return env


class WorkerGroup:
    """Workers 1..count-1, started and stopped by worker 0."""

    def __init__(self, count: int, port: int, metrics_port: int):
        self.count, self.port, self.metrics_port = count, port, metrics_port
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        for index in range(1, self.count):
            proc = subprocess.Popen([sys.executable, "-m", "services.inference"],
                                    env=worker_env(index, self.port, self.metrics_port))
            self.procs.append(proc)
        log.info("inference workers started", extra={"fields": {
            "workers": self.count, "port": self.port, "pids": [p.pid for p in self.procs]}})

    def exited(self) -> list[tuple[int, int]]:
        """(pid, exit code) of every worker that is no longer running."""
        return [(p.pid, p.returncode) for p in self.procs if p.poll() is not None]

    def stop(self, timeout: float = 15.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("worker did not stop; killing it", extra={"fields": {"pid": p.pid}})
                p.kill()
                p.wait(5)
