"""`mlops chaos [ARGS...]`: the chaos suite (loadtests/chaos.py) — faults injected into an isolated platform of its
own (own Kafka + Redis on free ports, the six services as processes), one table of figures per scenario."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

__all__ = ["register"]

SCRIPT = Path(__file__).resolve().parents[3] / "loadtests" / "chaos.py"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chaos", help="kill services, the broker and Redis mid-stream on an isolated stack; print "
                                     "records lost, duplicates, recovery seconds (loadtests/chaos.py)",
                       add_help=False, prefix_chars="+")  # every option is the script's
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments of loadtests/chaos.py (--help for them)")
    p.set_defaults(func=_chaos)


def _chaos(args: argparse.Namespace) -> int:
    if not SCRIPT.exists():
        print(f"mlops chaos: {SCRIPT} not found (it ships with the repository, not the image)", file=sys.stderr)
        return 2
    return subprocess.call([sys.executable, str(SCRIPT), *args.args])
