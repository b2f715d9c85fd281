"""The suite's rule, tested on a throw-away test file with the root conftest loaded as a plugin: under CI=true a
skip (of a test or of a whole module) fails the run and names the reason; outside CI it is a plain skip, and an
expected failure (xfail) stays one either way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
PROBE = '''
import pytest

def test_needs_a_tool():
    pytest.skip("frobnicator is not available; install it: apt-get install -y frobnicator")

@pytest.mark.xfail(reason="known", strict=True)
def test_known_bug():
    assert False

def test_fine():
    pass
'''


def _run(tmp_path: Path, ci: str | None, source: str = PROBE) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | ({"CI": ci} if ci is not None else {})
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-q", "-rfEsx", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_probe.py")],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)


@pytest.mark.parametrize("ci", ["true", "1"])
def test_a_skip_fails_in_ci_with_its_reason(tmp_path: Path, ci: str) -> None:
    proc = _run(tmp_path, ci)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 1 passed, 1 xfailed" in proc.stdout, proc.stdout
    assert "install it: apt-get install -y frobnicator" in proc.stdout


def test_outside_ci_a_skip_says_how_to_install(tmp_path: Path) -> None:
    proc = _run(tmp_path, None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 1 skipped, 1 xfailed" in proc.stdout and "apt-get install -y frobnicator" in proc.stdout


def test_a_skipped_module_fails_in_ci(tmp_path: Path) -> None:
    proc = _run(tmp_path, "true", 'import pytest\npytest.importorskip("no_such_module_here")\n')
    assert proc.returncode != 0 and "no_such_module_here" in proc.stdout, proc.stdout
