"""Reading definitions: one YAML file, or a folder of them whose lists are concatenated.

Every problem comes back as a `DefinitionsError` whose `problems` are `(path, message)` pairs, the path naming the
field at fault (`models[0].gate.metric`), so a CLI can print exactly what to fix.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mlops.definitions.document import Definitions
from mlops.errors import MlopsError

__all__ = ["SECTIONS", "DefinitionsError", "from_json", "load", "parse", "to_json"]

SECTIONS = ("entities", "sources", "feature_views", "models")


class DefinitionsError(MlopsError):
    """Definitions that cannot be used as they are; `problems` lists (field path, message)."""

    def __init__(self, problems: Iterable[tuple[str, str]], origin: str = "", head: str = ""):
        self.problems = list(problems)
        self.origin = origin
        lines = [f"{path}: {message}" if path else message for path, message in self.problems]
        head = head or f"invalid definitions{f' in {origin}' if origin else ''}"
        super().__init__(head + ":\n  " + "\n  ".join(lines))


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse(document: dict[str, Any], origin: str = "") -> Definitions:
    """Validate one document (already parsed from YAML or JSON)."""
    if not isinstance(document, dict):
        raise DefinitionsError([("", f"expected a mapping with {', '.join(SECTIONS)}")], origin)
    try:
        return Definitions.model_validate(document)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            message = str(err["msg"]).removeprefix("Value error, ")
            if isinstance(err.get("input"), str | int | float | bool) and err["type"] != "value_error":
                message += f" (got {err['input']!r})"
            problems.append((_path(tuple(err["loc"])), message))
        raise DefinitionsError(problems, origin) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise DefinitionsError([("", f"not valid YAML: {exc}")], str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DefinitionsError([("", f"expected a mapping with {', '.join(SECTIONS)}")], str(path))
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise DefinitionsError([(key, f"unknown section; expected one of {list(SECTIONS)}") for key in unknown],
                               str(path))
    return data


def load(path: str | Path) -> Definitions:
    """Definitions from a YAML file, or from every `*.yaml`/`*.yml` file of a folder (sorted by name)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        if not files:
            raise DefinitionsError([("", "no *.yaml file in this folder")], str(path))
    elif path.is_file():
        files = [path]
    else:
        raise DefinitionsError([("", "no such file or folder")], str(path))
    merged: dict[str, list[Any]] = {section: [] for section in SECTIONS}
    for file in files:
        for section, items in _read_yaml(file).items():
            if not isinstance(items, list):
                raise DefinitionsError([(section, "expected a list")], str(file))
            merged[section].extend(items)
    return parse(merged, str(path))


def to_json(definitions: Definitions) -> bytes:
    """Canonical JSON (sorted keys, no whitespace): equal definitions give equal bytes, hence equal hashes."""
    return json.dumps(definitions.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()


def from_json(data: bytes, origin: str = "") -> Definitions:
    return parse(json.loads(data), origin)
