"""The console's errors: an upstream that cannot be reached, and an action that is not allowed."""

from __future__ import annotations

from mlops.errors import MlopsError

__all__ = ["ActionRefused", "ConsoleError", "Unreachable", "UpstreamError"]


class ConsoleError(MlopsError):
    """Root of the console's errors."""


class Unreachable(ConsoleError):
    """An upstream (the registry, Prometheus, Jaeger, Kafka) did not answer; the page shows this message."""

    def __init__(self, what: str, where: str, detail: str):
        super().__init__(f"{what} not reachable at {where}: {detail}")
        self.what, self.where, self.detail = what, where, detail


class UpstreamError(ConsoleError):
    """An upstream answered with a refusal (e.g. the registry's FAILED_PRECONDITION for a rollback)."""

    def __init__(self, what: str, detail: str):
        super().__init__(f"{what}: {detail}")
        self.what, self.detail = what, detail


class ActionRefused(ConsoleError):
    """A promote or rollback the console will not send: actions disabled, no admin token configured, or a wrong
    token."""

    def __init__(self, reason: str):
        super().__init__(f"action refused: {reason}")
        self.reason = reason
