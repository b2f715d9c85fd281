"""The demo as a fixture: each test makes the demos it runs, and every service process they started is stopped
afterwards, whatever happened."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mlops_tools.demo import Demo, DemoConfig
from mlops_tools.stack import Stack


@pytest.fixture
def demo_factory(stack: Stack, tmp_path: Path) -> Iterator[Callable[..., Demo]]:
    demos: list[Demo] = []

    def make(name: str, **overrides: object) -> Demo:
        # no Prometheus/Jaeger: the loop's figures, not the operators' tools (tests/observability covers those)
        settings = {"default_ports": False, "ops": False, "process_dir": tmp_path / name,
                    "run_dir": tmp_path / name / "run"} | overrides
        cfg = DemoConfig(**settings)  # type: ignore[arg-type]
        demo = Demo(cfg, out=sys.stdout)
        demos.append(demo)
        return demo

    yield make
    for demo in demos:
        demo.close()
