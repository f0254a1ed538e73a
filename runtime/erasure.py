"""Removing runs' data from this home's stores and the results graph: a user's erasure, and retention's purge.

The Prefect side (flow runs, their persisted results and artifacts) is
``flows/retention.py``, which finds what to remove and calls these. What each
store gives up:

- conversations (``runtime/conversations.py``): every engagement of the runs, and its messages;
- agent memory (``runtime/agent_memory.py``): the runs' change records and step snapshots, and the entries
  whose current value one of the runs wrote (:func:`forget_memory_of_runs`);
- webhook deliveries: the ones that made the runs; the outbox: the runs' delivered events (pending ones are
  still owed to the broker);
- the graph: each run's Task, its Team (and MEMBER_OF), its Outputs (and CREATED), its agents' AgentState
  nodes, its MemoryChange nodes, the USED_TOOL and ASKED links keyed by its task; for an erasure, the User.
  Persistent Agents, Tools, Capabilities, templates and the collaboration history (WORKED_WITH, proficiency,
  reliability: aggregates over every user's runs) stay.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from agentparty.models.graph import stable_id
from agentparty.runtime.agent_memory import STORE as MEMORY_STORE
from agentparty.runtime.graph_store import GraphStore, graph_value, native
from agentparty.runtime.state_backend import StateBackend, StateConnection, as_backend

GRAPH_CHUNK = 200
_STATE_SEQUENCE = 64
"""AgentState ids of an engagement are numbered from 0; no engagement records this many transitions."""


@dataclass(frozen=True)
class MemoryForgotten:
    """What :func:`forget_memory_of_runs` removed: entry values, change records, snapshots."""

    entries: int
    changes: int
    snapshots: int


def forget_memory_of_runs(where: StateBackend | Path, run_keys: Sequence[str]) -> MemoryForgotten:
    """Erase what these runs wrote to any agent's memory (the memory store's backend, or ``memory.sqlite`` at a
    path), where it is theirs.

    Removed: the runs' change records and step snapshots, and the value of every entry whose current version one
    of the runs wrote (the key stays, deleted at its version, so a version number is never reused). Kept:
    entries another run changed since (the value is that run's), and entries whose change record was pruned
    already (``agent_memory.RETENTION_DAYS``), which can no longer be attributed. On PostgreSQL the erasure first
    takes the turn of every agent the runs touched (their ``memory_agents`` rows, locked in one order), as each
    change does, so it never interleaves with an agent's change on any host.
    """
    backend = as_backend(where)
    entries = changes = snapshots = 0
    keys = list(run_keys)
    chunks = [keys[start : start + 500] for start in range(0, len(keys), 500)]  # SQLite's bound-parameter limit
    with backend.transaction(MEMORY_STORE, write=True) as db:
        if backend.for_update:
            _lock_agents_of_runs(db, chunks, backend.for_update)
        for chunk in chunks:
            marks = ",".join("?" * len(chunk))
            entries += db.execute(
                "UPDATE memory_entries SET value = NULL, bytes = 0 WHERE value IS NOT NULL AND EXISTS "
                "(SELECT 1 FROM memory_changes c WHERE c.agent_id = memory_entries.agent_id AND "
                f"c.key = memory_entries.key AND c.version = memory_entries.version AND c.run_key IN ({marks}))",
                chunk,
            ).rowcount
            changes += db.execute(f"DELETE FROM memory_changes WHERE run_key IN ({marks})", chunk).rowcount
            snapshots += db.execute(f"DELETE FROM memory_snapshots WHERE run_key IN ({marks})", chunk).rowcount
    return MemoryForgotten(entries, changes, snapshots)


def _lock_agents_of_runs(db: StateConnection, chunks: Sequence[Sequence[str]], for_update: str) -> None:
    """Lock the ``memory_agents`` rows of every agent these runs changed or were shown, sorted by id: the order
    every locker keeps, so two erasures never deadlock."""
    agents: set[str] = set()
    for chunk in chunks:
        marks = ",".join("?" * len(chunk))
        rows = db.execute(
            f"SELECT agent_id FROM memory_changes WHERE run_key IN ({marks}) "
            f"UNION SELECT agent_id FROM memory_snapshots WHERE run_key IN ({marks})",
            (*chunk, *chunk),
        ).fetchall()
        agents.update(str(row[0]) for row in rows)
    ordered = sorted(agents)
    for start in range(0, len(ordered), 500):
        batch = ordered[start : start + 500]
        db.execute(
            f"SELECT agent_id FROM memory_agents WHERE agent_id IN ({','.join('?' * len(batch))}) "
            f"ORDER BY agent_id{for_update}",
            batch,
        ).fetchall()


def forget_memory_before(where: StateBackend | Path, cutoff: datetime) -> MemoryForgotten:
    """Drop memory change records and snapshots older than ``cutoff`` (retention). Entries are the agents'
    current memory, not a run's record, and stay."""
    stamp = cutoff.isoformat(timespec="microseconds")
    with as_backend(where).transaction(MEMORY_STORE, write=True) as db:
        changes = db.execute("DELETE FROM memory_changes WHERE changed_at < ?", (stamp,)).rowcount
        snapshots = db.execute("DELETE FROM memory_snapshots WHERE taken_at < ?", (stamp,)).rowcount
    return MemoryForgotten(0, changes, snapshots)


def remove_result_files(results: Path, storage_keys: Sequence[str]) -> int:
    """Delete the persisted result records these storage keys name, inside ``results`` only; how many went."""
    root = results.resolve()
    removed = 0
    for key in set(storage_keys):
        path = Path(key) if Path(key).is_absolute() else root / key
        path = path.resolve()
        if not path.is_relative_to(root) or not path.is_file():
            continue
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def compact_sqlite(path: Path) -> None:
    """Rewrite a SQLite database without its free pages, and empty its WAL: deleted rows' bytes stay in both until
    SQLite reuses the space, so an erasure in Prefect's database is only complete on disk after this."""
    with closing(sqlite3.connect(path, timeout=30, isolation_level=None)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def agent_state_ids(engagements: Sequence[tuple[str, str]]) -> list[str]:
    """The AgentState node ids an engagement can have, for (agent id, engagement key) pairs
    (``tasks/lifecycle.py`` numbers them from 0)."""
    return [stable_id("agent-state", agent, key, str(n)) for agent, key in engagements for n in range(_STATE_SEQUENCE)]


_ERASE_RUNS = (
    "UNWIND $ids AS id MATCH (t:Task {id: id})-[:RESULTED_IN]->(o:Output) DETACH DELETE o",
    "UNWIND $ids AS id MATCH (m:Team {task_id: id}) DETACH DELETE m",
    "UNWIND $ids AS id MATCH (c:MemoryChange {task_id: id}) DETACH DELETE c",
    "UNWIND $ids AS id MATCH (:Agent)-[r:USED_TOOL {task_id: id}]->() DELETE r",
    "UNWIND $ids AS id MATCH (:Agent)-[r:ASKED {task_id: id}]->() DELETE r",
    "UNWIND $ids AS id MATCH (t:Task {id: id}) DETACH DELETE t",
)


def erase_graph_runs(store: GraphStore, task_ids: Sequence[str], state_ids: Sequence[str] = ()) -> int:
    """Delete the runs' graph data (see the module's docstring), ``GRAPH_CHUNK`` tasks a transaction; returns
    how many tasks were found."""
    ids, found = list(task_ids), 0
    for start in range(0, len(ids), GRAPH_CHUNK):
        chunk = ids[start : start + GRAPH_CHUNK]

        def work(tx: Any, chunk: list[str] = chunk) -> int:
            count = tx.run("UNWIND $ids AS id MATCH (t:Task {id: id}) RETURN count(t) AS n", ids=chunk).single()
            for query in _ERASE_RUNS:
                tx.run(query, ids=chunk).consume()
            return int(count["n"]) if count else 0

        found += store.transact(work, f"erasing {len(chunk)} runs from the graph")
    states = list(state_ids)
    for start in range(0, len(states), GRAPH_CHUNK * 8):
        batch = states[start : start + GRAPH_CHUNK * 8]

        def drop_states(tx: Any, batch: list[str] = batch) -> None:
            tx.run("UNWIND $ids AS id MATCH (s:AgentState {id: id}) DETACH DELETE s", ids=batch).consume()

        store.transact(drop_states, "erasing runs' agent states from the graph")
    return found


def erase_graph_user(store: GraphStore, user_node_id: str) -> tuple[list[str], int]:
    """Every Task REQUESTED_BY the user erased with its run data, then the User node; (task ids, users removed)."""
    records, _, _ = store.driver.execute_query(
        "MATCH (t:Task)-[:REQUESTED_BY]->(u:User {id: $id}) RETURN t.id AS id",
        id=user_node_id,
        database_=store.database,
    )
    task_ids = [str(r["id"]) for r in records]
    erase_graph_runs(store, task_ids)

    def drop_user(tx: Any) -> int:
        row = tx.run("MATCH (u:User {id: $id}) DETACH DELETE u RETURN count(u) AS n", id=user_node_id).single()
        return int(row["n"]) if row else 0

    removed = store.transact(drop_user, "erasing a user from the graph")
    return task_ids, removed


def graph_tasks_before(store: GraphStore, cutoff: datetime) -> list[str]:
    """Tasks (runs) created before ``cutoff`` that are not in progress (retention)."""
    records, _, _ = store.driver.execute_query(
        "MATCH (t:Task) WHERE t.created_at < $cutoff AND t.status <> 'in_progress' RETURN t.id AS id",
        cutoff=graph_value(cutoff),
        database_=store.database,
    )
    return [str(r["id"]) for r in records]


def graph_records(store: GraphStore, task_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The runs' Task, Team and Output nodes as plain properties (a user's export)."""
    records, _, _ = store.driver.execute_query(
        "UNWIND $ids AS id MATCH (t:Task {id: id}) "
        "OPTIONAL MATCH (m:Team {task_id: id}) "
        "OPTIONAL MATCH (t)-[:RESULTED_IN]->(o:Output) "
        "RETURN properties(t) AS task, properties(m) AS team, collect(properties(o)) AS outputs",
        ids=list(task_ids),
        database_=store.database,
        routing_="r",
    )

    def plain(props: Any) -> dict[str, Any] | None:
        return {k: native(v) for k, v in dict(props).items()} if props else None

    return [
        {"task": plain(r["task"]), "team": plain(r["team"]), "outputs": [plain(o) for o in r["outputs"] if o]}
        for r in records
    ]
