"""A real headless browser for the console's tests: Debian's `chromium` and `chromium-driver`, installed with apt
when missing (as the stack installs `redis-server`), driven through selenium.

`browser_binaries()` returns the two paths or raises BrowserUnavailable saying what to install: a test that needs a
browser fails without one, it never skips.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mlops.errors import MlopsError

__all__ = ["BrowserBinaries", "BrowserUnavailable", "apt_install", "browser_binaries", "headless_chromium"]

log = logging.getLogger("mlops_tools.browser")
PACKAGES = ("chromium", "chromium-driver")


class BrowserUnavailable(MlopsError):
    """No chromium/chromedriver and no way to install them here."""


@dataclass(frozen=True)
class BrowserBinaries:
    chromium: Path
    chromedriver: Path


def apt_install(*packages: str) -> None:
    """`apt-get install -y` Debian packages (root only; `apt-get update` first, the lists may be empty)."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BrowserUnavailable(f"install {' '.join(packages)} (Debian: apt-get install {' '.join(packages)})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *packages]):
        log.info("running %s", " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0:
            raise BrowserUnavailable(f"{' '.join(cmd)} failed:\n{(proc.stdout + proc.stderr)[-2000:]}")


def _found() -> BrowserBinaries | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return BrowserBinaries(Path(chromium), Path(driver)) if chromium and driver else None


def browser_binaries() -> BrowserBinaries:
    """Debian's chromium and chromedriver, installed now when missing."""
    found = _found()
    if found is None:
        apt_install(*PACKAGES)
        found = _found()
    if found is None:
        raise BrowserUnavailable(f"chromium or chromedriver still missing after apt-get install {' '.join(PACKAGES)}")
    return found


def headless_chromium(width: int = 1400, height: int = 1000):  # type: ignore[no-untyped-def]
    """A selenium WebDriver on headless chromium (no sandbox: tests and CI run as root in a container)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binaries = browser_binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = str(binaries.chromium)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=str(binaries.chromedriver)), options=options)
