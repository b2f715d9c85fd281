"""`python -m services NAME [ARGS...]`: run one service in the foreground, as `python -m services.NAME [ARGS...]`.

The container image's entry point: the image holds the runtime only, not the `mlops` command line, so compose.yaml
and deploy/ pass the service name as the command and this module runs it in the same process (signals and the exit
status are the service's own).
"""

from __future__ import annotations

import pkgutil
import runpy
import sys
from pathlib import Path

__all__ = ["main", "service_names"]


def service_names() -> tuple[str, ...]:
    """Every service package next to this module (each has its own `__main__`)."""
    here = Path(__file__).parent
    return tuple(sorted(m.name for m in pkgutil.iter_modules([str(here)])
                        if m.ispkg and (here / m.name / "__main__.py").exists()))


def main(argv: list[str]) -> int:
    names = service_names()
    if not argv or argv[0] not in names:
        given = f"unknown service {argv[0]!r}" if argv else "no service named"
        print(f"python -m services: {given}; run one of: {', '.join(names)}", file=sys.stderr)
        return 2
    name = argv[0]
    sys.argv = [f"services.{name}", *argv[1:]]  # the service sees its own arguments only
    runpy.run_module(f"services.{name}", run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
