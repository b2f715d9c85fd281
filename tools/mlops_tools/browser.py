"""A real headless browser for the console's tests: Debian's `chromium` and `chromium-driver`, installed with apt
when missing (as the stack installs `redis-server`), driven through selenium.

`browser_binaries()` returns the two paths or raises BrowserUnavailable saying what to install: a test that needs a
browser fails without one, it never skips.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from mlops.errors import MlopsError

from mlops_tools.stack import StackError, apt_install

__all__ = ["BrowserBinaries", "BrowserUnavailable", "browser_binaries", "headless_chromium"]

PACKAGES = {"chromium": "chromium", "chromium-driver": "chromedriver"}  # Debian package: its binary


class BrowserUnavailable(MlopsError):
    """No chromium/chromedriver and no way to install them here."""


@dataclass(frozen=True)
class BrowserBinaries:
    chromium: Path
    chromedriver: Path


def _found() -> BrowserBinaries | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return BrowserBinaries(Path(chromium), Path(driver)) if chromium and driver else None


def browser_binaries() -> BrowserBinaries:
    """Debian's chromium and chromedriver, installed now when missing."""
    found = _found()
    if found is None:
        try:  # with its recommended packages (fonts): the pages are rendered as a user's browser would
            for package, binary in PACKAGES.items():
                apt_install(package, binary, recommends=True)
        except StackError as exc:
            raise BrowserUnavailable(str(exc)) from exc
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
