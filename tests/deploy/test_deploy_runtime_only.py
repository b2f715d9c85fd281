"""The container image holds the runtime only (the `mlops` library and the services), never the tooling
(`tools/mlops_tools`: command line, demo, local stack): the Dockerfile copies no tools/, .dockerignore keeps it out
of the build context, the runtime never imports it, and the project built from what the image copies is a wheel
with exactly the runtime packages."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from deploy_helpers import ROOT, dockerfile_instructions

RUNTIME_PACKAGES = {"mlops", "services"}


def _copied_sources() -> list[str]:
    sources = []
    for instruction, args in dockerfile_instructions():
        if instruction == "COPY" and "--from=" not in args:
            sources += [a.rstrip("/") for a in args.split() if not a.startswith("--")][:-1]
    return sources


def test_the_dockerfile_copies_no_tooling() -> None:
    sources = _copied_sources()
    assert {"libs", "services"} <= set(sources)
    assert not any(s == "tools" or s.startswith("tools/") for s in sources), sources
    allowed = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip().startswith("!")]
    assert not any(ln[1:].startswith("tools") for ln in allowed), allowed
    # the build installs no extras (tools, test) and leaves no `mlops` console script pointing at absent tooling
    runs = " ".join(a for i, a in dockerfile_instructions() if i == "RUN")
    assert "pip install . " in runs and ".[" not in runs
    assert "rm -f /opt/venv/bin/mlops" in runs and "find_spec('mlops_tools') is None" in runs


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("folder", ["libs/mlops", "services"])
def test_the_runtime_never_imports_the_tooling(folder: str) -> None:
    offenders = [f"{p.relative_to(ROOT)} imports {m}" for p in (ROOT / folder).rglob("*.py")
                 for m in _imports(p) if m.split(".")[0] == "mlops_tools"]
    assert not offenders, offenders


@pytest.mark.slow
def test_the_image_s_sources_build_a_wheel_of_the_runtime_packages_only(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for source in _copied_sources():
        if source.startswith("deploy/"):
            continue  # the health-check helper is copied into the runtime stage, not built
        path = ROOT / source
        if path.is_dir():
            shutil.copytree(path, src / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / source)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    if proc.returncode != 0 and "setuptools" in proc.stderr and "No module named" in proc.stderr:
        pytest.skip("setuptools is not installed in this interpreter (needed to build without isolation); install "
                    "it: python -m pip install setuptools")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == RUNTIME_PACKAGES, top
    assert "services/__main__.py" in names  # the image's entry point
