"""Conversations and the run index on both state backends, and across two hosts on PostgreSQL.

The same behaviour tests run on SQLite (one machine) and PostgreSQL (what
several hosts share): appends skip replayed messages and never lose or reorder
one when several processes write one engagement at once, erasure and retention
remove what they name and nothing else, and re-encryption reseals message
bodies wherever they live. Then two processes with different homes, configured
only through their settings as a worker and an API on two hosts are, see each
other's runs and conversations in one PostgreSQL database and leave no SQLite
file behind.
"""

from __future__ import annotations

import asyncio
import base64
import multiprocessing
import os
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.postgres_support import backend_address, backend_at, fresh_database

from agentparty.flows.retention import erase_user, export_user, purge
from agentparty.models.agent import WorkflowState
from agentparty.models.messages import AgentMessage, Message, SystemMessage, UserMessage
from agentparty.runtime.conversations import MIGRATIONS, STORE, ConversationStore
from agentparty.runtime.data_keys import DEFAULT_KEY_FILE, load_key_ring, rotate_key_file
from agentparty.runtime.postgres_server import LocalPostgres
from agentparty.runtime.reencrypt import reencrypt
from agentparty.runtime.run_index import RunIndex
from agentparty.runtime.schema_versions import MigrationPolicy
from agentparty.runtime.sealing import Sealer
from agentparty.runtime.settings import Settings
from agentparty.runtime.state_backend import PostgresBackend, SqliteBackend, StateBackend

WORKFLOW = WorkflowState(workflow_id="wf", run_id="run-1", current_step="draft")
WRITERS = 4
BATCHES = 10
PER_BATCH = 3


def _home_of(backend: StateBackend, tmp_path: Path) -> Path:
    """The home whose state the backend holds (SQLite: ``<home>/state``); any folder for the key file on PostgreSQL."""
    return backend.folder.parent if isinstance(backend, SqliteBackend) else tmp_path


def _sealer(home: Path) -> Sealer:
    """A sealer with the data key generated under ``home`` (every process given the same home opens the same)."""
    return Sealer(True, "AES-256-GCM", lambda: load_key_ring(home, None, None))


def _system(text: str) -> SystemMessage:
    return SystemMessage(id=f"id-{text}", content=text)


@pytest.fixture
def store(state_backend: StateBackend, tmp_path: Path) -> ConversationStore:
    return ConversationStore(state_backend, _sealer(_home_of(state_backend, tmp_path)))


def test_a_conversation_keeps_its_order_and_skips_replayed_messages(store: ConversationStore) -> None:
    key = store.begin("agent-1", '["run-1", "draft"]', "run-1", "draft", WORKFLOW)
    first: list[Message] = [_system("prompt"), UserMessage(id="id-task", content="task", user_id="ana", session_id="s")]
    assert store.append(key, first) == 2
    turn = AgentMessage(id="id-turn", content="answer", agent_id="agent-1", model="m")
    assert store.append(key, [*first, turn]) == 1  # a resumed attempt replays its turns: only the new one is kept
    assert store.begin("agent-1", '["run-1", "draft"]', "run-1", "draft", WORKFLOW) == key  # a retry reopens it
    store.set_status(key, "completed")

    page = store.page(key, offset=1, limit=5)
    assert page.total == 3 and [m.id for m in page.messages] == ["id-task", "id-turn"]
    assert store.counts(key) == {"system": 1, "user": 1, "agent": 1}
    record = store.engagement(key)
    assert record is not None and record.messages == 3 and record.workflow.status == "completed"
    assert [e.id for e in store.engagements("agent-1")] == [key]
    assert store.engagement("nobody") is None and store.page("nobody").total == 0


