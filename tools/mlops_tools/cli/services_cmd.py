"""`mlops up|down|status` (the six services as background processes) and `mlops service NAME` (foreground)."""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import time

from mlops_tools.procs import ManagedProcess
from mlops_tools.stack import StackSettings

SERVICES = ("ingest", "features", "trainer", "registry", "inference", "monitor")


def register(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("up", help="start the six services in the background (after `mlops stack up`)")
    up.add_argument("names", nargs="*", help="only these services")
    up.set_defaults(func=_up)
    down = sub.add_parser("down", help="stop the services `mlops up` started")
    down.add_argument("names", nargs="*", help="only these services")
    down.set_defaults(func=_down)
    sub.add_parser("status", help="state of each service").set_defaults(func=_status)
    svc = sub.add_parser("service", help="run one service in the foreground (what a container runs)")
    svc.add_argument("name", choices=SERVICES)
    svc.set_defaults(func=_service)


def service_process(name: str, settings: StackSettings | None = None) -> ManagedProcess:
    return ManagedProcess(f"svc-{name}", (settings or StackSettings()).run_dir.resolve())


def start_services(names: tuple[str, ...] | list[str] = SERVICES, env: dict[str, str] | None = None) -> dict[str, str]:
    result = {}
    for name in names:
        proc = service_process(name)
        if proc.running():
            result[name] = f"already running (pid {proc.pid()})"
            continue
        pid = proc.start([sys.executable, "-m", f"services.{name}"], env=env)
        result[name] = f"started (pid {pid}, log {proc.log_file})"
    return result


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
    os.environ.setdefault("MLOPS_SERVICE_NAME", args.name)
    runpy.run_module(f"services.{args.name}", run_name="__main__", alter_sys=True)
    return 0
