"""Browser fixtures for the Prefect UI tests: Debian's Chromium (installed here when missing), driven by Playwright.

Playwright drives the system Chromium (``/usr/bin/chromium``, Debian's package):
``playwright install`` downloads browsers, which these machines cannot do. A
fresh CI machine (Debian 12, root) lacks the package, so the session installs it
with apt-get, once (a file lock keeps concurrent pytest processes from racing),
and fails, never skips, when that is impossible. Only a missing ``playwright``
Python package skips (it comes with the ``test`` extra).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.apt_packages import ensure_binaries
from support.ui_support import UI_TIMEOUT_MS, artifacts_dir

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

log = logging.getLogger("agentparty.tests.ui")


_SESSION_STARTED = time.time()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The screenshots this session saved: read from the folder, as under pytest-xdist the workers took them."""
    taken = sorted(p for p in artifacts_dir().glob("*.png") if p.stat().st_mtime >= _SESSION_STARTED)
    if taken:
        terminalreporter.section("Prefect UI screenshots")
        for path in taken:
            terminalreporter.write_line(str(path))


def _say(config: pytest.Config, message: str) -> None:
    """Logged, and shown on the terminal even under output capture (an install takes a while)."""
    log.warning(message)
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        print(message, flush=True)
        return
    with capture.global_and_fixture_disabled():
        print(f"\n[ui tests] {message}", flush=True)


@pytest.fixture(scope="session")
def chromium(pytestconfig: pytest.Config) -> Path:
    """Debian's Chromium, installed with apt-get when missing (``support/apt_packages.py``: once, under a file
    lock); a test error when impossible."""
    if CHROMIUM.exists():
        return CHROMIUM
    log_path = artifacts_dir() / "chromium-install.log"
    _say(pytestconfig, f"{CHROMIUM} is missing: installing Debian's chromium package with apt-get (log: {log_path})")
    return Path(ensure_binaries({"chromium": "chromium"}, log_path)["chromium"])


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Any]:
    """One headless Chromium for the module.

    Playwright's sync API keeps an event loop running in this thread while it is
    open, so ``asyncio.run`` (Prefect client calls) fails until it closes: set up
    whatever talks to Prefect before this fixture. ``launch`` gives the browser a
    fresh temporary profile (user data dir) and removes it on close.
    """
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright package is not installed (it comes with the test extra)"
    )
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page in a context of its own (no state shared between tests), with generous waits."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(UI_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()