def test_erasure_and_retention_remove_only_what_they_name(store: ConversationStore) -> None:
    mine = store.begin("agent-1", "e1", "run-1", "s", WORKFLOW)
    theirs = store.begin("agent-1", "e2", "run-2", "s", WORKFLOW)
    other_agent = store.begin("agent-2", "e3", "run-3", "s", WORKFLOW)
    for key in (mine, theirs, other_agent):
        store.append(key, [_system(f"{key}-a"), _system(f"{key}-b")])

    assert [e.id for e in store.of_runs(["run-1", "run-9"])] == [mine]
    assert store.forget_runs(["run-1"]) == 2  # a user's erasure
    assert store.of_runs(["run-1"]) == [] and store.page(mine).total == 0 and store.page(theirs).total == 2
    assert store.forget_agent("agent-2") == 2  # `agentparty agents forget`
    assert store.engagements("agent-2") == [] and store.engagement(theirs) is not None
    assert store.forget_before(datetime.now(UTC) - timedelta(days=1)) == 0  # retention keeps what is recent
    assert store.forget_before(datetime.now(UTC) + timedelta(seconds=1)) == 2
    assert store.engagements("agent-1") == []
    assert store.forget_runs([]) == 0


def _append_batches(kind: str, where: str, home: str, key: str, writer: int) -> None:
    store = ConversationStore(backend_at(kind, where), _sealer(Path(home)))
    sent: list[Message] = []
    for batch in range(BATCHES):
        fresh = [_system(f"w{writer}-{batch}-{n}") for n in range(PER_BATCH)]
        store.append(key, [*sent[-2:], *fresh])  # each flush replays the end of the one before, as a resume does
        sent += fresh


