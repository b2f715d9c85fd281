"""The demo's terminal output: timeline events stamped with seconds since the stream started (kept in the result
and printed), plain lines, and one live status line."""

from __future__ import annotations

import threading
import time
from typing import TextIO

from mlops_tools.console import StatusLine
from mlops_tools.demo.summary import DemoResult, TimelineEvent

__all__ = ["Timeline"]


class Timeline:
    def __init__(self, result: DemoResult, out: TextIO):
        self.result = result
        self.ui = StatusLine(out)
        self._t0: float | None = None  # monotonic start of the stream
        self._lock = threading.Lock()

    def start_clock(self) -> None:
        self._t0 = time.monotonic()

    def now(self) -> float:
        """Seconds since the stream started (0 before)."""
        return 0.0 if self._t0 is None else time.monotonic() - self._t0

    def event(self, what: str) -> None:
        """A timeline event: recorded in the result and printed with its time."""
        t = self.now()
        with self._lock:
            self.result.timeline.append(TimelineEvent(t, what))
        self.ui.event(f"[{t:7.1f}s] {what}")

    def say(self, what: str) -> None:
        """A plain line (set-up steps), not part of the timeline."""
        self.ui.event(what)

    def status(self, line: str) -> None:
        self.ui.status(line)

    def clear(self) -> None:
        self.ui.clear()
