"""Which user every workflow run was made for, and when: the index retention and erasure work from.

Prefect knows a run's flow and times but not whose it is; the graph knows whose
(the Task REQUESTED_BY its User) but may be off. So every compiled flow run
writes one row here when it starts and sets ``finished_at`` when it ends
(``flows/run_observers.py``): one small transaction each, in the engine's state
backend (``runtime/state_backend.py``): ``<home>/state/runs.sqlite`` beside the
other state on one machine; with PostgreSQL configured, the shared schema, so an
erasure or a purge run from any host finds the runs every host made.
A subgraph's flow run is a run of its own and has its own row, for the same user.

``run_key`` is what a run's other records are keyed by (conversations, memory
changes, graph ids): the flow run id, or the original run's id for a resumed
run, so one run key can have several flow runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from agentparty.runtime.settings import state_backend_at
from agentparty.runtime.state_backend import Migration, StateBackend, as_backend

STORE = "runs"
"""The store's name: ``state/runs.sqlite`` on SQLite, its schema version's key on PostgreSQL."""
_SQLITE = (  # version 1 on SQLite is the schema homes already have: exactly the statements made before versions
    "CREATE TABLE IF NOT EXISTS runs (flow_run_id TEXT PRIMARY KEY, run_key TEXT NOT NULL, "
    "workflow_id TEXT NOT NULL, user_id TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT, status TEXT);"
    "CREATE INDEX IF NOT EXISTS runs_user ON runs (user_id, started_at);"
    "CREATE INDEX IF NOT EXISTS runs_age ON runs (started_at)"
)
_POSTGRESQL = (  # ISO times compare as text: byte order ("C"), whatever the server's default collation
    "CREATE TABLE IF NOT EXISTS runs (flow_run_id TEXT PRIMARY KEY, run_key TEXT NOT NULL, "
    'workflow_id TEXT NOT NULL, user_id TEXT NOT NULL, started_at TEXT COLLATE "C" NOT NULL, '
    'finished_at TEXT COLLATE "C", status TEXT);'
    "CREATE INDEX IF NOT EXISTS runs_user ON runs (user_id, started_at);"
    "CREATE INDEX IF NOT EXISTS runs_age ON runs (started_at)"
)
MIGRATIONS = (Migration(1, sqlite=_SQLITE, postgresql=_POSTGRESQL),)
_COLUMNS = "flow_run_id, run_key, workflow_id, user_id, started_at, finished_at, status"
_ready: set[StateBackend] = set()
"""Backends where this process has brought the store up to date (a run's start costs one write, not a read more)."""


@dataclass(frozen=True)
class IndexedRun:
    flow_run_id: str
    run_key: str
    workflow_id: str
    user_id: str
    started_at: datetime
    finished_at: datetime | None
    status: str | None


def _row(row: tuple[str, str, str, str, str, str | None, str | None]) -> IndexedRun:
    flow_run_id, run_key, workflow_id, user_id, started, finished, status = row
    return IndexedRun(
        flow_run_id,
        run_key,
        workflow_id,
        user_id,
        datetime.fromisoformat(started),
        datetime.fromisoformat(finished) if finished else None,
        status,
    )


def _chunks(values: Sequence[str], size: int = 500) -> Iterable[Sequence[str]]:
    """SQLite's bound-parameter limit."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


class RunIndex:
    """The runs: flow run id, run key, workflow, user, start and end (one home's, or every host's on PostgreSQL)."""

    STORE = STORE

    def __init__(self, where: StateBackend | Path) -> None:
        """``where``: the state backend, or the path of a SQLite file of the store's own (one machine)."""
        self.backend = as_backend(where)
        if self.backend not in _ready:
            self.backend.migrate(STORE, MIGRATIONS)
            _ready.add(self.backend)

    @classmethod
    def at(cls, home: Path, backend: StateBackend | None = None) -> RunIndex:
        """The run index of ``home``: in ``backend``, by default where the settings keep engine state."""
        return cls(backend or state_backend_at(home))

    def started(self, flow_run_id: str, run_key: str, workflow_id: str, user_id: str) -> None:
        """A run began (a resume of the same flow run keeps its first start)."""
        with self.backend.transaction(STORE, write=True) as db:
            db.execute(
                "INSERT INTO runs (flow_run_id, run_key, workflow_id, user_id, started_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (flow_run_id) DO UPDATE SET finished_at = NULL, status = NULL",
                (flow_run_id, run_key, workflow_id, user_id, datetime.now(UTC).isoformat()),
            )

    def finished(self, flow_run_id: str, status: str) -> None:
        with self.backend.transaction(STORE, write=True) as db:
            db.execute(
                "UPDATE runs SET finished_at = ?, status = ? WHERE flow_run_id = ?",
                (datetime.now(UTC).isoformat(), status, flow_run_id),
            )

    def of_user(self, user_id: str) -> list[IndexedRun]:
        """The user's runs, oldest first."""
        with self.backend.transaction(STORE) as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM runs WHERE user_id = ? ORDER BY started_at, flow_run_id", (user_id,)
            ).fetchall()
        return [_row(row) for row in rows]

    def started_before(self, cutoff: datetime) -> list[IndexedRun]:
        """Runs that started before ``cutoff``, finished or not (a crashed run never records its end)."""
        with self.backend.transaction(STORE) as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM runs WHERE started_at < ? ORDER BY started_at", (cutoff.isoformat(),)
            ).fetchall()
        return [_row(row) for row in rows]

    def forget(self, flow_run_ids: Sequence[str]) -> int:
        """Drop these runs' rows; how many went."""
        removed = 0
        with self.backend.transaction(STORE, write=True) as db:
            for chunk in _chunks(list(flow_run_ids)):
                removed += db.execute(
                    f"DELETE FROM runs WHERE flow_run_id IN ({','.join('?' * len(chunk))})", list(chunk)
                ).rowcount
        return removed
