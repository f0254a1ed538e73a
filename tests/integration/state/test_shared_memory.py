"""Agent memory on both state backends: the same rules on SQLite (one machine) and PostgreSQL (every host).

Versions, compare-and-set, bounds, replayed requests, inheritance, forgetting,
snapshots, erasure, retention and re-encryption behave the same on either
backend; and two processes with different homes (two hosts) sharing the
PostgreSQL backend write one agent's key with compare-and-set: exactly one
wins each version and no update is lost.
"""

from __future__ import annotations

import base64
import multiprocessing
import os
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentparty.models.memory import MemoryConfig
from agentparty.runtime.agent_memory import (
    MEMORY_VALUES,
    MIGRATIONS,
    AgentMemoryStore,
    Engagement,
    MemoryConflict,
    MemoryFull,
    MemoryWrite,
)
from agentparty.runtime.data_keys import parse_env_keys
from agentparty.runtime.erasure import forget_memory_before, forget_memory_of_runs
from agentparty.runtime.reencrypt import SHARED_COLUMNS, reseal_column, reseal_shared_column
from agentparty.runtime.schema_versions import MigrationPolicy
from agentparty.runtime.sealing import Sealer
from agentparty.runtime.state_backend import PostgresBackend, SqliteBackend, StateBackend

HERE = Engagement("run-1", "note")
LIMITS = MemoryConfig()
KEYS = "k1=" + base64.b64encode(bytes(range(32))).decode()
"""The data key every host shares (``AGENTPARTY_DATA_KEYS``): a value sealed on one host opens on another."""


def _sealer(enabled: bool = True) -> Sealer:
    ring = parse_env_keys(KEYS)
    return Sealer(enabled, "AES-256-GCM", lambda: ring)


@pytest.fixture
def memory(state_backend: StateBackend) -> AgentMemoryStore:
    return AgentMemoryStore(state_backend, sealer=_sealer())


def test_versions_compare_and_set_and_the_last_writer(memory: AgentMemoryStore) -> None:
    first = memory.write("a", "city", "Paris", limits=LIMITS, where=HERE, expected_version=0)
    second = memory.write("a", "city", {"name": "Rome"}, limits=LIMITS, where=HERE)
    assert (first.version, first.previous_version, second.version, second.previous_version) == (1, None, 2, 1)
    with pytest.raises(MemoryConflict, match=r"'city' is at version 2, not 1"):
        memory.write("a", "city", "Oslo", limits=LIMITS, where=HERE, expected_version=1)
    with pytest.raises(MemoryConflict, match=r"'city' exists at version 2"):
        memory.write("a", "city", "Oslo", limits=LIMITS, where=HERE, expected_version=0)
    assert memory.delete("a", "city", where=HERE, expected_version=2).version == 3
    assert memory.delete("a", "city", where=HERE).changed is False
    again = memory.write("a", "city", "Oslo", limits=LIMITS, where=HERE, expected_version=0)
    assert again.version == 4, "a deleted key keeps counting"
    assert [(c.version, c.operation) for c in memory.changes("a", HERE)] == [
        (1, "set"),
        (2, "set"),
        (3, "delete"),
        (4, "set"),
    ], "oldest first; refused writes leave no change"
    assert memory.get("b", "city") is None and memory.agents() == ["a"]


def test_bounds_and_keys_in_byte_order(memory: AgentMemoryStore) -> None:
    limits = MemoryConfig(max_bytes=30, max_keys=3)
    memory.write("a", "b", "x" * 10, limits=limits, where=HERE)  # 1 + 12 = 13 bytes
    with pytest.raises(MemoryFull, match=r"takes 23 bytes and the rest of the memory 13, 36 in all"):
        memory.write("a", "B", "y" * 20, limits=limits, where=HERE)
    memory.write("a", "B", "", limits=limits, where=HERE)
    memory.write("a", "_", "", limits=limits, where=HERE)
    with pytest.raises(MemoryFull, match=r"it holds 3 keys and the limit is 3"):
        memory.write("a", "c", "", limits=limits, where=HERE)
    assert memory.usage("a") == (19, 3)
    assert [e.key for e in memory.entries("a")] == ["B", "_", "b"], "code-point order, as SQLite compares"


