"""Prometheus in the local stack: Debian's `prometheus` (installed on demand, like redis-server), scraping every
service's ops port and evaluating the rules of deploy/prometheus/ (the same rules Kubernetes gets as a
PrometheusRule).

Scrape targets come from files (file-based service discovery): `write_targets(ports, name)` writes
`targets/<name>.json` under the run folder and a running Prometheus picks it up within seconds, so `mlops stack up
--ops` (the services' default ports) and `mlops demo` (its own, maybe free, ports) each name their own services
without a restart. Every target's `job` is the service's name (`ingest`, ..., `monitor`), as the ServiceMonitor in
deploy/monitoring gives it in Kubernetes, so one set of rules works in both places.

`start` is idempotent, `stop` stops only a Prometheus this stack started (its pid in the run folder).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlops_tools.procs import ManagedProcess, port_open
from mlops_tools.stack import ComponentStatus, StackError, StackSettings, apt_install

__all__ = ["RULES_FILE", "Prometheus", "check_rules", "promtool"]

log = logging.getLogger("mlops_tools.stack.prometheus")

REPO_ROOT = Path(__file__).resolve().parents[3]
RULES_FILE = REPO_ROOT / "deploy" / "prometheus" / "rules.yml"
# local scrapes and rule evaluations are frequent so the demo's alerts show within seconds of what caused them
SCRAPE_INTERVAL = "5s"
EVALUATION_INTERVAL = "5s"


def promtool() -> str:
    """Path of promtool (Debian's `prometheus` package ships it), installed now when missing; StackError when it
    cannot be."""
    return shutil.which("promtool") or apt_install("prometheus", "promtool")


def _prometheus_binary() -> str:
    return shutil.which("prometheus") or apt_install("prometheus", "prometheus")


class Prometheus:
    def __init__(self, settings: StackSettings | None = None):
        self.s = settings or StackSettings()
        self.dir = self.s.run_dir.resolve() / "prometheus"
        self.proc = ManagedProcess("prometheus", self.s.run_dir.resolve())

    @property
    def url(self) -> str:
        return f"http://{self.s.host}:{self.s.prometheus_port}"

    @property
    def targets_dir(self) -> Path:
        return self.dir / "targets"

    # -- configuration ------------------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": EVALUATION_INTERVAL,
                       "external_labels": {"stack": "local"}},
            "rule_files": [str(RULES_FILE)],
            "scrape_configs": [{
                "job_name": "mlops",  # each target's own `job` label (the service) replaces this name
                "metrics_path": "/metrics",
                "file_sd_configs": [{"files": [str(self.targets_dir / "*.json")], "refresh_interval": "5s"}],
            }],
        }

    def write_config(self) -> Path:
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "prometheus.yml"
        path.write_text(json.dumps(self.config(), indent=1) + "\n")  # JSON is YAML
        return path

    def write_targets(self, ports: Mapping[str, int], name: str = "services", host: str | None = None) -> Path:
        """Scrape each service at `host:port` from now on (a running Prometheus reads the file within seconds)."""
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        groups = [{"targets": [f"{host or self.s.host}:{port}"], "labels": {"job": service}}
                  for service, port in sorted(ports.items())]
        path = self.targets_dir / f"{name}.json"
        tmp = path.with_suffix(".tmp")  # renamed into place: Prometheus never reads half a file
        tmp.write_text(json.dumps(groups, indent=1) + "\n")
        tmp.replace(path)
        return path

    def remove_targets(self, name: str, timeout: float = 10.0) -> None:
        """Stop scraping the targets of `write_targets(..., name)`; when Prometheus runs, wait until it has dropped
        them (it then marks their series stale). Call it before stopping those services: a target stopped first
        would show as down, and Prometheus writes no stale markers when it shuts down, so a restarted one would
        still see the last `up == 0` for five minutes."""
        path = self.targets_dir / f"{name}.json"
        path.unlink(missing_ok=True)
        deadline = time.monotonic() + timeout
        while self.proc.running() and time.monotonic() < deadline:
            try:
                if not any(t["discoveredLabels"].get("__meta_filepath") == str(path) for t in self.active_targets()):
                    return
            except OSError:
                return
            time.sleep(0.5)

    # -- process --------------------------------------------------------------------------------------------------
    def start(self) -> str:
        """Start Prometheus (idempotent: a running one re-reads its configuration and rules)."""
        config = self.write_config()
        port = self.s.prometheus_port
        pid = self.proc.pid()
        if pid is not None and port_open(self.s.host, port):
            os.kill(pid, signal.SIGHUP)  # rules or configuration may have changed since it started
            return "already running"
        if port_open(self.s.host, port):
            raise StackError(f"port {self.s.host}:{port} is taken by a process this stack did not start; stop it "
                             "or set MLOPS_STACK_PROMETHEUS_PORT")
        binary = _prometheus_binary()
        self.proc.start([
            binary, f"--config.file={config}", f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address={self.s.host}:{port}", "--storage.tsdb.retention.time=2d",
            "--web.enable-lifecycle",
        ])
        self._wait_ready()
        return "started"

    def stop(self) -> bool:
        return self.proc.stop()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.s.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.exited_early():
                raise StackError(f"prometheus exited during start-up; last log lines:\n{self.proc.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:  # noqa: S310 (loopback)
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise StackError(f"prometheus not ready on {self.url} within {self.s.start_timeout_s}s:\n"
                         f"{self.proc.log_tail()}")

    def status(self) -> ComponentStatus:
        pid, listening = self.proc.pid(), port_open(self.s.host, self.s.prometheus_port)
        where = f"{self.s.host}:{self.s.prometheus_port}"
        if pid and listening:
            return ComponentStatus("prometheus", "running", f"pid {pid}, {self.url}/alerts")
        if listening:
            return ComponentStatus("prometheus", "foreign", f"{where} held by a process we did not start")
        if pid:
            return ComponentStatus("prometheus", "starting", f"pid {pid}, {where} not answering yet")
        return ComponentStatus("prometheus", "stopped", "start it with `mlops stack up --ops`")

    # -- HTTP API -----------------------------------------------------------------------------------------------
    def api(self, path: str, timeout: float = 5.0) -> Any:
        """GET `/api/v1/<path>` and return its `data` (StackError when Prometheus answers an error)."""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}", timeout=timeout) as resp:  # noqa: S310
            body = json.load(resp)
        if body.get("status") != "success":
            raise StackError(f"prometheus /api/v1/{path}: {body.get('error', body)}")
        return body["data"]

    def active_targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets?state=active")["activeTargets"])

    def firing_alerts(self) -> list[dict[str, Any]]:
        return [a for a in self.api("alerts")["alerts"] if a.get("state") == "firing"]


def check_rules(path: Path = RULES_FILE) -> subprocess.CompletedProcess[str]:
    """`promtool check rules` on `path`."""
    return subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True)
