"""Where a home's Prefect server keeps its tables: SQLite under the home (the default), or PostgreSQL.

Prefect's SQLite server lets one writer at a time, which bounds run creation
(``bench/webhooks.py``, ``bench/scale.py``); Prefect's own answer for production
is a PostgreSQL-backed server. ``agentparty up --state-db postgres`` records the
home's choice in ``HOME/postgres/state-db`` (the file ``runtime/state_backend.py``
reads for engine state too), so every later command that starts the local Prefect
server of that home (``up``, ``run``, ``api``… through ``use_prefect_api``)
starts it on PostgreSQL again, and the engine state goes with it.

The marker says where:

* ``local``: the home's own cluster (``runtime/postgres_server.py``), started on
  demand; Prefect's tables in its database ``prefect``, engine state in
  ``agentparty`` beside it.
* ``external``: the server ``AGENTPARTY_STATE_DB_URL`` names. Engine state lives
  in the URL's own database; Prefect's tables go in a database ``prefect`` on the
  same server, with the same credentials. That role must be allowed to connect
  to ``prefect`` and to create tables in it (Prefect migrates its schema at
  start); if ``prefect`` does not exist the role needs ``CREATEDB`` to make it,
  else an administrator creates it once (``CREATE DATABASE prefect OWNER <role>``).

When ``AGENTPARTY_STATE_DB_URL`` is set it wins over the home's own cluster, as
it does for engine state, so that both always live on the same server.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from agentparty.runtime.postgres_server import LocalPostgres
from agentparty.runtime.state_backend import STATE_DATABASE

PREFECT_DATABASE = "prefect"
"""The database Prefect's server keeps its tables in, on the home's cluster or on ``AGENTPARTY_STATE_DB_URL``'s server."""

StateDbChoice = Literal["sqlite", "local", "external"]


def marker_file(home: Path) -> Path:
    return home / "postgres" / "state-db"


def chosen_state_db(home: Path) -> StateDbChoice:
    """What ``agentparty up --state-db`` chose for this home: ``sqlite`` until it was asked for PostgreSQL."""
    try:
        text = marker_file(home).read_text().strip()
    except OSError:
        return "sqlite"
    return "external" if text == "external" else "local"


def choose_postgres(home: Path, *, external: bool) -> None:
    """Record that this home keeps Prefect's tables and its engine state on PostgreSQL from now on."""
    marker = marker_file(home)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("external\n" if external else "local\n")


def _with_database(url: str, database: str, driver: str) -> str:
    """``url`` (any ``postgres``/``postgresql[+driver]`` scheme) pointing at ``database`` through ``driver``."""
    parts = urlsplit(url)
    return urlunsplit((driver, parts.netloc, f"/{database}", parts.query, parts.fragment))


def asyncpg_url(url: str) -> str:
    """libpq's ``sslmode`` as asyncpg's ``ssl`` (SQLAlchemy passes query parameters to ``asyncpg.connect``, which
    takes the same mode names); other libpq TLS parameters have Prefect's own settings
    (``PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_*``) and are refused here rather than ignored."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    unknown = sorted({key for key, _ in query if key.startswith("ssl") and key != "sslmode"})
    if unknown:
        raise RuntimeError(
            f"AGENTPARTY_STATE_DB_URL: {', '.join(unknown)} cannot be passed to Prefect's server: "
            "set PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_* instead"
        )
    renamed = [("ssl" if key == "sslmode" else key, value) for key, value in query]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(renamed), parts.fragment))


@dataclass(frozen=True)
class PrefectDatabase:
    """Prefect's PostgreSQL database: on the home's cluster (``cluster``) or on the server at ``server_url``
    (neither: the home chose ``AGENTPARTY_STATE_DB_URL``'s server, which is not set now; refused at start)."""

    cluster: LocalPostgres | None = None
    server_url: str | None = None

    def prepare(self) -> str:
        """Start the home's cluster if it is ours, make sure database ``prefect`` exists; Prefect's asyncpg URL."""
        if self.cluster is not None:
            self.cluster.start()
            self.cluster.ensure_database(PREFECT_DATABASE)
            self.cluster.ensure_database(STATE_DATABASE)
            return self.cluster.url(PREFECT_DATABASE)
        if self.server_url is None:
            raise RuntimeError(
                "this home keeps Prefect's tables and its engine state on the PostgreSQL server of "
                "AGENTPARTY_STATE_DB_URL (chosen by `agentparty up --state-db postgres`), but it is not set"
            )
        url = asyncpg_url(_with_database(self.server_url, PREFECT_DATABASE, "postgresql+asyncpg"))
        _ensure_external_database(self.server_url, PREFECT_DATABASE)
        return url

    def describe(self) -> str:
        if self.cluster is not None:
            return f"PostgreSQL database {PREFECT_DATABASE!r} of this home's cluster (port {self.cluster.port})"
        if self.server_url is None:
            return "PostgreSQL at AGENTPARTY_STATE_DB_URL (not set)"
        parts = urlsplit(self.server_url)
        return f"PostgreSQL database {PREFECT_DATABASE!r} on {parts.hostname}:{parts.port or 5432}"


def _ensure_external_database(server_url: str, name: str) -> None:
    """Create ``name`` on the server unless it exists; a clear error when the role may not."""
    import psycopg  # deferred: the driver loads only where PostgreSQL is used

    libpq = _with_database(server_url, urlsplit(server_url).path.lstrip("/") or "postgres", "postgresql")
    try:
        with psycopg.connect(libpq, autocommit=True, connect_timeout=10) as connection:
            if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.errors.InsufficientPrivilege:
        raise RuntimeError(
            f"the role of AGENTPARTY_STATE_DB_URL may not create database {name!r} for Prefect's server: "
            f"grant it CREATEDB, or have an administrator run CREATE DATABASE {name} OWNER <that role>"
        ) from None
    except psycopg.OperationalError as exc:
        raise RuntimeError(f"cannot reach the PostgreSQL server of AGENTPARTY_STATE_DB_URL: {exc}") from None


def prefect_database(home: Path, state_db_url: str | None, cluster: LocalPostgres) -> PrefectDatabase | None:
    """Where this home's Prefect server keeps its tables: None for SQLite (the embedded default).

    Reads only the marker (no connection): every command builds the local services, most never start Prefect.
    """
    choice = chosen_state_db(home)
    if choice == "sqlite":
        return None
    if state_db_url:
        return PrefectDatabase(server_url=state_db_url)
    if choice == "external":
        return PrefectDatabase()  # refused when the server would start (``down`` and ``status`` still work)
    return PrefectDatabase(cluster=cluster)


def running_database_file(home: Path) -> Path:
    """What the running Prefect server of the home was started on (``sqlite`` or ``postgresql``)."""
    return home / "run" / "prefect-server.database"


def running_database(home: Path) -> str:
    """``postgresql`` or ``sqlite`` (also for a server started before this file was written)."""
    try:
        return running_database_file(home).read_text().strip() or "sqlite"
    except OSError:
        return "sqlite"
