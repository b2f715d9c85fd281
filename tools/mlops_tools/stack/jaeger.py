"""Jaeger v2 in the local stack: the trace store the services export OTLP to and `mlops trace` reads back.

Jaeger v2 is one OpenTelemetry-Collector-based binary configured by YAML. It is built once from the Go module proxy
(the module carries the query API, not the UI's assets) into the tool cache, like the Kafka jars; the config written
here wires the OTLP receiver (gRPC and HTTP) into the in-memory store and serves the `jaeger_query` extension's HTTP
API (`/api/traces/{id}`, `/api/traces?service=…`, `/api/services`), everything on the stack's loopback address.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from mlops_tools.procs import ManagedProcess, port_open
from mlops_tools.stack import ComponentStatus, Stack, StackError, StackSettings, go_tool

__all__ = ["BUILD_TIMEOUT_S", "MODULE", "binary", "otlp_endpoint", "query_url", "start", "status", "stop",
           "write_config"]

MODULE = "github.com/jaegertracing/jaeger/cmd/jaeger"
# jaeger's own go.mod pins sarama with a replace directive, which `go install module@version` refuses: the build
# runs in a throwaway module that carries the same replace (mlops_tools.stack.go_tool)
_REPLACE = {"github.com/Shopify/sarama": "github.com/Shopify/sarama@v1.33.0"}
# a cold build compiles the whole collector (~1,000 packages): many minutes on two busy cores
BUILD_TIMEOUT_S = 3600.0
_INSTALL_HINT = ("Go 1.24+ is required to build Jaeger once (Debian: apt-get install golang-go, or the Go toolchain "
                 "from its project); `mlops stack up --ops` then builds and caches it")


def query_url(settings: StackSettings | None = None) -> str:
    """Base URL of Jaeger's HTTP query API (what `mlops trace` and the console read)."""
    s = settings or StackSettings()
    return f"http://{s.host}:{s.jaeger_query_port}"


def otlp_endpoint(settings: StackSettings | None = None, http: bool = False) -> str:
    """The OTLP receiver the services export to (MLOPS_TELEMETRY_OTLP_ENDPOINT): gRPC, or HTTP with `http`."""
    s = settings or StackSettings()
    return f"http://{s.host}:{s.otlp_http_port if http else s.otlp_grpc_port}"


def binary(settings: StackSettings | None = None) -> Path:
    """The Jaeger binary of the configured version: cached, or built now (once) from the Go module proxy."""
    s = settings or StackSettings()
    built = go_tool(f"{MODULE}@{s.jaeger_version}", _binary_name(s), timeout=BUILD_TIMEOUT_S, replace=_REPLACE)
    if built is None:
        raise StackError(f"jaeger {s.jaeger_version} could not be built (go missing, or its build failed: see the "
                         f"log above); {_INSTALL_HINT}")
    return built


def _binary_name(s: StackSettings) -> str:
    return f"jaeger-{s.jaeger_version}"


def write_config(settings: StackSettings, folder: Path) -> Path:
    """The Jaeger v2 config: OTLP in, in-memory store, query API; no self-tracing, no own metrics port."""
    h, s = settings.host, settings
    config = {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["batch"],
                                     "exporters": ["jaeger_storage_exporter"]}},
            "telemetry": {"resource": {"service.name": "jaeger"}, "metrics": {"level": "none"},
                          "logs": {"level": "info"}},
        },
        "extensions": {
            "jaeger_storage": {"backends": {"memstore": {"memory": {"max_traces": s.jaeger_max_traces}}}},
            "jaeger_query": {
                "storage": {"traces": "memstore"},
                "enable_tracing": False,  # Jaeger would otherwise trace its own queries into the store
                "http": {"endpoint": f"{h}:{s.jaeger_query_port}"},
                "grpc": {"endpoint": f"{h}:{s.jaeger_query_grpc_port}"},
            },
        },
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"{h}:{s.otlp_grpc_port}"},
                                             "http": {"endpoint": f"{h}:{s.otlp_http_port}"}}}},
        "processors": {"batch": {}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": "memstore"}},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _ports(s: StackSettings) -> tuple[int, ...]:
    return s.jaeger_query_port, s.jaeger_query_grpc_port, s.otlp_grpc_port, s.otlp_http_port


def _process(stack: Stack) -> ManagedProcess:
    return ManagedProcess("jaeger", stack.run_dir)


def start(stack: Stack) -> str:
    """Start Jaeger (idempotent) and wait until its query API and OTLP gRPC receiver answer."""
    s, proc = stack.s, _process(stack)
    if proc.running() and port_open(s.host, s.jaeger_query_port):
        return "already running"
    for port in _ports(s):
        if port_open(s.host, port):
            raise StackError(
                f"port {s.host}:{port} is taken by a process this stack did not start; stop it or set "
                "MLOPS_STACK_JAEGER_QUERY_PORT / _JAEGER_QUERY_GRPC_PORT / _OTLP_GRPC_PORT / _OTLP_HTTP_PORT"
            )
    exe = binary(s)
    config = write_config(s, stack.run_dir / "jaeger")
    proc.start([str(exe), "--config", str(config)])
    stack._wait("jaeger", proc, s.jaeger_query_port)
    stack._wait("jaeger", proc, s.otlp_grpc_port)
    return f"started, query API {query_url(s)}, OTLP {otlp_endpoint(s)}"


def stop(stack: Stack) -> str:
    return "stopped" if _process(stack).stop() else "was not running"


def status(stack: Stack) -> ComponentStatus:
    s, proc = stack.s, _process(stack)
    pid, listening = proc.pid(), port_open(s.host, s.jaeger_query_port)
    if pid and listening:
        return ComponentStatus("jaeger", "running", f"pid {pid}, {query_url(s)}")
    if listening:
        return ComponentStatus("jaeger", "foreign", f"{query_url(s)} held by a process we did not start")
    if pid:
        return ComponentStatus("jaeger", "starting", f"pid {pid}, {query_url(s)} not answering yet")
    return ComponentStatus("jaeger", "stopped", f"log: {proc.log_file}")