def test_a_replayed_request_returns_the_first_outcome(memory: AgentMemoryStore) -> None:
    first = memory.write("a", "k", "v", limits=LIMITS, where=HERE, request="call-1", expected_version=0)
    replay = memory.write("a", "k", "other", limits=LIMITS, where=HERE, request="call-1", expected_version=0)
    assert replay == MemoryWrite("k", 1, None, first.used_bytes, 1, replayed=True)
    gone = memory.delete("a", "k", where=HERE, request="call-2")
    assert memory.delete("a", "k", where=HERE, request="call-2") == MemoryWrite("k", gone.version, 1, 0, 0, True, True)
    assert memory.get("a", "k") is None and len(memory.changes("a", HERE)) == 2


def test_inheritance_forgetting_and_snapshots(memory: AgentMemoryStore) -> None:
    for key in ("a", "b", "c"):
        memory.write("old", key, key * 10, limits=LIMITS, where=HERE)
    assert memory.initialise("new", HERE, MemoryConfig(max_keys=2), source="old") == (2, 1)
    assert [(e.key, e.value, e.version) for e in memory.entries("new")] == [("b", "b" * 10, 1), ("c", "c" * 10, 1)]
    assert memory.initialise("new", HERE, LIMITS, source="old") is None, "never copied twice"
    assert [c.operation for c in memory.changes("new", HERE)] == ["inherit", "inherit"]

    shown = memory.snapshot("new", HERE, lambda entries: ",".join(e.key for e in entries))
    memory.write("new", "d", 1, limits=LIMITS, where=HERE)
    assert memory.snapshot("new", HERE, lambda entries: "rendered again") == shown == "b,c"

    forgotten = memory.forget("new")
    assert (forgotten.known, forgotten.keys, forgotten.changes, forgotten.snapshots) == (True, 3, 3, 1)
    assert memory.entries("new") == [] and memory.usage("new") == (0, 0)
    assert memory.initialise("new", HERE, LIMITS, source="old") is None, "a forgotten agent does not inherit again"
    assert len(memory.entries("old")) == 3 and memory.forget("never-seen").known is False


def test_erasure_and_retention(memory: AgentMemoryStore) -> None:
    r1, r2 = Engagement("r1", "s"), Engagement("r2", "s")
    memory.write("a", "mine", "user data", limits=LIMITS, where=r1)
    memory.write("a", "shared", "from r1", limits=LIMITS, where=r1)
    memory.write("a", "shared", "from r2", limits=LIMITS, where=r2)
    memory.write("b", "mine", "user data", limits=LIMITS, where=r1)
    memory.snapshot("a", r1, lambda entries: "shown")
    forgotten = forget_memory_of_runs(memory.backend, ["r1", "r9"])
    assert (forgotten.entries, forgotten.changes, forgotten.snapshots) == (2, 3, 1)
    assert memory.get("a", "mine") is None and memory.get("b", "mine") is None
    shared = memory.get("a", "shared")
    assert shared is not None and shared.value == "from r2"
    assert memory.write("a", "mine", "new", limits=LIMITS, where=r2).version == 2, "versions are never reused"
    purged = forget_memory_before(memory.backend, datetime.now(UTC) + timedelta(seconds=1))
    assert (purged.changes, purged.snapshots) == (2, 0)
    assert memory.get("a", "shared") is not None, "a purge keeps the agents' current memory"


def test_keys_reencrypt_rewrites_memory_where_it_lives(state_backend: StateBackend) -> None:
    plain = AgentMemoryStore(state_backend, sealer=_sealer(enabled=False))
    plain.write("a", "plan", "ship on friday", limits=LIMITS, where=HERE)
    assert {c.table for c in SHARED_COLUMNS} >= {"memory_entries", "memory_snapshots"}
    sealer = _sealer()
    if isinstance(state_backend, PostgresBackend):
        assert reseal_shared_column(state_backend, MEMORY_VALUES, sealer) == 1
        assert reseal_shared_column(state_backend, MEMORY_VALUES, sealer) == 0
    else:
        assert plain.path is not None and reseal_column(plain.path, MEMORY_VALUES, sealer) == 1
    with state_backend.transaction("memory") as db:
        (stored,) = db.execute("SELECT value FROM memory_entries").fetchone()
    assert "friday" not in stored and sealer.is_current(stored)
    entry = AgentMemoryStore(state_backend, sealer=sealer).get("a", "plan")
    assert entry is not None and entry.value == "ship on friday"


