"""The real browser the browser tests drive: Playwright pointed at the system's chromium (Playwright's
own browser download is not reachable here), `TRACEKD_CHROMIUM` or /usr/bin/chromium. Without it a
browser test is skipped on a developer machine and FAILS where TRACEKD_REQUIRE_BROWSER is set (CI:
.ci/run installs chromium and sets it)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("TRACEKD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
REQUIRE = bool(os.environ.get("TRACEKD_REQUIRE_BROWSER"))


def need_browser() -> None:
    """Skip without playwright or chromium; fail instead where TRACEKD_REQUIRE_BROWSER is set."""
    missing = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "the playwright package is not installed"
    if missing is None and not Path(CHROMIUM).is_file():
        missing = f"no chromium at {CHROMIUM} (apt-get install -y chromium, or set TRACEKD_CHROMIUM)"
    if missing:
        if REQUIRE:
            pytest.fail(f"{missing} and TRACEKD_REQUIRE_BROWSER is set")
        pytest.skip(missing)
