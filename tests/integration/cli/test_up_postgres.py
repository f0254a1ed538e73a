"""`agentparty up --state-db postgres`: Prefect's server and engine state on the home's own PostgreSQL cluster.

Through the installed CLI in a fresh home, with a free port for every service:
a run lands in Prefect's tables in the database ``prefect``, a later plain
``up`` keeps PostgreSQL, and ``down`` leaves no process of the home behind. Also:
the refusal while the home's server runs on SQLite, and a server of your own
(``AGENTPARTY_STATE_DB_URL``) getting a ``prefect`` database, or a clear refusal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from agentparty.cli import app
from agentparty.runtime.local_service import free_port
from agentparty.runtime.postgres_server import LocalPostgres
from agentparty.runtime.prefect_server import LocalPrefectServer

SCRIPT = Path(sys.executable).with_name("agentparty")


def service_env(home: Path) -> dict[str, str]:
    return {
        "AGENTPARTY_HOME": str(home),
        "AGENTPARTY_PREFECT_PORT": str(free_port()),
        "AGENTPARTY_GRAPH_PORT": str(free_port()),
        "AGENTPARTY_GRAPH_HTTP_PORT": str(free_port()),
        "AGENTPARTY_KAFKA_PORT": str(free_port()),
        "AGENTPARTY_POSTGRES_PORT": str(free_port()),
        "PATH": "/usr/bin:/bin",
    }


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def pgrep(pattern: str) -> list[str]:
    ran = subprocess.run(["pgrep", "-f", "-a", pattern], capture_output=True, text=True)
    return [line for line in ran.stdout.splitlines() if "pgrep" not in line]


@pytest.mark.slow
def test_up_on_postgres_runs_a_workflow_and_down_leaves_nothing(tmp_path: Path, examples_dir: Path) -> None:
    home = tmp_path / "home"
    env = service_env(home)

    def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout)

    pids: dict[str, int] = {}
    try:
        up = cli("up", "--state-db", "postgres")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "PostgreSQL started" in up.stdout and "Prefect server started" in up.stdout, up.stdout
        assert "Prefect database: PostgreSQL database 'prefect'" in up.stdout, up.stdout
        assert "engine state: PostgreSQL schema 'agentparty'" in up.stdout, up.stdout
        assert "run results: in the state database" in up.stdout, up.stdout
        assert (home / "postgres" / "state-db").read_text().strip() == "local"
        cluster = LocalPostgres(home)
        record = cluster.record
        assert record is not None and record.port == int(env["AGENTPARTY_POSTGRES_PORT"])
        pids = {name: int((home / "run" / f"{name}.pid").read_text()) for name in ("postgres", "prefect-server")}
        server_env = Path(f"/proc/{pids['prefect-server']}/environ").read_bytes().split(b"\0")
        assert any(v.startswith(b"PREFECT_SERVER_DATABASE_CONNECTION_URL=postgresql+asyncpg://") for v in server_env)

        status = cli("status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert "Prefect database: PostgreSQL database 'prefect'" in status.stdout
        assert "PostgreSQL: running" in status.stdout and "engine state: PostgreSQL schema" in status.stdout

        run = cli("run", str(examples_dir / "research-report.yaml"), "--json")
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        flow_run_id = json.loads(run.stdout)["run_id"]
        with psycopg.connect(cluster.url("prefect", driver="postgresql")) as db:
            row = db.execute("SELECT state_type FROM flow_run WHERE id = %s", (flow_run_id,)).fetchone()
            assert row is not None and row[0] == "COMPLETED", row
            task_runs = db.execute("SELECT count(*) FROM task_run WHERE flow_run_id = %s", (flow_run_id,)).fetchone()
            assert task_runs is not None and task_runs[0] > 0
        # nothing of Prefect's went to SQLite under the home, and the run's results are in the state database
        assert not list((home / "prefect").glob("*.db"))
        assert not [p for p in (home / "results").glob("*") if p.is_file()], "results stayed on this host's disk"
        with psycopg.connect(cluster.url("agentparty", driver="postgresql")) as db:
            stored = db.execute("SELECT count(*) FROM agentparty.results").fetchone()
            assert stored is not None and stored[0] > 0

        # a later plain `up` keeps the home's choice (the server is restarted on PostgreSQL, not SQLite)
        assert LocalPrefectServer(home, port=int(env["AGENTPARTY_PREFECT_PORT"])).stop()
        again = cli("up")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "Prefect server started" in again.stdout and "PostgreSQL database 'prefect'" in again.stdout
        pids["prefect-server"] = int((home / "run" / "prefect-server.pid").read_text())
        with psycopg.connect(cluster.url("prefect", driver="postgresql")) as db:
            assert db.execute("SELECT count(*) FROM flow_run WHERE id = %s", (flow_run_id,)).fetchone() == (1,)
    finally:
        down = cli("down")
    assert "Prefect server stopped" in down.stdout and "PostgreSQL stopped" in down.stdout, down.stdout
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in pids.values()):
        time.sleep(0.2)
    assert pids and not [name for name, pid in pids.items() if alive(pid)]
    assert not list((home / "run").glob("*.pid"))
    record = LocalPostgres(home).record
    assert record is not None
    assert not pgrep(str(record.data_dir)), pgrep(str(record.data_dir))
    assert not pgrep(f"--port {env['AGENTPARTY_PREFECT_PORT']}")
    LocalPostgres(home).remove()


@pytest.fixture
def sqlite_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalPrefectServer]:
    from agentparty.runtime.settings import get_settings

    home = tmp_path / "home"
    server = LocalPrefectServer(home, port=free_port())
    monkeypatch.setenv("AGENTPARTY_HOME", str(home))
    monkeypatch.setenv("AGENTPARTY_PREFECT_PORT", str(server.port))
    monkeypatch.delenv("AGENTPARTY_STATE_DB_URL", raising=False)
    get_settings.cache_clear()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        get_settings.cache_clear()


@pytest.mark.slow
def test_up_on_postgres_refuses_while_the_sqlite_server_runs(sqlite_server: LocalPrefectServer) -> None:
    result = CliRunner().invoke(app, ["up", "--state-db", "postgres"])
    assert result.exit_code == 1
    assert "running on SQLite: stop it first with `agentparty down`" in result.output
    home = sqlite_server.home
    assert not (home / "postgres" / "state-db").exists() and not (home / "postgres" / "cluster.json").exists()
    assert sqlite_server.healthy()


def test_a_server_of_your_own_gets_a_prefect_database(postgres_cluster: LocalPostgres) -> None:
    """With AGENTPARTY_STATE_DB_URL, Prefect's tables go to database `prefect` on that server, made if missing."""
    from agentparty.runtime.prefect_database import PrefectDatabase

    admin = postgres_cluster.url("postgres", driver="postgresql")
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute("DROP DATABASE IF EXISTS prefect WITH (FORCE)")
        db.execute("DROP ROLE IF EXISTS limited")
        db.execute("CREATE ROLE limited LOGIN PASSWORD 'limited-pw'")
    state_url = admin
    limited_url = f"postgresql://limited:limited-pw@{postgres_cluster.host}:{postgres_cluster.port}/postgres"
    with pytest.raises(RuntimeError, match=r"may not create database 'prefect'.*CREATEDB"):
        PrefectDatabase(server_url=limited_url).prepare()

    url = PrefectDatabase(server_url=state_url).prepare()
    assert url.startswith("postgresql+asyncpg://") and url.endswith(f":{postgres_cluster.port}/prefect")
    assert PrefectDatabase(server_url=state_url).prepare() == url  # already there: left as it is
    with psycopg.connect(admin, autocommit=True) as db:
        assert db.execute("SELECT 1 FROM pg_database WHERE datname = 'prefect'").fetchone() == (1,)
        db.execute("DROP DATABASE prefect WITH (FORCE)")
        db.execute("DROP ROLE limited")
