"""The monitor's exceptions: one root, structured constructors."""

from __future__ import annotations


class MonitorError(Exception):
    """Root of the monitor's errors."""


class UnknownDetector(MonitorError):
    def __init__(self, name: str, choices: tuple[str, ...]):
        self.name = name
        super().__init__(f"unknown drift detector {name!r}; choose one of {', '.join(choices)}")


class InvalidRecord(MonitorError):
    """A prediction or label the monitor cannot use (e.g. no model name); the edge skips and counts it."""

    def __init__(self, kind: str, detail: str):
        self.kind = kind
        self.detail = detail
        super().__init__(f"unusable {kind}: {detail}")
