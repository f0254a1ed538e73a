"""Which files on disk hold a text, read by ``grep`` in a child process, never by this one.

The state files under a home are SQLite databases that this test process may have open (``runtime/state_db.py``
keeps connections). Opening and closing any other descriptor on such a file, ``Path.read_bytes()`` included,
drops every POSIX lock this process holds on it (SQLite's "how to corrupt your database", §2.2): another process
then takes this one's WAL for abandoned and rebuilds the shared index under it. The full suite's
"database disk image is malformed" on the session home's ``conversations.sqlite`` came from exactly such a scan.
A child process's descriptors are its own, so its closing them leaves this process's locks alone.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def files_holding(text: str, *roots: Path) -> list[Path]:
    """The files under ``roots`` whose bytes contain ``text`` (as UTF-8)."""
    existing = [str(root) for root in roots if root.exists()]
    if not existing:
        return []
    found = subprocess.run(
        [
            "grep",
            "--recursive",
            "--files-with-matches",
            "--fixed-strings",
            "--binary-files=text",
            "--",
            text,
            *existing,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if found.returncode not in (0, 1):  # 1: nothing matched
        raise RuntimeError(f"grep failed ({found.returncode}): {found.stderr}")
    return sorted(Path(line) for line in found.stdout.splitlines() if line)
