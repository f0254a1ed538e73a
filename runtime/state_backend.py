"""Where the engine's own state lives: SQLite files on one machine, or one PostgreSQL schema every host reaches.

One interface, two implementations, chosen by settings (:func:`state_backend`):

* :class:`SqliteBackend`, the embedded default: one file per store under
  ``AGENTPARTY_HOME/state`` (``runtime/state_db.py``); a write transaction is
  ``BEGIN IMMEDIATE``, which locks the whole file, so a read-modify-write can
  never interleave with another.
* :class:`PostgresBackend`, when ``AGENTPARTY_STATE_DB_URL`` is set or
  ``agentparty up --state-db postgres`` made the home's cluster: every store's
  tables in the schema ``agentparty`` of one database. A transaction locks only
  what it touches, so a read-modify-write names its rows: ``SELECT … FOR UPDATE``
  (:attr:`StateBackend.for_update`) after making sure the row exists, and a
  queue claims with ``FOR UPDATE SKIP LOCKED`` (:attr:`StateBackend.skip_locked`),
  which SQLite has no need for (its clauses are empty strings there).

Stores write their SQL once, in the common subset (``?`` placeholders, ``ON
CONFLICT … DO UPDATE``, ``RETURNING``), and their schema as versioned
:class:`Migration` s with a statement for each dialect; each store's applied
version is kept in ``schema_versions``.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol

from agentparty.runtime.schema_versions import MigrationPolicy, migrate_store
from agentparty.runtime.state_db import state_db

Dialect = Literal["sqlite", "postgresql"]
SCHEMA = "agentparty"


class Rows(Protocol):
    """What ``execute`` returns on both backends (a DB-API cursor)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class StateConnection(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Rows: ...


@dataclass(frozen=True)
class Migration:
    """One schema version of a store: the statements that bring it there, per dialect (``;``-separated)."""

    version: int
    sqlite: str
    postgresql: str

    def statements(self, dialect: Dialect) -> list[str]:
        text = self.sqlite if dialect == "sqlite" else self.postgresql
        return [part.strip() for part in text.split(";") if part.strip()]


class StateBackend(Protocol):
    @property
    def dialect(self) -> Dialect: ...

    @property
    def for_update(self) -> str:
        """`` FOR UPDATE`` where rows are locked one by one (PostgreSQL); empty where the transaction locks all."""
        ...

    @property
    def skip_locked(self) -> str:
        """`` FOR UPDATE SKIP LOCKED`` for claiming queue rows (PostgreSQL); empty on SQLite."""
        ...

    def transaction(self, store: str, *, write: bool = False) -> Any:
        """A context manager yielding a :class:`StateConnection`: committed on exit, rolled back on error."""
        ...

    def migrate(self, store: str, migrations: Sequence[Migration]) -> int:
        """Apply the store's migrations not applied yet, in order; the version it is at after."""
        ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class SqliteBackend:
    """One SQLite file per store under ``folder`` (``AGENTPARTY_HOME/state``), or every store in one ``file``."""

    folder: Path
    file: Path | None = None
    """A store built on a path of its own (``BudgetLedger(tmp_path / "budgets.sqlite")``) keeps it."""
    dialect: Dialect = "sqlite"
    for_update: str = ""
    skip_locked: str = ""
    policy: MigrationPolicy = field(default_factory=MigrationPolicy)
    """How schema upgrades are applied (``versioning.migrationStrategy``; ``runtime/schema_versions.py``)."""

    @classmethod
    def of_file(cls, path: Path) -> SqliteBackend:
        return cls(path.parent, file=path)

    def path(self, store: str) -> Path:
        return self.file or self.folder / f"{store}.sqlite"

    @contextmanager
    def transaction(self, store: str, *, write: bool = False) -> Iterator[StateConnection]:
        with state_db(self.path(store), write=write) as db:
            yield db

    def migrate(self, store: str, migrations: Sequence[Migration]) -> int:
        return migrate_store(self, store, migrations, self.policy)

    def describe(self) -> str:
        return f"SQLite file {self.file}" if self.file else f"SQLite files under {self.folder}"


_PLACEHOLDER = re.compile(r"\?")


@lru_cache(maxsize=1024)
def _to_pyformat(sql: str) -> str:
    """``?`` placeholders to psycopg's ``%s`` (a literal ``%`` doubled first); our SQL has no ``?`` in strings."""
    return _PLACEHOLDER.sub("%s", sql.replace("%", "%%"))


class _PgConnection:
    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Rows:
        cursor: Rows = self._connection.execute(_to_pyformat(sql), tuple(params), prepare=True)
        return cursor


class PostgresBackend:
    """Every store's tables in the schema ``agentparty`` of one PostgreSQL database, over a per-process pool."""

    dialect: Dialect = "postgresql"
    for_update = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, *, max_size: int = 8, policy: MigrationPolicy | None = None) -> None:
        self.url = _libpq_url(url)
        self.max_size = max_size
        self.policy = policy or MigrationPolicy()
        self._pool: Any = None
        self._pool_pid = 0
        self._guard = threading.Lock()

    def _connections(self) -> Any:
        """This process's pool (a forked child must not share its parent's sockets: it opens its own)."""
        with self._guard:
            if self._pool is None or self._pool_pid != os.getpid():
                from psycopg_pool import ConnectionPool  # deferred: the driver loads only where PostgreSQL is used

                self._pool = ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=self.max_size,
                    kwargs={"options": f"-c search_path={SCHEMA}", "autocommit": False},
                    open=True,
                    name="agentparty-state",
                    check=ConnectionPool.check_connection,
                )
                self._pool_pid = os.getpid()
                with self._pool.connection() as connection:
                    connection.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            return self._pool

    @contextmanager
    def transaction(self, store: str, *, write: bool = False) -> Iterator[StateConnection]:
        del store, write  # one database; PostgreSQL locks what each statement touches
        with self._connections().connection() as connection, connection.transaction():
            yield _PgConnection(connection)

    def migrate(self, store: str, migrations: Sequence[Migration]) -> int:
        return migrate_store(self, store, migrations, self.policy)

    def close(self) -> None:
        with self._guard:
            if self._pool is not None and self._pool_pid == os.getpid():
                self._pool.close()
            self._pool = None

    def describe(self) -> str:
        return f"PostgreSQL schema {SCHEMA!r} at {_without_password(self.url)}"


