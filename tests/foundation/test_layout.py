"""The architecture's rules, checked on the source: services talk only through Kafka, never through each other's
code; every service has the same skeleton; the runtime library never reaches up into a service or the tooling;
`mlops.bus` is the only Kafka toolkit."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists())
# every service folder holds exactly these; a role that outgrows ~400 lines becomes a package of the same name
SKELETON = {"__init__", "__main__", "settings", "core", "convert", "edge", "metrics", "errors"}
GENERATED = ("contracts/v1", "contracts/oip")
TRANSPORTS = ("confluent_kafka", "grpc", "faust", "redis", "http", "aiohttp", "mlops.bus", "mlops.contracts")


def _python_files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*.py")):
        if not any(g in path.as_posix() for g in GENERATED):
            yield path


def _imports(path: Path) -> list[tuple[str, int]]:
    """(module, level) of every import in the file, at any depth (function bodies included)."""
    out: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append((node.module or "", node.level))
    return out


def _under(module: str, roots: tuple[str, ...]) -> bool:
    return any(module == r or module.startswith(r + ".") for r in roots)


def test_all_seven_services_exist() -> None:
    assert SERVICES == ["console", "features", "inference", "ingest", "monitor", "registry", "trainer"]


@pytest.mark.parametrize("service", SERVICES)
def test_service_has_the_skeleton(service: str) -> None:
    folder = ROOT / "services" / service
    entries = {p.stem for p in folder.glob("*.py")} | {p.name for p in folder.iterdir() if (p / "__init__.py").exists()}
    assert entries == SKELETON, f"{service}: extra {sorted(entries - SKELETON)}, missing {sorted(SKELETON - entries)}"


@pytest.mark.parametrize("service", SERVICES)
def test_service_has_one_settings_class(service: str) -> None:
    tree = ast.parse((ROOT / "services" / service / "settings.py").read_text())
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)
               and any(getattr(b, "id", "") == "BaseSettings" for b in n.bases)]
    assert len(classes) == 1, f"{service}/settings.py should hold one settings class"


@pytest.mark.parametrize("service", SERVICES)
def test_service_imports_no_other_service_and_only_absolutely(service: str) -> None:
    offenders = []
    for path in _python_files(ROOT / "services" / service):
        for module, level in _imports(path):
            parts = module.split(".")
            if level:
                offenders.append(f"{path.relative_to(ROOT)}: relative import {'.' * level}{module}")
            elif parts[0] == "services" and len(parts) > 1 and parts[1] != service:
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not offenders, offenders


@pytest.mark.parametrize("service", SERVICES)
def test_core_knows_no_transport(service: str) -> None:
    """core works on plain values: Kafka, gRPC, HTTP, Redis and protobuf stay in convert and edge."""
    core = ROOT / "services" / service / "core"
    files = list(_python_files(core)) if core.is_dir() else [core.with_suffix(".py")]
    offenders = [f"{p.relative_to(ROOT)} imports {m}" for p in files for m, _ in _imports(p) if _under(m, TRANSPORTS)]
    assert not offenders, offenders


def test_the_runtime_library_imports_no_service_and_no_tooling() -> None:
    offenders = [f"{p.relative_to(ROOT)} imports {m}" for p in _python_files(ROOT / "libs" / "mlops")
                 for m, _ in _imports(p) if _under(m, ("services", "mlops_tools"))]
    assert not offenders, offenders


def test_only_the_bus_and_the_topic_admin_speak_kafka() -> None:
    allowed = ("libs/mlops/bus/", "libs/mlops/topics.py")
    offenders = []
    for folder in ("libs", "services", "tools"):
        for path in _python_files(ROOT / folder):
            rel = path.relative_to(ROOT).as_posix()
            if not rel.startswith(allowed) and any(_under(m, ("confluent_kafka",)) for m, _ in _imports(path)):
                offenders.append(rel)
    assert not offenders, offenders


def test_faust_stays_in_the_features_service() -> None:
    offenders = []
    for folder in ("libs", "services", "tools"):
        for path in _python_files(ROOT / folder):
            rel = path.relative_to(ROOT).as_posix()
            if not rel.startswith("services/features/") and any(_under(m, ("faust",)) for m, _ in _imports(path)):
                offenders.append(rel)
    assert not offenders, offenders


def test_no_module_over_400_lines() -> None:
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines())
             for folder in ("libs", "services", "tools") for p in _python_files(ROOT / folder)}
    assert not {k: v for k, v in sizes.items() if v > 400}