def test_processes_appending_to_one_engagement_lose_and_reorder_nothing(
    store: ConversationStore, state_backend: StateBackend, tmp_path: Path
) -> None:
    key = store.begin("agent-1", "busy", "run-1", "s", WORKFLOW)
    store.append(key, [_system("opening")])  # the key file exists before the writers read it
    context = multiprocessing.get_context("spawn")
    home = str(_home_of(state_backend, tmp_path))
    writers = [
        context.Process(target=_append_batches, args=(*backend_address(state_backend), home, key, w))
        for w in range(WRITERS)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    page = store.page(key, limit=200)
    ids = [m.id for m in page.messages]
    assert page.total == len(ids) == 1 + WRITERS * BATCHES * PER_BATCH == len(set(ids))
    for w in range(WRITERS):  # each writer's messages in the order it said them
        own = [i for i in ids if i.startswith(f"id-w{w}-")]
        assert own == [f"id-w{w}-{b}-{n}" for b in range(BATCHES) for n in range(PER_BATCH)]
    with store.backend.transaction(STORE) as db:
        seqs = [row[0] for row in db.execute("SELECT seq FROM messages WHERE engagement_id = ? ORDER BY seq", (key,))]
    assert seqs == list(range(1, len(ids) + 1))


def test_message_bodies_are_sealed_and_reencrypted_on_either_backend(
    store: ConversationStore, state_backend: StateBackend, tmp_path: Path
) -> None:
    home = _home_of(state_backend, tmp_path)
    key = store.begin("agent-1", "sealed", "run-1", "s", WORKFLOW)
    store.append(key, [_system(f"secret {n}") for n in range(5)])
    with state_backend.transaction(STORE) as db:
        raw = [row[0] for row in db.execute("SELECT body FROM messages").fetchall()]
    assert len(raw) == 5 and not any("secret" in value for value in raw)
    rotate_key_file(home / DEFAULT_KEY_FILE)
    store.sealer.reload()
    report = reencrypt(home, store.sealer, state_backend)
    suffix = " (PostgreSQL)" if state_backend.dialect == "postgresql" else ""
    assert report.counts[f"conversations: messages.body{suffix}"] == 5
    assert reencrypt(home, store.sealer, state_backend).total == 0
    assert [m.content for m in store.page(key).messages] == [f"secret {n}" for n in range(5)]


def test_the_run_index_knows_whose_runs_are_whose(state_backend: StateBackend) -> None:
    index = RunIndex(state_backend)
    index.started("f1", "f1", "wf", "ana")
    index.started("f2", "f2", "wf", "bo")
    index.started("f3", "f1", "wf", "ana")  # a resume of f1: same run key, another flow run
    index.finished("f1", "completed")
    index.started("f1", "f1", "wf", "ana")  # the same flow run resumed: open again, first start kept
    index.finished("f1", "failed")
    runs = RunIndex(state_backend).of_user("ana")  # another process (host) reads the same rows
    assert [(r.flow_run_id, r.run_key, r.status) for r in runs] == [("f1", "f1", "failed"), ("f3", "f1", None)]
    assert runs[0].finished_at is not None and runs[0].started_at <= runs[0].finished_at
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert {r.flow_run_id for r in index.started_before(later)} == {"f1", "f2", "f3"}
    assert index.started_before(datetime.now(UTC) - timedelta(days=1)) == []
    assert index.forget(["f1", "f3", "unknown"]) == 2 and index.forget([]) == 0
    assert index.of_user("ana") == [] and [r.flow_run_id for r in index.of_user("bo")] == ["f2"]


def test_both_stores_are_versioned_in_the_state_database(state_backend: StateBackend) -> None:
    ConversationStore(state_backend, _sealer(Path("/nonexistent")))
    RunIndex(state_backend)
    assert state_backend.migrate(STORE, MIGRATIONS) == 1
    for store_name in (STORE, RunIndex.STORE):
        with state_backend.transaction(store_name) as db:
            row = db.execute("SELECT version FROM schema_versions WHERE store = ?", (store_name,)).fetchone()
        assert row[0] == 1


def test_a_home_from_before_versions_keeps_its_conversations_and_runs(tmp_path: Path) -> None:
    """Files the previous release wrote (today's tables, no ``schema_versions``) open as version 1 under the seed's
    ``assisted`` strategy, which refuses upgrades but not this: the same file names, tables and rows."""
    state = tmp_path / "state"
    state.mkdir()
    with sqlite3.connect(state / "conversations.sqlite") as db:
        for statement in MIGRATIONS[0].sqlite.split(";"):
            db.execute(statement)
        db.execute(
            "INSERT INTO engagements VALUES ('e1', 'agent-1', 'run-1', 's', ?, '2026-01-01T00:00:00+00:00', "
            "'2026-01-01T00:00:00+00:00')",
            (WORKFLOW.model_dump_json(by_alias=True),),
        )
    with sqlite3.connect(state / "runs.sqlite") as db:
        db.execute(
            "CREATE TABLE runs (flow_run_id TEXT PRIMARY KEY, run_key TEXT NOT NULL, workflow_id TEXT NOT NULL, "
            "user_id TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT, status TEXT)"
        )
        db.execute("INSERT INTO runs VALUES ('f1', 'run-1', 'wf', 'ana', '2026-01-01T00:00:00+00:00', NULL, NULL)")
    backend = SqliteBackend(state, policy=MigrationPolicy("assisted"))
    store = ConversationStore(backend, _sealer(tmp_path))
    assert [e.id for e in store.engagements("agent-1")] == ["e1"]
    assert [r.flow_run_id for r in RunIndex(backend).of_user("ana")] == ["f1"]
    assert sorted(p.name for p in state.glob("*.sqlite")) == ["conversations.sqlite", "runs.sqlite"]


# -- two hosts: two homes, one PostgreSQL, configured as production processes are -------------------------------


def _as_host(home: str, url: str, keys: str) -> Path:
    """This process becomes a host: its own home, the shared database and data keys, through the settings alone."""
    os.environ.update({"AGENTPARTY_HOME": home, "AGENTPARTY_STATE_DB_URL": url, "AGENTPARTY_DATA_KEYS": keys})
    from agentparty.runtime.sealing import forget_sealers
    from agentparty.runtime.settings import get_settings

    get_settings.cache_clear()
    forget_sealers()
    return Path(home)


def _host_a_starts(home: str, url: str, keys: str, out: Any) -> None:
    where = _as_host(home, url, keys)
    RunIndex.at(where).started("flow-a", "run-1", "wf", "ana")
    store = ConversationStore.at(where)
    key = store.begin("agent-1", "eng", "run-1", "draft", WORKFLOW)
    store.append(key, [_system("prompt"), UserMessage(id="id-task", content="task", user_id="ana", session_id="s")])
    out.put((type(store.backend).__name__, key))


def _host_b_continues(home: str, url: str, keys: str, key: str, out: Any) -> None:
    where = _as_host(home, url, keys)
    index = RunIndex.at(where)
    seen_runs = [(r.flow_run_id, r.user_id) for r in index.of_user("ana")]
    store = ConversationStore.at(where)
    seen = store.page(key).messages
    turn = AgentMessage(id="id-turn", content="answer", agent_id="agent-1", model="m")
    added = store.append(key, [*seen, turn])  # resumed here: A's turns replayed, one new
    store.set_status(key, "completed")
    index.finished("flow-a", "completed")
    out.put((seen_runs, [m.content for m in seen], added))


@pytest.fixture
def shared_url(postgres_cluster: LocalPostgres) -> Iterator[str]:
    yield fresh_database(postgres_cluster, "conversations")


def _on_host(target: Any, *args: Any) -> Any:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    process = context.Process(target=target, args=(*args, out))
    process.start()
    process.join(timeout=120)
    assert process.exitcode == 0, f"{target.__name__} failed (exit code {process.exitcode})"
    return out.get(timeout=5)


@pytest.mark.slow
def test_two_hosts_with_their_own_homes_share_conversations_and_the_run_index(tmp_path: Path, shared_url: str) -> None:
    """Host A starts a run and its engagement; host B (another home) sees both, resumes the conversation without
    repeating a message and records the run's end; what B did is in the shared database. Neither home has a SQLite
    file of them."""
    keys = "k1=" + base64.b64encode(os.urandom(32)).decode()
    home_a, home_b = str(tmp_path / "home-a"), str(tmp_path / "home-b")
    backend_kind, key = _on_host(_host_a_starts, home_a, shared_url, keys)
    assert backend_kind == "PostgresBackend"

    runs, contents, added = _on_host(_host_b_continues, home_b, shared_url, keys, key)
    assert runs == [("flow-a", "ana")]
    assert contents == ["prompt", "task"] and added == 1

    backend = PostgresBackend(shared_url)  # host A again, or any other: the rows B wrote are in the database
    try:
        store = ConversationStore(backend, Sealer(True, "AES-256-GCM", lambda: load_key_ring(tmp_path, keys, None)))
        record = store.engagement(key)
        assert [m.id for m in store.page(key).messages] == ["id-prompt", "id-task", "id-turn"]
        assert record is not None and record.workflow.status == "completed"
        assert [r.status for r in RunIndex(backend).of_user("ana")] == ["completed"]
    finally:
        backend.close()
    for home in (home_a, home_b):
        assert not list(Path(home).glob("state/conversations.sqlite*"))
        assert not list(Path(home).glob("state/runs.sqlite*"))


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_export_erasure_and_purge_work_from_the_shared_database(tmp_path: Path, shared_url: str) -> None:
    """``gdpr export``/``erase`` and the retention purge find the runs and conversations in PostgreSQL and remove
    them there (the flow run ids are unknown to Prefect: only the state database holds them)."""
    settings = Settings(home=tmp_path / "home", state_db_url=shared_url, graph="off")
    backend = settings.state_backend()
    assert backend.dialect == "postgresql"
    index, store = RunIndex(backend), ConversationStore.at(settings.home, backend=backend)
    runs = {user: str(uuid.uuid4()) for user in ("ana", "bo")}
    for user, run in runs.items():
        index.started(run, run, "wf", user)
        key = store.begin("agent-1", f'["{run}", "s"]', run, "s", WORKFLOW)
        store.append(key, [_system(f"{user}-1"), _system(f"{user}-2")])
        index.finished(run, "completed")

    exported = asyncio.run(export_user("ana", settings=settings))
    assert [r.flow_run_id for r in exported.runs] == [runs["ana"]]
    assert [m["content"] for c in exported.conversations for m in c.messages] == ["ana-1", "ana-2"]
    erased = asyncio.run(erase_user("ana", actor="test", settings=settings))
    assert (erased.removed.conversation_messages, erased.removed.indexed_runs) == (2, 1), erased
    assert index.of_user("ana") == [] and store.of_runs([runs["ana"]]) == []
    assert [r.flow_run_id for r in index.of_user("bo")] == [runs["bo"]] and store.of_runs([runs["bo"]])

    cutoff = datetime.now(UTC) + timedelta(seconds=1)
    purged = asyncio.run(purge(actor="test", cutoff=cutoff, settings=settings))
    assert (purged.removed.conversation_messages, purged.removed.indexed_runs) == (2, 1), purged
    assert index.of_user("bo") == [] and store.of_runs([runs["bo"]]) == []
