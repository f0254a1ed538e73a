"""Small JSON documents kept per run key in the engine's state database (a run's team, the version it began with).

A resumed run must find what its first attempt decided even when the world has
changed since (the graph grew, a better model was crowned, the workflow was
redeployed), so such decisions are written once and read back by run key. They
live in the state backend (``runtime/state_backend.py``): with PostgreSQL, a run
that began on one host and resumes on another finds them too. Documents written
by earlier versions as files under ``AGENTPARTY_HOME/state/<kind>/`` are still
read when the database has none.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from agentparty.runtime.state_backend import Migration, StateBackend

STORE = "run_documents"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS run_documents (kind TEXT NOT NULL, run_key TEXT NOT NULL, body TEXT NOT NULL, "
    "PRIMARY KEY (kind, run_key))"
)
MIGRATIONS = (Migration(1, sqlite=_SCHEMA, postgresql=_SCHEMA),)


class RunDocuments:
    """The documents of one kind, by run key."""

    def __init__(self, home: Path, kind: str, backend: StateBackend | None = None) -> None:
        if backend is None:
            from agentparty.runtime.settings import state_backend_at  # deferred: settings import this module's layer

            backend = state_backend_at(home)
        self.backend = backend
        self.kind = kind
        self.folder = home / "state" / kind
        backend.migrate(STORE, MIGRATIONS)

    def legacy_path(self, run_key: str) -> Path:
        """Where versions before the state database kept the document (read only)."""
        return self.folder / f"{hashlib.sha256(run_key.encode()).hexdigest()[:32]}.json"

    def read(self, run_key: str) -> str | None:
        with self.backend.transaction(STORE) as db:
            row = db.execute(
                "SELECT body FROM run_documents WHERE kind = ? AND run_key = ?", (self.kind, run_key)
            ).fetchone()
        if row is not None:
            return str(row[0])
        legacy = self.legacy_path(run_key)
        return legacy.read_text() if legacy.is_file() else None

    def write(self, run_key: str, text: str) -> None:
        with self.backend.transaction(STORE, write=True) as db:
            db.execute(
                "INSERT INTO run_documents VALUES (?, ?, ?) ON CONFLICT(kind, run_key) DO UPDATE SET body = excluded.body",
                (self.kind, run_key, text),
            )

    def write_once(self, run_key: str, text: str) -> str:
        """Keep ``text`` unless a document is there already; the one kept (two hosts racing agree on one)."""
        with self.backend.transaction(STORE, write=True) as db:
            db.execute(
                "INSERT INTO run_documents VALUES (?, ?, ?) ON CONFLICT(kind, run_key) DO NOTHING",
                (self.kind, run_key, text),
            )
            row = db.execute(
                "SELECT body FROM run_documents WHERE kind = ? AND run_key = ?", (self.kind, run_key)
            ).fetchone()
        return str(row[0])
