"""Command-line tools the test suite drives, installed on demand so a bare CI machine has them.

The suite's rule (tests/README.md): a test whose tool is missing is skipped with the way to install it, and under
`CI=true` that skip fails the run. So every tool a test needs is named here with how the project gets it:

- Go tools with `go install` from the Go module proxy, through `mlops_tools.stack.go_tool` (cached under
  `~/.cache/mlops/bin`);
- Debian packages with `apt-get install` (root; `apt-get update` first when the package lists are stale).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mlops.errors import MlopsError

from mlops_tools.stack import exclusive, go_tool

__all__ = ["TOOLS", "TestTool", "ToolUnavailable", "ensure_tool"]

log = logging.getLogger("mlops_tools.testtools")


class ToolUnavailable(MlopsError):
    """A tool a test needs is missing and could not be installed; the message says how to install it."""

    def __init__(self, tool: TestTool, why: str):
        self.tool = tool
        super().__init__(f"{tool.binary} is not available ({why}); install it: {tool.how_to_install}")


@dataclass(frozen=True)
class TestTool:
    __test__ = False  # not a pytest test class, whatever its name

    binary: str
    go_package: str = ""  # module/cmd@version, installed with `go install`
    apt_package: str = ""  # Debian package

    @property
    def how_to_install(self) -> str:
        if self.go_package:
            return f"go install {self.go_package} (Go from https://go.dev/dl), or put `{self.binary}` on PATH"
        return f"apt-get install -y {self.apt_package} (Debian/Ubuntu), or put `{self.binary}` on PATH"


TOOLS: dict[str, TestTool] = {
    tool.binary: tool
    for tool in (
        TestTool("grpc-health-probe", go_package="github.com/grpc-ecosystem/grpc-health-probe@v0.4.61"),
        TestTool("kubeconform", go_package="github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0"),
        TestTool("kustomize", go_package="sigs.k8s.io/kustomize/kustomize/v5@v5.8.2"),  # v5.8.3 needs Go >= 1.27
        TestTool("kcat", apt_package="kcat"),
        TestTool("redis-server", apt_package="redis-server"),
    )
}


def ensure_tool(name: str, timeout: float = 900.0) -> Path:
    """The path of tool `name` (a key of TOOLS): on PATH, in the tool cache, or installed now. Raises
    ToolUnavailable naming why and how to install it."""
    tool = TOOLS[name]
    found = shutil.which(tool.binary)
    if found:
        return Path(found)
    if tool.go_package:
        path = go_tool(tool.go_package, tool.binary, timeout=timeout)
        if path is None:
            raise ToolUnavailable(tool, "no Go toolchain, or `go install` failed (logged)")
        return path
    _apt_install(tool, timeout)
    found = shutil.which(tool.binary)
    if found is None:
        raise ToolUnavailable(tool, f"still not on PATH after apt-get install {tool.apt_package}")
    return Path(found)


def _apt_install(tool: TestTool, timeout: float) -> None:
    if tool.binary == "redis-server":  # the stack's own installer keeps Debian's daemon off the stack's port
        from mlops_tools.stack import _install_redis

        try:
            _install_redis()
        except MlopsError as exc:
            raise ToolUnavailable(tool, str(exc)) from exc
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ToolUnavailable(tool, "apt-get needs root and a Debian-like system")
    with exclusive("mlops-apt"):  # one dpkg at a time: test workers may want tools at once
        if shutil.which(tool.binary) is None:
            _apt_get(tool, timeout)


def _apt_get(tool: TestTool, timeout: float) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", tool.apt_package]
    log.info("installing %s from Debian", tool.apt_package)
    done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=timeout)
    if done.returncode != 0:  # stale or empty package lists: update once, then try again
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True, env=env, timeout=timeout)
        done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=timeout)
    if done.returncode != 0:
        raise ToolUnavailable(tool, f"`{' '.join(install)}` failed: {(done.stdout + done.stderr)[-500:]}")
