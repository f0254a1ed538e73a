"""Versioned schema changes of the state database, governed by seed 002's ``versioning.migrationStrategy``.

Every store declares its schema as numbered :class:`~agentparty.runtime.state_backend.Migration` s
and records the version it is at in ``schema_versions``. What happens when a
store is behind the code is the configuration's choice:

* ``automatic``: the first process that opens the store brings it up to date;
* ``manual``: processes refuse to use a store that is behind (:class:`SchemaBehind`,
  naming the store, both versions and ``agentparty migrate``), which applies them;
* ``assisted`` (the seed's default): the same refusal, and ``agentparty migrate``
  prints the plan and asks before applying it (``--yes`` answers for you).

Creating a store that does not exist yet is not a migration (there is no data
to protect): it happens under every strategy. ``dataBackup`` copies the store
before an upgrade (SQLite: the file, through SQLite's online backup; PostgreSQL:
``pg_dump`` of the schema) into ``HOME/backups``. ``rollbackSupport`` applies
all of a store's pending versions in one transaction, so a failure leaves it at
the version it had (both databases change schemas transactionally); without it
each version commits on its own and a failure leaves the versions before it
applied.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from agentparty.models.sdk_config import VersioningConfig
    from agentparty.runtime.state_backend import Migration, StateBackend

Strategy = Literal["automatic", "manual", "assisted"]


class SchemaBehind(RuntimeError):
    """A store is older than the code and the strategy says a person applies migrations."""


class MigrationDeclined(RuntimeError):
    """``assisted``: the plan was shown and not accepted."""


@dataclass(frozen=True)
class MigrationPolicy:
    strategy: Strategy = "automatic"
    backup: bool = False
    rollback: bool = True
    backup_dir: Path | None = None
    """Where ``backup`` writes (``HOME/backups``); required when ``backup`` is on."""

    @classmethod
    def from_config(cls, versioning: VersioningConfig, home: Path) -> MigrationPolicy:
        chosen = versioning.migration_strategy
        return cls(chosen.type, chosen.data_backup, chosen.rollback_support, home / "backups")


@dataclass(frozen=True)
class Plan:
    store: str
    current: int
    pending: tuple[Migration, ...]

    @property
    def creates(self) -> bool:
        return self.current == 0

    def describe(self) -> str:
        steps = ", ".join(str(m.version) for m in self.pending)
        return f"state store {self.store!r}: version {self.current} -> {self.pending[-1].version} (applies {steps})"


def _current(db: object, store: str) -> int:
    row = db.execute("SELECT version FROM schema_versions WHERE store = ?", (store,)).fetchone()  # type: ignore[attr-defined]
    return int(row[0]) if row else 0


_VERSIONS_TABLE = "CREATE TABLE IF NOT EXISTS schema_versions (store TEXT PRIMARY KEY, version INTEGER NOT NULL)"


def plan(backend: StateBackend, store: str, migrations: Sequence[Migration]) -> Plan:
    """What ``store`` needs (a read: a store that is up to date costs no write lock to open)."""
    try:
        with backend.transaction(store) as db:
            current = _current(db, store)
    except Exception:  # no schema_versions table yet (sqlite3 and psycopg each raise their own error)
        current = 0
    pending = tuple(m for m in sorted(migrations, key=lambda m: m.version) if m.version > current)
    return Plan(store, current, pending)


def migrate_store(
    backend: StateBackend,
    store: str,
    migrations: Sequence[Migration],
    policy: MigrationPolicy,
    *,
    confirm: Callable[[str], bool] | None = None,
    explicit: bool = False,
) -> int:
    """Bring ``store`` to the newest version as ``policy`` allows; the version it is at after.

    ``explicit``: called by ``agentparty migrate`` (a person asked for it); else by a process opening the store.
    """
    the_plan = plan(backend, store, migrations)
    if not the_plan.pending:
        return the_plan.current
    if the_plan.pending and not the_plan.creates:
        if policy.strategy != "automatic" and not explicit:
            raise SchemaBehind(
                f"{the_plan.describe()} is needed, and versioning.migrationStrategy is {policy.strategy!r}: "
                "run `agentparty migrate`"
            )
        if policy.strategy == "assisted" and explicit and not (confirm and confirm(the_plan.describe())):
            raise MigrationDeclined(f"not applied: {the_plan.describe()}")
        if policy.backup:
            backup(backend, store, the_plan.current, policy)
    return _apply(backend, store, the_plan, rollback=policy.rollback)


def _apply(backend: StateBackend, store: str, the_plan: Plan, *, rollback: bool) -> int:
    groups = [the_plan.pending] if rollback else [(m,) for m in the_plan.pending]
    current = the_plan.current
    for group in groups:
        with backend.transaction(store, write=True) as db:
            if backend.dialect == "postgresql":  # one migrator at a time, across hosts
                db.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"agentparty.migrate.{store}",))
            db.execute(_VERSIONS_TABLE)
            current = _current(db, store)
            for migration in group:
                if migration.version > current:
                    for statement in migration.statements(backend.dialect):
                        db.execute(statement)
                    current = migration.version
            db.execute(
                "INSERT INTO schema_versions VALUES (?, ?) ON CONFLICT(store) DO UPDATE SET version = excluded.version",
                (store, current),
            )
    return current


def backup(backend: StateBackend, store: str, version: int, policy: MigrationPolicy) -> Path:
    """A copy of the store as it is, before its upgrade from ``version``; the file written."""
    if policy.backup_dir is None:
        raise ValueError("versioning.migrationStrategy.dataBackup needs a backup folder")
    policy.backup_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    if backend.dialect == "sqlite":
        source = backend.path(store)  # type: ignore[attr-defined]
        target = policy.backup_dir / f"{store}-v{version}-{stamp}.sqlite"
        with sqlite3.connect(source) as live, sqlite3.connect(target) as copy:
            live.backup(copy)
        return Path(target)
    from agentparty.runtime.postgres_server import postgres_bin_dir  # deferred: PostgreSQL only

    folder = postgres_bin_dir()
    if folder is None:
        raise FileNotFoundError("dataBackup needs pg_dump (PostgreSQL's client programs): set AGENTPARTY_POSTGRES_BIN")
    target = policy.backup_dir / f"state-{store}-v{version}-{stamp}.dump"
    done = subprocess.run(
        [str(folder / "pg_dump"), "--format=custom", "--schema=agentparty", f"--file={target}",
         f"--dbname={backend.url}"],  # type: ignore[attr-defined]
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"pg_dump before migrating {store!r} failed: {done.stderr.strip()[-1000:]}")
    return target
