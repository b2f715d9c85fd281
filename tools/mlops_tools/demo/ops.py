"""The operators' tools a demo run uses: Prometheus scraping the run's services with the platform's alert rules, and
Jaeger (the stack's trace store) receiving their OTLP spans — each started when needed and stopped only if this run
started it. The demo goes on without either when it cannot start (Prometheus not installable, no Go toolchain):
its spans then go to the offline OTLP/JSON file that `mlops trace --file` reads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mlops.settings import TelemetrySettings

from mlops_tools.stack import Stack, StackError, jaeger
from mlops_tools.stack.prometheus import Prometheus

__all__ = ["DemoOps"]


class DemoOps:
    def __init__(self, stack: Stack, tag: str, say: Callable[[str], None], enabled: bool = True):
        self.stack, self.tag, self.say, self.enabled = stack, tag, say, enabled
        self.prometheus: Prometheus | None = None
        self._started: list[str] = []

    def telemetry(self, traces_file: Path) -> TelemetrySettings:
        """Where the run's spans go: the stack's Jaeger (started, and built once, when `enabled`), else the file."""
        if jaeger.status(self.stack).state != "running" and self.enabled:
            self.say("  jaeger: starting (the first run builds it from the Go module proxy, which takes minutes)")
            try:
                if jaeger.start(self.stack).startswith("started"):
                    self._started.append("jaeger")
            except StackError as exc:
                self.say(f"  jaeger: not started ({exc}); spans go to {traces_file}")
        if jaeger.status(self.stack).state == "running":
            self.say(f"  jaeger {jaeger.query_url(self.stack.s)} (mlops trace ID reads it)")
            return TelemetrySettings(exporter="otlp-grpc", otlp_endpoint=jaeger.otlp_endpoint(self.stack.s))
        return TelemetrySettings(exporter="file", file_path=traces_file)

    def traces_location(self, telemetry: TelemetrySettings) -> str:
        return jaeger.query_url(self.stack.s) if telemetry.exporter != "file" else str(telemetry.file_path)

    def console_env(self) -> dict[str, str]:
        return {"MLOPS_CONSOLE_PROMETHEUS_URL": Prometheus(self.stack.s).url,
                "MLOPS_CONSOLE_JAEGER_URL": jaeger.query_url(self.stack.s)}

    def start_prometheus(self, ops_ports: dict[str, int]) -> None:
        """Prometheus scraping this run's services with the alert rules (its alerts page shows the drift, retrain
        and promotion as they happen)."""
        if not self.enabled:
            return
        prometheus = Prometheus(self.stack.s)
        try:
            prometheus.write_targets(ops_ports, name=self.tag)
            if prometheus.start() == "started":
                self._started.append("prometheus")
        except StackError as exc:
            self.say(f"  prometheus: not started ({exc})")
            return
        self.prometheus = prometheus
        self.say(f"  prometheus {prometheus.url} (alerts: {prometheus.url}/alerts)")

    def drop_targets(self) -> None:
        """Before the services stop: a stopped service is gone, not down (no false ServiceDown alert)."""
        if self.prometheus is not None:
            self.prometheus.remove_targets(self.tag)

    def stop(self) -> None:
        for name in reversed(self._started):
            if name == "prometheus" and self.prometheus is not None:
                self.prometheus.proc.stop()
            elif name == "jaeger":
                jaeger.stop(self.stack)
        self._started.clear()
