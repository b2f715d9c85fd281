"""`mlops stack up|down|status|env`: the local Kafka (KRaft) broker and Redis; `up --ops` adds Prometheus and Jaeger,
`up --secure` a SASL_SSL listener, `up --brokers 3` a three-node cluster; `env` prints the clients' MLOPS_KAFKA_*."""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from mlops_tools.stack import Stack, StackError
from mlops_tools.stack.prometheus import Prometheus
from mlops_tools.stack.secure import CLIENT_USER, CLIENT_USERS

__all__ = ["register"]

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stack", help="local Kafka (KRaft) + Redis + topics")
    ssub = p.add_subparsers(dest="action", required=True)
    up = ssub.add_parser("up", help="fetch, start and wait for Kafka and Redis; create topics (idempotent)")
    up.add_argument("--ops", action="store_true",
                    help="also the operators' tools: Prometheus, scraping the services' default ops ports "
                         "(9101-9106) with the alert rules of deploy/prometheus, and Jaeger (OTLP traces in, query "
                         "API out; built once with go)")
    up.add_argument("--secure", action="store_true", default=None,
                    help="the broker listens with SASL_SSL only (SCRAM-SHA-512 and a client certificate); CA, "
                         "certificates and passwords are generated into the run dir (see `mlops stack env`)")
    up.add_argument("--brokers", type=int, default=None, metavar="N",
                    help="KRaft nodes (broker + controller each); 3: topics with replication factor 3 and "
                         "min.insync.replicas 2. Default: the layout the run dir was made with, else 1")
    up.set_defaults(func=_up)
    env = ssub.add_parser("env", help="print `export MLOPS_KAFKA_...` lines for clients of this stack (file paths, "
                                      "never a password)")
    env.add_argument("--user", default=CLIENT_USER, choices=CLIENT_USERS,
                     help="the Kafka user of a secure stack to act as (default: mlops; admin: `mlops apply`, "
                          "`mlops register`; a service's own)")
    env.set_defaults(func=_env)
    down = ssub.add_parser("down", help="stop what `stack up` started")
    down.add_argument("--wipe", action="store_true", help="also delete the broker's data: every topic and offset")
    down.set_defaults(func=_down)
    ssub.add_parser("status", help="state of each component").set_defaults(func=_status)


def _up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        result = Stack(brokers=args.brokers, secure=args.secure).up(ops=args.ops)
        if args.ops:
            result |= _ops_up()
    except StackError as exc:
        print(f"mlops stack up: {exc}", file=sys.stderr)
        return 1
    for name, state in result.items():
        print(f"{name:8} {state}")
    print(f"stack ready in {time.monotonic() - started:.1f}s")
    return 0


def _env(args: argparse.Namespace) -> int:
    for name, value in Stack().kafka_settings(args.user).environ().items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def _ops_up() -> dict[str, str]:
    from mlops_tools.cli.services_cmd import OPS_PORTS

    prometheus = Prometheus()
    prometheus.write_targets(OPS_PORTS)
    return {"prometheus": f"{prometheus.start()}: {prometheus.url} (alerts: {prometheus.url}/alerts)"}


def _down(args: argparse.Namespace) -> int:
    result = Stack().down(wipe=args.wipe)
    result["prometheus"] = "stopped" if Prometheus().stop() else "was not running"
    for name, state in result.items():
        print(f"{name:8} {state}")
    return 0


def _status(_args: argparse.Namespace) -> int:
    statuses = Stack().status()
    prometheus = Prometheus().status()  # optional (`up --ops`): its state does not decide the exit status
    for st in [*statuses, prometheus]:
        print(f"{st.name:10} {st.state:9} {st.detail}")
    return 0 if all(st.state == "running" for st in statuses) else 3
