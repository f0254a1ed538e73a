"""``versioning.migrationStrategy`` governs the state database's migrations, on both backends.

A store at version 1 holding data meets code that needs version 2: each
strategy, ``dataBackup`` and ``rollbackSupport`` change what happens.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agentparty.runtime.schema_versions import MigrationDeclined, MigrationPolicy, SchemaBehind, migrate_store
from agentparty.runtime.state_backend import Migration, StateBackend

V1 = Migration(1, sqlite="CREATE TABLE demo (a TEXT)", postgresql="CREATE TABLE demo (a TEXT)")
V2 = Migration(2, sqlite="ALTER TABLE demo ADD COLUMN b TEXT", postgresql="ALTER TABLE demo ADD COLUMN b TEXT")
BROKEN = Migration(
    3,
    sqlite="ALTER TABLE demo ADD COLUMN c TEXT; ALTER TABLE no_such_table ADD COLUMN d TEXT",
    postgresql="ALTER TABLE demo ADD COLUMN c TEXT; ALTER TABLE no_such_table ADD COLUMN d TEXT",
)


def _store_at_v1(backend: StateBackend) -> None:
    migrate_store(backend, "demo", [V1], MigrationPolicy())
    with backend.transaction("demo", write=True) as db:
        db.execute("INSERT INTO demo VALUES (?)", ("kept",))


def _columns(backend: StateBackend) -> list[str]:
    with backend.transaction("demo") as db:
        if backend.dialect == "sqlite":
            return [row[1] for row in db.execute("PRAGMA table_info(demo)").fetchall()]
        rows = db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'agentparty' "
            "AND table_name = 'demo' ORDER BY ordinal_position"
        ).fetchall()
        return [row[0] for row in rows]


def test_creating_a_store_is_allowed_under_every_strategy(state_backend: StateBackend) -> None:
    assert migrate_store(state_backend, "demo", [V1, V2], MigrationPolicy("manual")) == 2


def test_automatic_upgrades_when_the_store_is_opened(state_backend: StateBackend) -> None:
    _store_at_v1(state_backend)
    assert migrate_store(state_backend, "demo", [V1, V2], MigrationPolicy("automatic")) == 2
    assert _columns(state_backend) == ["a", "b"]


@pytest.mark.parametrize("strategy", ["manual", "assisted"])
def test_manual_and_assisted_refuse_to_upgrade_implicitly(state_backend: StateBackend, strategy: str) -> None:
    _store_at_v1(state_backend)
    with pytest.raises(SchemaBehind) as behind:
        migrate_store(state_backend, "demo", [V1, V2], MigrationPolicy(strategy))  # type: ignore[arg-type]
    assert "'demo': version 1 -> 2" in str(behind.value) and "agentparty migrate" in str(behind.value)
    assert _columns(state_backend) == ["a"]
    assert migrate_store(state_backend, "demo", [V1, V2], MigrationPolicy(strategy), explicit=True,  # type: ignore[arg-type]
                         confirm=lambda plan: True) == 2  # fmt: skip


def test_assisted_shows_the_plan_and_applies_nothing_when_declined(state_backend: StateBackend) -> None:
    _store_at_v1(state_backend)
    shown: list[str] = []
    with pytest.raises(MigrationDeclined):
        migrate_store(state_backend, "demo", [V1, V2], MigrationPolicy("assisted"), explicit=True,
                      confirm=lambda plan: shown.append(plan) is not None)  # fmt: skip
    assert shown == ["state store 'demo': version 1 -> 2 (applies 2)"]
    assert _columns(state_backend) == ["a"]


def test_data_backup_copies_the_store_before_upgrading(state_backend: StateBackend, tmp_path: Path) -> None:
    _store_at_v1(state_backend)
    policy = MigrationPolicy("automatic", backup=True, backup_dir=tmp_path / "backups")
    migrate_store(state_backend, "demo", [V1, V2], policy)
    [copy] = list((tmp_path / "backups").iterdir())
    if state_backend.dialect == "sqlite":
        with sqlite3.connect(copy) as db:
            assert db.execute("SELECT a FROM demo").fetchall() == [("kept",)]
            assert [row[1] for row in db.execute("PRAGMA table_info(demo)")] == ["a"]  # as it was before
    else:
        from agentparty.runtime.postgres_server import postgres_bin_dir

        folder = postgres_bin_dir()
        assert folder is not None
        listing = subprocess.run([str(folder / "pg_restore"), "--list", str(copy)], capture_output=True, text=True)
        assert listing.returncode == 0, listing.stderr
        assert "TABLE DATA agentparty demo" in listing.stdout


def test_rollback_support_leaves_the_store_at_its_version_when_an_upgrade_fails(state_backend: StateBackend) -> None:
    _store_at_v1(state_backend)
    with pytest.raises(Exception, match="no_such_table"):
        migrate_store(state_backend, "demo", [V1, V2, BROKEN], MigrationPolicy("automatic", rollback=True))
    assert _columns(state_backend) == ["a"], "versions 2 and 3 rolled back together"


def test_without_rollback_support_each_version_commits_on_its_own(state_backend: StateBackend) -> None:
    _store_at_v1(state_backend)
    with pytest.raises(Exception, match="no_such_table"):
        migrate_store(state_backend, "demo", [V1, V2, BROKEN], MigrationPolicy("automatic", rollback=False))
    assert _columns(state_backend) == ["a", "b"], "version 2 stays; the failed version 3 left nothing"


def test_the_migrate_command_reports_every_store(tmp_path: Path) -> None:
    agentparty = str(Path(sys.executable).with_name("agentparty"))
    done = subprocess.run(
        [agentparty, "migrate", "--yes", "--no-graph"],
        env={"AGENTPARTY_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "migrationStrategy assisted" in done.stdout  # the seed's default
    for store in ("budgets", "breakers", "webhooks", "templates", "api-keys", "rate_buckets"):
        assert f"  {store}: version 0 -> " in done.stdout, store
    assert "results" not in done.stdout  # run results live in the state database only on PostgreSQL
