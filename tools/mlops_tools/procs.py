"""Background processes the platform starts itself (broker, Redis, services): pid files, logs, start, stop.

`stop` only ever signals a pid recorded in our own run folder whose start time still matches the one recorded,
so `down` never kills something it did not start (even when the pid was reused).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ManagedProcess", "free_port", "port_open", "run_json_child", "stop_child"]


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on `host` right now, never one handed out before in this process, for a server that binds it a
    little later (tests, benchmarks, the demo's services). It lies below the ephemeral range (32768+), where the
    outgoing connections of a busy machine (Kafka clients) cannot grab it between this check and the bind."""
    rng = random.Random()
    for _ in range(1000):
        port = rng.randint(20_000, 32_000)
        with _handed_out_lock:
            if port in _handed_out:
                continue
            with socket.socket() as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
            _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port found on {host} in 20000-32000")


def run_json_child(argv: list[str], what: str, fallback: dict[str, Any]) -> dict[str, Any]:
    """Run a service's one-shot command (`python -m services.X ...`) that prints one JSON object as its last
    stdout line; its logs and progress stay on our stderr. Returns that object, `fallback` plus an "error" naming
    `what` when there is none, and sets "error" when it exited non-zero without saying why."""
    done = subprocess.run(argv, stdout=subprocess.PIPE, text=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
    try:
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict):
        return fallback | {"error": f"{what} exited {done.returncode} without a result: "
                                    f"{done.stdout[-500:].strip() or '(no output)'}"}
    if done.returncode != 0 and "error" not in result:
        result["error"] = f"{what} exited {done.returncode}"
    return result


def stop_child(proc: subprocess.Popen, timeout: float = 20.0) -> int:
    """Stop a child process this process started (a server under a benchmark): SIGTERM, wait up to `timeout`,
    then SIGKILL. Returns its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(5)


@dataclass(frozen=True)
class ManagedProcess:
    name: str
    run_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "pids" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        """The recorded pid if that process is still alive and is still the one we started."""
        try:
            pid_text, started = self.pid_file.read_text().split()
            pid = int(pid_text)
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) and _start_time(pid) == started else None

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
        """Start `argv` in its own session with output appended to the log file; records the pid."""
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
            )
        # the process start time guards against pid reuse when we later stop it
        self.pid_file.write_text(f"{proc.pid} {_start_time(proc.pid)}\n")
        return proc.pid

    def exited_early(self) -> bool:
        return self.pid_file.exists() and not self.running()

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM, wait, then SIGKILL. Returns True if a process was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def _start_time(pid: int) -> str:
    """Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), "" when gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child counts as gone
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(") ", 1)[1][0] != "Z"
    except OSError:
        return False
