"""`mlops up|down|status` (the services, the console among them, as background processes) and `mlops service
NAME` (foreground).

The service table (names and default ports) and the start/stop helpers here are also what the demo uses. Tooling
starts services only as processes (`python -m services.NAME`), never by importing them.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

from mlops_tools.procs import ManagedProcess
from mlops_tools.stack import StackSettings

__all__ = ["GRPC_PORTS", "HTTP_PORTS", "OPS_PORTS", "SERVICES", "register", "replica_env", "service_process",
           "start_service", "start_services", "stop_services"]

SERVICES = ("ingest", "features", "trainer", "registry", "inference", "monitor", "console")
# default ports: the ops endpoint (/metrics, /healthz, /readyz) of each service, the two gRPC APIs and the HTTP ones
# (inference's KServe v2 REST, the console's pages)
OPS_PORTS = {"ingest": 9101, "features": 9102, "trainer": 9103, "registry": 9104, "inference": 9105, "monitor": 9106,
             "console": 9107}
GRPC_PORTS = {"inference": 8001, "registry": 8002}
HTTP_PORTS = {"inference": 8000, "console": 8080}


def register(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("up", help="start the six services and the console in the background (after `mlops stack up`)")
    up.add_argument("names", nargs="*", help="only these services")
    up.set_defaults(func=_up)
    down = sub.add_parser("down", help="stop the services `mlops up` started")
    down.add_argument("names", nargs="*", help="only these services")
    down.set_defaults(func=_down)
    sub.add_parser("status", help="state of each service").set_defaults(func=_status)
    svc = sub.add_parser("service", help="run one service in the foreground (what a container runs)")
    svc.add_argument("name", choices=SERVICES)
    svc.set_defaults(func=_service)


def service_process(name: str, run_dir: Path | None = None) -> ManagedProcess:
    """The managed process of service `name`: pid and log under `run_dir` (default: the stack's run folder)."""
    return ManagedProcess(f"svc-{name}", (run_dir or StackSettings().run_dir).resolve())


def start_service(name: str, env: dict[str, str] | None = None,
                  run_dir: Path | None = None) -> tuple[ManagedProcess, str]:
    """Start service `name` in the background unless it runs already; returns its process and what happened."""
    proc = service_process(name, run_dir)
    if proc.running():
        return proc, f"already running (pid {proc.pid()})"
    pid = proc.start([sys.executable, "-m", f"services.{name}"], env=replica_env(name, proc) | (env or {}))
    return proc, f"started (pid {pid}, log {proc.log_file})"


def replica_env(name: str, proc: ManagedProcess) -> dict[str, str]:
    """features joins its group as a static member named after its process, host and run folder: restarted, it
    gets its partitions back at once instead of after the dead member's session timeout (the manifests and the
    compose file name it after the pod or container). A setting in the environment wins."""
    if name != "features" or "MLOPS_FEATURES_GROUP_INSTANCE_ID" in os.environ:
        return {}
    folder = hashlib.blake2b(str(proc.run_dir).encode(), digest_size=4).hexdigest()
    return {"MLOPS_FEATURES_GROUP_INSTANCE_ID": f"{proc.name}-{{hostname}}-{folder}"}


def start_services(names: tuple[str, ...] | list[str] = SERVICES, env: dict[str, str] | None = None) -> dict[str, str]:
    return {name: start_service(name, _own_kafka_user(name, env))[1] for name in names}


def _own_kafka_user(name: str, env: dict[str, str] | None) -> dict[str, str] | None:
    """A client of the secure local stack as its shared user (`eval "$(mlops stack env)"`) starts each service as
    that service's own Kafka user: the broker's ACLs let only the registry write model.promoted, only the trainer
    model.artifacts (mlops_tools/stack/acls.py)."""
    from mlops_tools.stack import Stack
    from mlops_tools.stack.secure import CLIENT_USER

    base = dict(os.environ if env is None else env)
    if base.get("MLOPS_KAFKA_SASL_USERNAME") != CLIENT_USER:
        return env
    return base | Stack().service_user_env(name)


def stop_services(names: tuple[str, ...] | list[str] = SERVICES) -> dict[str, str]:
    return {name: ("stopped" if service_process(name).stop() else "was not running") for name in names}


def _up(args: argparse.Namespace) -> int:
    names = args.names or SERVICES
    for name, state in start_services(names).items():
        print(f"{name:10} {state}")
    time.sleep(2)
    failed = [n for n in names if service_process(n).exited_early()]
    for name in failed:
        print(f"{name} exited at start:\n{service_process(name).log_tail()}", file=sys.stderr)
    return 1 if failed else 0


def _down(args: argparse.Namespace) -> int:
    for name, state in stop_services(args.names or SERVICES).items():
        print(f"{name:10} {state}")
    return 0


def _status(_args: argparse.Namespace) -> int:
    ok = True
    for name in SERVICES:
        pid = service_process(name).pid()
        ok &= pid is not None
        print(f"{name:10} {f'running (pid {pid})' if pid else 'stopped'}")
    return 0 if ok else 3


def _service(args: argparse.Namespace) -> int:
    # the container's entry point, run in place of this process: signals and the exit status are the service's
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "services", args.name])
