"""`mlops bench NAME [ARGS...]`: run a benchmark from loadtests/ (each prints its own table and baseline ratio)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

__all__ = ["register"]

LOADTESTS = Path(__file__).resolve().parents[3] / "loadtests"


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in LOADTESTS.glob("bench_*.py"))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help=f"run a benchmark from loadtests/ ({', '.join(available()) or 'none yet'})")
    p.add_argument("name", help="benchmark name, e.g. bus")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    p.set_defaults(func=_bench)


def _bench(args: argparse.Namespace) -> int:
    script = LOADTESTS / f"bench_{args.name}.py"
    if not script.exists():
        print(f"mlops bench: no benchmark {args.name!r}; available: {', '.join(available())}", file=sys.stderr)
        return 2
    return subprocess.call([sys.executable, str(script), *args.args])
