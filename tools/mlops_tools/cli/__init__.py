"""`mlops`: the one command line of the platform.

Each command group lives in its own module under mlops_tools.cli and exposes `register(subparsers)`; a command sets
`func(args) -> int` on its parser. Command modules import heavy libraries (onnxruntime, sklearn, river) inside
their functions, so `mlops stack up` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["ACL_HINT", "COMMAND_MODULES", "acl_refusal", "build_parser", "main"]

ACL_HINT = ("On a secure cluster only the admin user applies definitions and registers models (model.artifacts), "
            "and only the registry announces promotions (model.promoted); use the admin's credentials (local "
            "secure stack: eval \"$(mlops stack env --user admin)\")")

# the order is the order of `mlops --help`
COMMAND_MODULES: tuple[str, ...] = (
    "mlops_tools.cli.stack_cmd",  # stack up|down|status
    "mlops_tools.cli.services_cmd",  # up, down, status, service NAME
    "mlops_tools.cli.produce_cmd",  # produce (raw events, labels)
    "mlops_tools.cli.train_cmd",  # train
    "mlops_tools.cli.definitions_cmd",  # apply, definitions list|show|diff|schema
    "mlops_tools.cli.models_cmd",  # models list|show|promote|rollback|diff|card
    "mlops_tools.cli.register_cmd",  # models register (bring your own ONNX; after models_cmd, whose group it joins)
    "mlops_tools.cli.score_cmd",  # score (batch scoring)
    "mlops_tools.cli.features_cmd",  # features rebuild (the online store from features.log)
    "mlops_tools.cli.demo_cmd",  # demo
    "mlops_tools.cli.trace_cmd",  # trace ID
    "mlops_tools.cli.bench_cmd",  # bench NAME
    "mlops_tools.cli.chaos_cmd",  # chaos (faults injected into an isolated platform; loadtests/chaos.py)
    "mlops_tools.cli.ops_cmd",  # ops-gen (PrometheusRule, ServiceMonitor, Grafana dashboards)
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops", description="Streaming MLOps platform on Kafka.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # command group not built yet
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        refused = acl_refusal(str(exc))
        if refused is None:
            raise
        print(f"mlops {args.command}: {refused}", file=sys.stderr)
        return 2


def acl_refusal(error: str) -> str | None:
    """What to tell the user when `error` is a write the broker's ACLs refused (None for any other failure): not a
    bug of the command but a credential without the permission."""
    if "AUTHORIZATION_FAILED" not in error.upper().replace(" ", "_"):
        return None
    from mlops.settings import KafkaSettings

    kafka = KafkaSettings()
    who = f"SASL user {kafka.sasl_username!r}" if kafka.sasl else "this client"
    return f"the broker refused {who}: {error}\n{ACL_HINT}"
