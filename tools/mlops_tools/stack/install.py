"""Tools the stack installs on demand: Debian packages (redis-server) and Go command-line tools (jaeger, ghz)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from mlops.errors import MlopsError

__all__ = ["StackError", "apt_install", "exclusive", "go_tool", "require"]

log = logging.getLogger("mlops_tools.stack")


class StackError(MlopsError):
    """The stack could not be brought up; the message says what to do."""


@contextlib.contextmanager
def exclusive(name: str, folder: Path | None = None) -> Iterator[None]:
    """Held by one process of this host at a time (an flock on `folder`/`name`.lock, default the temp folder): two
    `mlops stack up`, or test workers installing the same tool, take turns instead of racing dpkg or a build."""
    folder = Path(tempfile.gettempdir()) if folder is None else folder
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        yield


def go_tool(package: str, binary: str, timeout: float = 900.0, replace: Mapping[str, str] | None = None) -> Path | None:
    """A Go command-line tool that benchmarks, tests and the stack use (ghz, grpc-health-probe, jaeger): on PATH,
    in the tool cache, or installed there now from the Go module proxy (`package` is `module/cmd@version`). A module
    whose go.mod has `replace` directives cannot be `go install`ed by version: pass them as `replace` and it is built
    inside a throwaway module instead (`go get -tool`, then `go build`). None when Go is missing or the build fails
    (logged with go's own message)."""
    found = shutil.which(binary)
    if found:
        return Path(found)
    from mlops_tools.stack import StackSettings

    bin_dir = StackSettings().cache_dir.expanduser() / "bin"
    cached = bin_dir / binary
    if cached.exists():
        return cached
    if shutil.which("go") is None:
        log.warning("go not found: cannot install %s", package)
        return None
    with exclusive(f"mlops-go-{binary}"):
        return cached if cached.exists() else _go_build(package, cached, timeout, replace)


def _go_build(package: str, cached: Path, timeout: float, replace: Mapping[str, str] | None) -> Path | None:
    bin_dir = cached.parent
    bin_dir.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"GOBIN": str(bin_dir), "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    if replace is None:
        steps = [["go", "install", package]]
    else:
        steps = [["go", "mod", "init", "mlops.local/tool-build"],
                 *(["go", "mod", "edit", f"-replace={old}={new}"] for old, new in replace.items()),
                 ["go", "get", "-tool", package],
                 ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(cached), package.split("@")[0]]]
    with tempfile.TemporaryDirectory(prefix="go-tool-") as workdir:
        log.info("building %s with go (once; cached in %s)", package, bin_dir)
        for step in steps:
            done = subprocess.run(step, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
            if done.returncode != 0:
                log.warning("%s failed: %s", " ".join(step), done.stderr[-1000:])
                return None
    return cached if cached.exists() else None


def require(binary: str, message: str) -> None:
    if shutil.which(binary) is None:
        raise StackError(f"{binary} not found: {message}")


def apt_install(package: str, binary: str, *, recommends: bool = False) -> str:
    """Install Debian's `package` for `binary` (needs root; `apt-get update` first when the package lists are
    empty; its recommended packages too when `recommends`) and return the binary's path. One dpkg at a time on the
    host (test workers may want tools at once). The package's own daemon is kept from starting, or stopped: the
    stack runs its own under the run folder. The project's one Debian installer (stack, test tools, browser)."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise StackError(f"{binary} not found; install it (Debian: apt-get install {package})")
    with exclusive("mlops-apt"):
        return shutil.which(binary) or _apt_install(package, binary, recommends)


def _apt_install(package: str, binary: str, recommends: bool) -> str:
    log.info("installing %s from Debian", package)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # policy-rc.d exit 101 keeps the package from starting its own daemon on our port; we start it ourselves
    policy = Path("/usr/sbin/policy-rc.d")
    added_policy = not policy.exists()
    if added_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        for cmd in (["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", *([] if recommends else ["--no-install-recommends"]),
                     package]):
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise StackError(f"{' '.join(cmd)} failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
    finally:
        if added_policy:
            policy.unlink(missing_ok=True)
    # the package may still start its own daemon (seen here with redis-server despite policy-rc.d); it is ours to
    # stop, we just installed it
    if Path(f"/etc/init.d/{package}").exists():
        subprocess.run([f"/etc/init.d/{package}", "stop"], capture_output=True)
    path = shutil.which(binary)
    if path is None:
        raise StackError(f"{binary} still not found after apt-get install {package}")
    return path
