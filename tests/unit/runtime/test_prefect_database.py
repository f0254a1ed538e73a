"""Which database a home's Prefect server gets: the marker `agentparty up --state-db postgres` leaves decides."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentparty.runtime.postgres_server import LocalPostgres
from agentparty.runtime.prefect_database import (
    PrefectDatabase,
    choose_postgres,
    chosen_state_db,
    prefect_database,
    running_database,
)
from agentparty.runtime.prefect_server import LocalPrefectServer


def test_a_new_home_keeps_prefect_on_sqlite(tmp_path: Path) -> None:
    assert chosen_state_db(tmp_path) == "sqlite"
    assert prefect_database(tmp_path, None, LocalPostgres(tmp_path)) is None
    # a URL for engine state alone does not move Prefect: only `up --state-db postgres` does
    assert prefect_database(tmp_path, "postgresql://u:p@db:5432/state", LocalPostgres(tmp_path)) is None
    assert running_database(tmp_path) == "sqlite"


def test_the_home_cluster_once_chosen(tmp_path: Path) -> None:
    choose_postgres(tmp_path, external=False)
    assert chosen_state_db(tmp_path) == "local"
    cluster = LocalPostgres(tmp_path)
    database = prefect_database(tmp_path, None, cluster)
    assert database == PrefectDatabase(cluster=cluster)


def test_an_external_server_puts_prefect_in_its_prefect_database(tmp_path: Path) -> None:
    choose_postgres(tmp_path, external=True)
    url = "postgresql://agent:s%40cret@db.internal:6432/engine?sslmode=require"
    database = prefect_database(tmp_path, url, LocalPostgres(tmp_path))
    assert database is not None and database.server_url == url
    assert database.describe() == "PostgreSQL database 'prefect' on db.internal:6432"


def test_an_external_choice_without_the_url_is_refused_at_start(tmp_path: Path) -> None:
    choose_postgres(tmp_path, external=True)
    database = prefect_database(tmp_path, None, LocalPostgres(tmp_path))
    assert database is not None  # `down` and `status` still build the services
    server = LocalPrefectServer(tmp_path, port=1, database=database)
    with pytest.raises(RuntimeError, match="AGENTPARTY_STATE_DB_URL"):
        server.start()


def test_libpq_sslmode_reaches_asyncpg_as_ssl() -> None:
    from agentparty.runtime.prefect_database import asyncpg_url

    url = "postgresql+asyncpg://agent:pw@db:5432/prefect?sslmode=require&application_name=x"
    assert asyncpg_url(url) == "postgresql+asyncpg://agent:pw@db:5432/prefect?ssl=require&application_name=x"
    with pytest.raises(RuntimeError, match="sslrootcert"):
        asyncpg_url("postgresql+asyncpg://agent:pw@db/prefect?sslmode=verify-full&sslrootcert=/ca.pem")
