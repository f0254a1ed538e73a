"""Persisted step results in the engine's state database, so that any worker on any host can resume a run.

Prefect persists every step, checkpoint and flow result through a result
storage block; by default a ``LocalFileSystem`` under ``AGENTPARTY_HOME/results``,
which only the host that wrote it can read. With engine state on PostgreSQL
(``runtime/state_backend.py``), :class:`StateResultStorage` keeps the same bytes
(already sealed by ``runtime/sealed_results.py``) in the table ``results`` of
that database instead, and :func:`share_results_through_server` makes it the
Prefect server's *default result storage*: every process that talks to that
server, the workers on every host included, then writes and reads results there
without any setting of its own, and the result records name the block, so a
run started on host A resumes on host B from A's results.

The block holds no address and no secret: each process reaches the database
through its own configuration (``AGENTPARTY_STATE_DB_URL``, or the home's
cluster), so no password is stored on the Prefect server. A process whose state
backend is not PostgreSQL refuses to read or write with a message naming the
setting, rather than looking in a SQLite file the other hosts never see.
Sealed results need the same data keys on every host (``AGENTPARTY_DATA_KEYS``).

The class is found by processes that have not imported it through the
``prefect.collections`` entry point in ``pyproject.toml``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar
from uuid import UUID

from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.filesystems import WritableFileSystem

from agentparty.runtime.state_backend import Migration, StateBackend

STORE = "results"
BLOCK_NAME = "shared"
MIGRATIONS = (
    Migration(
        1,
        sqlite="CREATE TABLE IF NOT EXISTS results (path TEXT PRIMARY KEY, content BLOB NOT NULL, "
        "written_at REAL NOT NULL)",
        postgresql="CREATE TABLE IF NOT EXISTS results (path TEXT PRIMARY KEY, content BYTEA NOT NULL, "
        "written_at DOUBLE PRECISION NOT NULL)",
    ),
)


_migrated: set[int] = set()
"""Backends (one per URL per process: ``state_backend.postgres_backend``) whose results table is known to exist."""


class SharedResultsUnavailable(RuntimeError):
    """This process has no PostgreSQL state backend, yet the Prefect server keeps results in one."""


def _shared_backend() -> StateBackend:
    from agentparty.runtime.settings import get_settings  # deferred: settings read where a result is touched

    backend = get_settings().state_backend()
    if backend.dialect != "postgresql":
        raise SharedResultsUnavailable(
            "this Prefect server keeps run results in the engine's PostgreSQL state database, but this process "
            "has none configured: set AGENTPARTY_STATE_DB_URL (or run `agentparty up --state-db postgres`)"
        )
    if id(backend) not in _migrated:  # once per backend and process, not on every result read or write
        backend.migrate(STORE, MIGRATIONS)
        _migrated.add(id(backend))
    return backend


class StateResultStorage(WritableFileSystem):
    """Prefect result storage in the table ``results`` of the engine's PostgreSQL state database."""

    _block_type_name: ClassVar[str] = "Agent Party state results"
    _block_type_slug: ClassVar[str] = "agentparty-state-results"
    _description: ClassVar[str] = (
        "Run results in Agent Party's PostgreSQL state database, reached through each process's own "
        "AGENTPARTY_STATE_DB_URL (no address or secret is stored in the block)."
    )

    def _read(self, path: str) -> bytes:
        backend = _shared_backend()
        with backend.transaction(STORE) as db:
            row = db.execute("SELECT content FROM results WHERE path = ?", (path,)).fetchone()
        if row is None:
            raise ValueError(f"no result stored at {path!r}")  # what LocalFileSystem raises for a missing file
        return bytes(row[0])

    def _write(self, path: str, content: bytes) -> str:
        import time

        backend = _shared_backend()
        with backend.transaction(STORE, write=True) as db:
            db.execute(
                "INSERT INTO results VALUES (?, ?, ?) ON CONFLICT(path) DO UPDATE SET content = excluded.content, "
                "written_at = excluded.written_at",
                (path, content, time.time()),
            )
        return path

    async def aread_path(self, path: str) -> bytes:
        return await asyncio.to_thread(self._read, path)

    @async_dispatch(aread_path)
    def read_path(self, path: str) -> bytes:  # type: ignore[override]  # sync or async by caller, as Prefect's own
        return self._read(path)

    async def awrite_path(self, path: str, content: bytes) -> str:
        return await asyncio.to_thread(self._write, path, content)

    @async_dispatch(awrite_path)
    def write_path(self, path: str, content: bytes) -> str:  # type: ignore[override]  # as LocalFileSystem's
        return self._write(path, content)


async def share_results_through_server(client: Any) -> UUID:
    """Save the block and make it the Prefect server's default result storage; returns the block's id."""
    block_id: UUID = await StateResultStorage().asave(BLOCK_NAME, overwrite=True, client=client)
    await client.update_server_default_result_storage(block_id)
    return block_id


def forget_shared_results(backend: StateBackend, paths: Sequence[str]) -> int:
    """Delete the stored results at these paths (the storage keys a run's states name); how many went.

    Retention and erasure (``flows/retention.py``) call this beside removing result files, so a run purged on
    PostgreSQL loses its results as one on a single machine does. A backend without the table has none to delete.
    """
    if backend.dialect != "postgresql" or not paths:
        return 0
    backend.migrate(STORE, MIGRATIONS)
    unique = sorted(set(paths))
    removed = 0
    with backend.transaction(STORE, write=True) as db:
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            removed += db.execute(f"DELETE FROM results WHERE path IN ({marks})", chunk).rowcount
    return removed
