"""Helpers of the Prefect UI tests (tests/integration/ui): where screenshots go, full-page screenshots of the Prefect UI."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from support.workflow_docs import REPO_ROOT

UI_TIMEOUT_MS = 60_000
"""How long a page may take to show what a test waits for (the SPA renders after its API calls)."""


def artifacts_dir() -> Path:
    """``$AGENTPARTY_TEST_ARTIFACTS/ui``, else ``test-artifacts/ui`` under the repository root."""
    root = Path(os.environ.get("AGENTPARTY_TEST_ARTIFACTS") or REPO_ROOT / "test-artifacts")
    folder = root / "ui"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


_SCROLL_HEIGHT_JS = """() => Math.max(document.documentElement.scrollHeight,
    ...Array.from(document.querySelectorAll('*'), e => {
        const s = getComputedStyle(e);
        return (s.overflowY === 'auto' || s.overflowY === 'scroll') ? e.scrollHeight + e.getBoundingClientRect().top : 0;
    }))"""


def full_page_screenshot(page: Any, name: str) -> Path:
    """The whole page, saved as ``NAME.png`` among the artifacts.

    The Prefect UI scrolls inside its router view, not the document, so Playwright's
    ``full_page`` alone stops at the viewport: the viewport grows to the content first.
    """
    path = artifacts_dir() / f"{name}.png"
    viewport = page.viewport_size
    height = min(int(page.evaluate(_SCROLL_HEIGHT_JS)), 12_000)
    if viewport and height > viewport["height"]:
        page.set_viewport_size({"width": viewport["width"], "height": height})
    try:
        page.screenshot(path=str(path), full_page=True)
    finally:
        if viewport:
            page.set_viewport_size(viewport)
    print(f"screenshot: {path}")
    return path
