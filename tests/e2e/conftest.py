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
        # no Prometheus/Jaeger: the loop's figures, not the operators' tools (tests/observability covers those);
        # 150 records/s and 100 requests/s instead of the demo's 100 and 50: the loop's steps are counted in
        # records and requests (warm-up, windows, post-drift predictions), so its story takes fewer seconds
        settings = {"default_ports": False, "ops": False, "process_dir": tmp_path / name,
                    "run_dir": tmp_path / name / "run", "rate": 150.0, "predict_rate": 100.0} | overrides
        cfg = DemoConfig(**settings)  # type: ignore[arg-type]
        demo = Demo(cfg, out=sys.stdout)
        demos.append(demo)
        return demo

    yield make
    for demo in demos:
        demo.close()
