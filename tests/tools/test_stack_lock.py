"""`mlops_tools.stack.exclusive`: one holder per host at a time (two `mlops stack up` on one run folder, two test
workers installing the same tool), seen by util-linux's own `flock`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from mlops_tools.stack import exclusive


def _free_for_others(lock: Path) -> bool:
    """Whether another process could take the lock now (`flock -n` fails at once while it is held)."""
    flock = shutil.which("flock")
    assert flock, "flock (util-linux) is on every Debian machine"
    return subprocess.run([flock, "-n", str(lock), "true"], capture_output=True).returncode == 0


def test_the_lock_is_held_inside_and_free_after(tmp_path: Path) -> None:
    lock = tmp_path / "stack-up.lock"
    with exclusive("stack-up", tmp_path):
        assert not _free_for_others(lock)
    assert _free_for_others(lock)


def test_the_lock_is_released_when_the_block_raises(tmp_path: Path) -> None:
    try:
        with exclusive("stack-up", tmp_path):
            raise RuntimeError("the start failed")
    except RuntimeError:
        pass
    assert _free_for_others(tmp_path / "stack-up.lock")
