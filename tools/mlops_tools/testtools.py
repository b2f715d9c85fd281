"""Command-line tools the test suite drives, installed on demand so a bare CI machine has them.

The suite's rule (tests/README.md): a test whose tool is missing is skipped with the way to install it, and under
`CI=true` that skip fails the run. So every tool a test needs is named here with how the project gets it:

- Go tools with `go install` from the Go module proxy, through `mlops_tools.stack.go_tool` (cached under
  `~/.cache/mlops/bin`);
- Debian packages with `apt-get install` (root), through the stack's installer (`mlops_tools.stack.apt_install`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from mlops.errors import MlopsError

from mlops_tools.stack import StackError, apt_install, go_tool

__all__ = ["TOOLS", "TestTool", "ToolUnavailable", "ensure_tool"]


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
    try:  # the stack's installer: one dpkg at a time, and Debian's redis-server kept off the stack's port
        return Path(apt_install(tool.apt_package, tool.binary))
    except StackError as exc:
        raise ToolUnavailable(tool, str(exc)) from exc
