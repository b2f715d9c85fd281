"""`mlops ops-gen`: regenerate deploy/monitoring (PrometheusRule, ServiceMonitor) and deploy/grafana (dashboards)
from their sources (mlops_tools.opsgen); `--check` only says whether they are up to date."""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ops-gen", help="regenerate the PrometheusRule, ServiceMonitor and Grafana dashboards "
                                       "in deploy/")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when a generated file is stale")
    p.set_defaults(func=_ops_gen)


def _ops_gen(args: argparse.Namespace) -> int:
    from mlops_tools.opsgen import stale, write
    from mlops_tools.stack.prometheus import REPO_ROOT

    paths = stale() if args.check else write()
    for path in paths:
        print(f"{'stale' if args.check else 'wrote'} {path.relative_to(REPO_ROOT)}")
    if args.check and paths:
        print("run `mlops ops-gen` and commit the result", file=sys.stderr)
        return 1
    if not paths:
        print("deploy/monitoring and deploy/grafana are up to date")
    return 0
