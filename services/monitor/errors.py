"""The monitor's exceptions: one root under `MlopsError`, structured constructors."""

from __future__ import annotations

from mlops.errors import MlopsError


class MonitorError(MlopsError):
    """Root of the monitor's errors."""


class UnknownDetector(MonitorError):
    def __init__(self, name: str, choices: tuple[str, ...]):
        self.name = name
        self.choices = choices
        super().__init__(f"unknown drift detector {name!r}; choose one of {', '.join(choices)}")
