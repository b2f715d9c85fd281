"""The tooling's own rules, checked on the source: it starts services only as processes (never imports them), reads
Kafka only through mlops.bus, exports its names with `__all__` and keeps its modules small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools" / "mlops_tools"
MODULES = sorted(TOOLS.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):  # every level, not only the top
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(TOOLS)))
def test_tooling_imports_no_service_and_no_kafka_client(path: Path) -> None:
    assert not _imports(path) & {"services", "confluent_kafka", "faust"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(TOOLS)))
def test_tooling_module_declares_all_and_stays_small(path: Path) -> None:
    text = path.read_text()
    assert "__all__" in text
    lines = len(text.splitlines())
    assert lines <= (300 if path.parent.name == "demo" else 400), f"{lines} lines"


def test_stack_ships_its_broker_files() -> None:
    from importlib import resources

    for name in ("kafka-pom.xml", "log4j2.properties"):
        assert (resources.files("mlops_tools.stack") / name).is_file()
