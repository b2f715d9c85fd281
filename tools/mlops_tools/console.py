"""Live output of the command line and the demo: one status line that rewrites itself on a terminal and becomes
periodic plain lines otherwise (logs, CI), with event lines that always print."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

__all__ = ["Progress", "StatusLine"]


class StatusLine:
    """One-line live status on a terminal; plain periodic lines otherwise. Event lines always print."""

    def __init__(self, out: TextIO, every_s: float = 5.0):
        self.out = out
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.every_s = every_s
        self._last = -1e9
        self._shown = False
        self._lock = threading.Lock()  # the demo's threads print through one StatusLine

    def event(self, line: str) -> None:
        with self._lock:
            self._erase()
            self.out.write(line + "\n")
            self.out.flush()

    def status(self, line: str, *, force: bool = False) -> None:
        """Show `line`: rewrites the status on a terminal; otherwise prints it when `every_s` has passed since the
        last printed one, or at once with `force` (a new stage is worth a line)."""
        with self._lock:
            now = time.monotonic()
            if self.tty:
                self.out.write("\r\033[K" + line[:160])
                self._shown = True
                self.out.flush()
            elif force or now - self._last >= self.every_s:
                self.out.write(line + "\n")
                self.out.flush()
                self._last = now

    def clear(self) -> None:
        """Erase the status line (a terminal only)."""
        with self._lock:
            self._erase()
            self.out.flush()

    def keep(self) -> None:
        """Leave the status line on screen and move below it (a terminal only)."""
        with self._lock:
            if self.tty:
                self.out.write("\n")
                self.out.flush()
                self._shown = False

    def _erase(self) -> None:
        if self._shown:
            self.out.write("\r\033[K")
            self._shown = False


class Progress:
    """Progress of a long step, called as `progress(stage, fraction)`: a bar on a terminal, a line per stage (or
    every `every_s` seconds) otherwise; `done()` ends it."""

    def __init__(self, stream: TextIO | None = None, every_s: float = 5.0):
        self.line = StatusLine(stream or sys.stderr, every_s)
        self.started = time.monotonic()
        self._stage = ""

    def __call__(self, stage: str, fraction: float) -> None:
        elapsed = time.monotonic() - self.started
        fraction = min(max(fraction, 0.0), 1.0)
        if self.line.tty:
            filled = int(fraction * 30)
            text = f"[{'#' * filled}{'.' * (30 - filled)}] {fraction * 100:5.1f}% {elapsed:6.1f}s {stage:<40.40}"
        else:
            text = f"[{elapsed:7.1f}s] {fraction * 100:5.1f}% {stage}"
        self.line.status(text, force=stage != self._stage)
        self._stage = stage

    def done(self) -> None:
        self.line.keep()