def _libpq_url(url: str) -> str:
    """SQLAlchemy-style ``postgresql+asyncpg://`` (what Prefect takes) to the libpq form psycopg takes."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


def _without_password(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


_backends: dict[tuple[str, MigrationPolicy], PostgresBackend] = {}
_backends_guard = threading.Lock()


def postgres_backend(url: str, policy: MigrationPolicy | None = None) -> PostgresBackend:
    """One backend (one pool) per URL per process: stores built anywhere in the process share it."""
    policy = policy or MigrationPolicy()
    with _backends_guard:
        backend = _backends.get((url, policy))
        if backend is None:
            backend = _backends[(url, policy)] = PostgresBackend(url, policy=policy)
        return backend


def as_backend(where: StateBackend | Path) -> StateBackend:
    """A store's constructor argument: a backend, or the path of a SQLite file of its own."""
    return SqliteBackend.of_file(where) if isinstance(where, Path) else where


STATE_DATABASE = "agentparty"
"""The database the home's own cluster keeps engine state in (Prefect's server has ``prefect`` beside it)."""


_started_clusters: set[Path] = set()


class StateDatabaseMissing(RuntimeError):
    """The home chose a PostgreSQL server for its state that this process has no address for."""


def local_state_url(home: Path) -> str | None:
    """The home's cluster, when ``agentparty up --state-db postgres`` chose it for engine state (a marker file),
    started when it is not running (as the home's Prefect server is); None for a home that never chose it.

    A home that chose the server of ``AGENTPARTY_STATE_DB_URL`` (marker ``external``) while the variable is not
    set is refused: falling back to SQLite would quietly split its state in two.
    """
    from agentparty.runtime.postgres_server import LocalPostgres  # deferred: only homes that chose PostgreSQL

    try:
        chosen = (home / "postgres" / "state-db").read_text().strip()
    except OSError:
        return None
    if chosen == "external":
        raise StateDatabaseMissing(
            f"{home} keeps its engine state on the PostgreSQL server of AGENTPARTY_STATE_DB_URL "
            "(chosen by `agentparty up --state-db postgres`), but it is not set in this process"
        )
    cluster = LocalPostgres(home)
    if cluster.record is None:
        return None
    if home not in _started_clusters:  # once per process: a stopped cluster (`agentparty down`) comes back
        cluster.start()
        _started_clusters.add(home)
    return cluster.url(STATE_DATABASE, driver="postgresql")


def resolve_state_backend(home: Path, url: str | None, policy: MigrationPolicy | None = None) -> StateBackend:
    """PostgreSQL at ``url`` (``AGENTPARTY_STATE_DB_URL``), else the home's chosen cluster, else SQLite files."""
    url = url or local_state_url(home)
    if url:
        return postgres_backend(url, policy)
    return SqliteBackend(home / "state", policy=policy or MigrationPolicy())
