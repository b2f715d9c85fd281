"""The architecture's rules, checked on the source: services talk only through Kafka, never through each other's
code, and every service has the one entry point and settings class the deployment files rely on."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists())


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_all_six_services_exist() -> None:
    assert SERVICES == ["features", "inference", "ingest", "monitor", "registry", "trainer"]


@pytest.mark.parametrize("service", SERVICES)
def test_service_imports_no_other_service(service: str) -> None:
    offenders = []
    for path in (ROOT / "services" / service).rglob("*.py"):
        for module in _imported_modules(path):
            parts = module.split(".")
            if parts[0] == "services" and len(parts) > 1 and parts[1] != service:
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not offenders, offenders


@pytest.mark.parametrize("service", SERVICES)
def test_service_has_entry_point_and_one_settings_class(service: str) -> None:
    folder = ROOT / "services" / service
    assert (folder / "__main__.py").exists()
    tree = ast.parse((folder / "settings.py").read_text())
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)
               and any(getattr(b, "id", "") == "BaseSettings" for b in n.bases)]
    assert len(classes) == 1, f"{service}/settings.py should hold one settings class"


def test_shared_libs_do_not_import_services_at_module_level() -> None:
    """libs/ may start services as processes, but importing one at module import time would couple them."""
    offenders = []
    for path in (ROOT / "libs" / "mlops").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("services"):
                offenders.append(str(path.relative_to(ROOT)))
            if isinstance(node, ast.Import) and any(a.name.startswith("services") for a in node.names):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders
