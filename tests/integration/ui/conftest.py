"""Browser fixtures for the Prefect UI tests: Debian's Chromium (installed here when missing), driven by Playwright.

Playwright drives the system Chromium (``/usr/bin/chromium``, Debian's package):
``playwright install`` downloads browsers, which these machines cannot do. A
fresh CI machine (Debian 12, root) lacks the package, so the session installs it
with apt-get, once (a file lock keeps concurrent pytest processes from racing),
and fails, never skips, when that is impossible. Only a missing ``playwright``
Python package skips (it comes with the ``test`` extra).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import ui_support
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
INSTALL_LOCK = Path(tempfile.gettempdir()) / "agentparty-chromium-install.lock"
APT_TIMEOUT_S = 600

log = logging.getLogger("agentparty.tests.ui")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if ui_support.artifacts:
        terminalreporter.section("Prefect UI screenshots")
        for path in ui_support.artifacts:
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


def _install_chromium(config: pytest.Config, log_path: Path) -> str | None:
    """``apt-get update`` + ``apt-get install -y chromium``; None when it worked, else why not."""
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        return "apt-get is not available (not a Debian-family machine)"
    prefix: list[str] = []
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if sudo is None:
            return "not running as root and sudo is not available"
        prefix = [sudo, "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wait_for_lock = ["-o", "DPkg::Lock::Timeout=300"]  # another apt/dpkg run finishes first
    commands = [
        [*prefix, apt_get, *wait_for_lock, "update"],
        [*prefix, apt_get, *wait_for_lock, "install", "-y", "chromium"],
    ]
    with log_path.open("w") as out:
        for command in commands:
            _say(config, f"running: {' '.join(command)} (output in {log_path})")
            out.write(f"$ {' '.join(command)}\n")
            out.flush()
            started = time.monotonic()
            try:
                done = subprocess.run(
                    command, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=APT_TIMEOUT_S, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                return f"{' '.join(command)} failed: {exc}"
            _say(config, f"{' '.join(command)}: exit status {done.returncode} after {time.monotonic() - started:.0f} s")
            if done.returncode != 0:
                return f"{' '.join(command)} exited with {done.returncode}; last output:\n{_tail(log_path)}"
    return None


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def chromium(pytestconfig: pytest.Config) -> Path:
    """Debian's Chromium, installed with apt-get when missing (once, under a file lock); a test error when impossible."""
    if CHROMIUM.exists():
        return CHROMIUM
    log_path = artifacts_dir() / "chromium-install.log"
    with INSTALL_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest process may be installing it right now
        try:
            if CHROMIUM.exists():
                return CHROMIUM
            _say(pytestconfig, f"{CHROMIUM} is missing: installing Debian's chromium package with apt-get")
            started = time.monotonic()
            problem = _install_chromium(pytestconfig, log_path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    if problem is None and not CHROMIUM.exists():
        problem = f"apt-get reported success but {CHROMIUM} is still missing"
    if problem is not None:
        pytest.fail(
            f"The Prefect UI tests need Debian's Chromium at {CHROMIUM} and the test setup could not install it: "
            f"{problem}\nInstall it with: apt-get update && apt-get install -y chromium",
            pytrace=False,
        )
    _say(pytestconfig, f"installed {CHROMIUM} in {time.monotonic() - started:.0f} s")
    return CHROMIUM


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
