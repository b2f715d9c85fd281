"""The shared library's public API is declared, and the library depends on nothing above it.

Every module under libs/mlops (except the generated protobuf packages and `__main__` entry points, which run on
import) names its public API in `__all__`: every name there exists, and every public top-level function or class
is in it, so what a service may import is written down in one place per module.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest
from mlops import errors

LIBS = Path(__file__).resolve().parents[2] / "libs"
GENERATED = ("mlops/contracts/v1", "mlops/contracts/oip")
FORBIDDEN = ("services", "mlops_tools")  # the library sits below the services and the tooling


def _sources() -> list[Path]:
    return sorted(
        p for p in (LIBS / "mlops").rglob("*.py")
        if not any(p.relative_to(LIBS).as_posix().startswith(g + "/") for g in GENERATED)
    )


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(LIBS).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = [p for p in _sources() if p.name != "__main__.py"]


def _public_definitions(tree: ast.Module) -> set[str]:
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {node.name for node in tree.body if isinstance(node, defs) and not node.name.startswith("_")}


@pytest.mark.parametrize("path", MODULES, ids=_module_name)
def test_module_declares_its_public_api(path: Path) -> None:
    name = _module_name(path)
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(exported) == len(set(exported)), f"{name}.__all__ names something twice"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what the module does not define: {missing}"
    undeclared = sorted(_public_definitions(ast.parse(path.read_text())) - set(exported))
    assert not undeclared, f"{name} defines public {undeclared} but leaves them out of __all__ (or prefix with _)"


def test_every_library_error_roots_at_mlops_error_and_is_listed_in_the_tree() -> None:
    """One root (catching MlopsError catches every expected failure) and mlops.errors documents the whole tree."""
    unrooted, unlisted = [], []
    for path in MODULES:
        module = importlib.import_module(_module_name(path))
        for name, cls in vars(module).items():
            if not (inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == module.__name__):
                continue
            if not issubclass(cls, errors.MlopsError):
                unrooted.append(f"{module.__name__}.{name}")
            if name not in (errors.__doc__ or ""):
                unlisted.append(f"{module.__name__}.{name}")
    assert not unrooted, f"errors outside the MlopsError tree: {unrooted}"
    assert not unlisted, f"errors missing from the tree in mlops.errors' docstring: {unlisted}"


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    """Every absolute import in the tree with its line, at any depth (inside functions and branches too), and
    `importlib.import_module("...")` / `__import__("...")` calls with a literal name."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def test_the_library_imports_no_service_and_no_tooling() -> None:
    offenders = [
        f"{path.relative_to(LIBS)}:{line} imports {module}"
        for path in _sources()
        for line, module in _imports(ast.parse(path.read_text(), filename=str(path)))
        if module.split(".")[0] in FORBIDDEN
    ]
    assert not offenders, offenders


def test_the_import_check_sees_nested_imports() -> None:
    source = (
        "def f():\n    if True:\n        from services.ingest import core\n"
        "class C:\n    def g(self):\n        import mlops_tools.demo\n"
        "def h():\n    importlib.import_module('services.trainer')\n"
    )
    found = sorted(module for _, module in _imports(ast.parse(source)))
    assert found == ["mlops_tools.demo", "services.ingest", "services.trainer"]