def _host(home: str, url: str, times: int, start: Any, out: Any) -> None:
    """One host: its own home, the shared PostgreSQL and data keys from its environment, as production reads them;
    increments one counter ``times`` times with compare-and-set (recall, retry on conflict)."""
    os.environ.update(AGENTPARTY_HOME=home, AGENTPARTY_STATE_DB_URL=url, AGENTPARTY_DATA_KEYS=KEYS)
    from agentparty.runtime.settings import get_settings

    get_settings.cache_clear()
    store = AgentMemoryStore.at(Path(home))
    assert isinstance(store.backend, PostgresBackend) and store.path is None
    won: list[int] = []
    conflicts = 0
    start.wait(timeout=120)
    while len(won) < times:
        entry = store.get("agent", "counter")
        try:
            written = store.write(
                "agent",
                "counter",
                (entry.value if entry else 0) + 1,
                limits=LIMITS,
                where=Engagement(f"run-{Path(home).name}", "slot"),
                expected_version=entry.version if entry else 0,
            )
        except MemoryConflict:
            conflicts += 1
            continue
        assert written.version is not None
        won.append(written.version)
    out.put((Path(home).name, won, conflicts))


@pytest.mark.slow
def test_two_hosts_compare_and_set_one_key_and_lose_no_update(postgres_cluster: Any, tmp_path: Path) -> None:
    from support.postgres_support import fresh_database

    url, times = fresh_database(postgres_cluster, "memory"), 40
    context = multiprocessing.get_context("spawn")
    out, start = context.Queue(), context.Barrier(2)
    hosts = [context.Process(target=_host, args=(str(tmp_path / name), url, times, start, out)) for name in ("a", "b")]
    for host in hosts:
        host.start()
    reports = {name: (won, conflicts) for name, won, conflicts in (out.get(timeout=180) for _ in hosts)}
    for host in hosts:
        host.join(timeout=30)
        assert host.exitcode == 0
    versions = sorted(v for won, _ in reports.values() for v in won)
    assert versions == list(range(1, 2 * times + 1)), "each version won by exactly one host"
    backend = PostgresBackend(url)
    try:
        store = AgentMemoryStore(backend, sealer=_sealer())
        entry = store.get("agent", "counter")
        assert entry is not None and (entry.value, entry.version) == (2 * times, 2 * times), "no update lost"
        for name, (won, _) in reports.items():
            recorded = store.changes("agent", Engagement(f"run-{name}", "slot"))
            assert [c.version for c in recorded] == won, "each host's changes, recorded once, in order"
    finally:
        backend.close()
    print("conflicts per host:", {name: conflicts for name, (_, conflicts) in reports.items()})


def test_a_home_of_the_previous_release_keeps_its_memory(tmp_path: Path) -> None:
    """``state/memory.sqlite`` written before the state backend (no schema versions) is read as it is, even where
    versioning.migrationStrategy leaves migrations to a person: creating its version record is not one."""
    path = tmp_path / "state" / "memory.sqlite"
    path.parent.mkdir()
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(MIGRATIONS[0].sqlite)
        db.execute("INSERT INTO memory_agents (agent_id, created_at) VALUES ('a', '2026-01-01T00:00:00+00:00')")
        db.execute("INSERT INTO memory_entries VALUES ('a', 'k', '\"v\"', 3, 4, '2026-01-01T00:00:00+00:00')")  # plain
    backend = SqliteBackend(tmp_path / "state", policy=MigrationPolicy(strategy="manual"))
    store = AgentMemoryStore(backend, sealer=_sealer())
    entry = store.get("a", "k")
    assert entry is not None and (entry.value, entry.version) == ("v", 3)
    assert store.write("a", "k", "w", limits=LIMITS, where=HERE, expected_version=3).version == 4
    assert store.path == path
