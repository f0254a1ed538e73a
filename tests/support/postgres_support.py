"""A real PostgreSQL cluster for the integration lane (``runtime/postgres_server.py``), and a fresh database per test.

PostgreSQL 15 is on these machines (DESIGN.md §5); where its binaries are
missing the fixtures fail with the reason instead of skipping: the storage tests
exist to run on both backends.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

from agentparty.runtime.local_service import free_port
from agentparty.runtime.postgres_server import LocalPostgres
from agentparty.runtime.state_backend import PostgresBackend, SqliteBackend, StateBackend


def started_cluster(home: Path) -> Iterator[LocalPostgres]:
    cluster = LocalPostgres(home, preferred_port=free_port())
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.remove()


def fresh_database(cluster: LocalPostgres, prefix: str = "t") -> str:
    """A new, empty database on ``cluster``; returns its libpq URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    cluster.ensure_database(name)
    return cluster.url(name, driver="postgresql")


def backend_on(cluster: LocalPostgres) -> Iterator[PostgresBackend]:
    """A state backend on a fresh database, its pool closed afterwards."""
    backend = PostgresBackend(fresh_database(cluster))
    try:
        yield backend
    finally:
        backend.close()


def backend_address(backend: StateBackend) -> tuple[str, str]:
    """How another process reaches the same store (a backend holds a pool, which does not cross processes)."""
    if isinstance(backend, PostgresBackend):
        return "postgres", backend.url
    assert isinstance(backend, SqliteBackend)
    return "sqlite", str(backend.folder)


def backend_at(kind: str, where: str) -> StateBackend:
    """The backend :func:`backend_address` named, rebuilt in this process."""
    return PostgresBackend(where) if kind == "postgres" else SqliteBackend(Path(where))
