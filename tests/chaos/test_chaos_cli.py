"""`mlops chaos` hands every argument, options included, to loadtests/chaos.py, and the script's scenario names are
the suite's (no stack needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlops_tools.cli import build_parser, main

LOADTESTS = Path(__file__).resolve().parents[2] / "loadtests"


def test_mlops_chaos_passes_its_options_to_the_script(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "call", lambda argv: calls.append(argv) or 0)
    assert main(["chaos", "--scale", "0.1", "--only", "poison-record"]) == 0
    [argv] = calls
    assert argv[0] == sys.executable and Path(argv[1]) == LOADTESTS / "chaos.py"
    assert argv[2:] == ["--scale", "0.1", "--only", "poison-record"]
    assert build_parser().parse_args(["chaos", "--help"]).args == ["--help"]


def test_the_script_names_every_scenario_of_the_brief() -> None:
    if str(LOADTESTS) not in sys.path:
        sys.path.insert(0, str(LOADTESTS))
    from chaos_kit.faults import SCENARIOS

    kills = {f"kill-{s}" for s in ("ingest", "features", "trainer", "registry", "inference", "monitor")}
    others = {"kill-features-dynamic", "broker-kill", "redis-restart", "redis-lost", "rebalance", "slow-redis",
              "poison-record", "bad-labels", "broker-1-of-3"}
    assert kills | others == set(SCENARIOS)
