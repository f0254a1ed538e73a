"""Small JSON documents kept per run key under ``AGENTPARTY_HOME/state/<kind>/`` (a run's team, for one).

A resumed run must find what its first attempt decided even when the world has
changed since (the graph grew, a better model was crowned), so such decisions
are written here once and read back by run key. Files are named by a digest of
the key and replaced atomically.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from agentparty.runtime.model_files import atomic_write


class RunDocuments:
    """The documents of one kind, by run key."""

    def __init__(self, home: Path, kind: str) -> None:
        self.folder = home / "state" / kind

    def path(self, run_key: str) -> Path:
        return self.folder / f"{hashlib.sha256(run_key.encode()).hexdigest()[:32]}.json"

    def read(self, run_key: str) -> str | None:
        path = self.path(run_key)
        return path.read_text() if path.is_file() else None

    def write(self, run_key: str, text: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path(run_key), text)
