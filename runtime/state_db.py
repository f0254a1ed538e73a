"""SQLite files under ``AGENTPARTY_HOME/state`` that every process on the machine shares.

Breakers, budgets and templates keep their state this way: WAL so readers do
not block the writer, a 30 s busy timeout so concurrent writers queue instead
of failing, and ``BEGIN IMMEDIATE`` for read-modify-write, which takes the write
lock before reading so two processes can never both act on the same old value.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_S = 30.0


@contextmanager
def state_db(path: Path, *, write: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection, closed on exit. With ``write``, one immediate transaction: committed, or rolled back on error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        if not write:
            yield db
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    finally:
        db.close()
