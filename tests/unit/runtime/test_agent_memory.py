"""The memory store (``runtime/agent_memory.py``): per-key versions, compare-and-set, limits, replays, inheritance,
forgetting, and concurrent writers in separate processes. A SQLite file in a temporary folder; no server."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from support.tool_work import DEFINITION, slot_record, tool_work

from agentparty.models.memory import ChangedMemory, MemoryChange, MemoryConfig
from agentparty.models.run_history import task_id_for
from agentparty.runtime.agent_memory import (
    AgentMemoryStore,
    Engagement,
    MemoryConflict,
    MemoryFull,
    MemoryWrite,
    entry_bytes,
)
from agentparty.runtime.graph_migrations import MIGRATIONS
from agentparty.runtime.run_recorder import RunGraph

HERE = Engagement("run-1", "note")
LIMITS = MemoryConfig()


@pytest.fixture
def memory(tmp_path: Path) -> AgentMemoryStore:
    return AgentMemoryStore.at(tmp_path)


def test_every_change_gets_the_next_version_and_the_last_writer_wins(memory: AgentMemoryStore) -> None:
    first = memory.write("a", "city", "Paris", limits=LIMITS, where=HERE)
    second = memory.write("a", "city", {"name": "Rome"}, limits=LIMITS, where=HERE)
    assert (first.version, first.previous_version, second.version, second.previous_version) == (1, None, 2, 1)
    entry = memory.get("a", "city")
    assert entry is not None and (entry.value, entry.version) == ({"name": "Rome"}, 2)
    assert entry.size_bytes == entry_bytes("city", '{"name":"Rome"}') == 19
    deleted = memory.delete("a", "city", where=HERE)
    assert (deleted.version, memory.get("a", "city")) == (3, None)
    again = memory.write("a", "city", "Oslo", limits=LIMITS, where=HERE, expected_version=0)
    assert again.version == 4, "a deleted key keeps counting: an old expected_version never matches it again"
    assert memory.get("b", "city") is None, "each agent has its own memory"


def test_compare_and_set(memory: AgentMemoryStore) -> None:
    memory.write("a", "k", 1, limits=LIMITS, where=HERE, expected_version=0)
    with pytest.raises(MemoryConflict) as exists:
        memory.write("a", "k", 2, limits=LIMITS, where=HERE, expected_version=0)
    assert (exists.value.current, str(exists.value).split(";")[0]) == (
        1,
        "conflict: 'k' exists at version 1 (expected_version 0 asserts a new key)",
    )
    with pytest.raises(MemoryConflict, match=r"'k' is at version 1, not 3"):
        memory.write("a", "k", 2, limits=LIMITS, where=HERE, expected_version=3)
    with pytest.raises(MemoryConflict, match=r"'nope' does not exist \(expected_version 2\)"):
        memory.write("a", "nope", 2, limits=LIMITS, where=HERE, expected_version=2)
    with pytest.raises(MemoryConflict, match=r"'k' is at version 1, not 2"):
        memory.delete("a", "k", where=HERE, expected_version=2)
    assert memory.write("a", "k", 2, limits=LIMITS, where=HERE, expected_version=1).version == 2
    assert [c.version for c in memory.changes("a", HERE)] == [1, 2], "refused writes leave no change"


def test_limits_refuse_a_write_and_say_why(memory: AgentMemoryStore) -> None:
    limits = MemoryConfig(max_bytes=30, max_keys=2)
    memory.write("a", "k1", "x" * 10, limits=limits, where=HERE)  # 2 + 12 = 14 bytes
    with pytest.raises(MemoryFull) as full:
        memory.write("a", "k2", "y" * 20, limits=limits, where=HERE)  # 2 + 22 = 24 more: 38
    assert str(full.value).startswith(
        "memory full: 'k2' with this value takes 24 bytes and the rest of the memory 14, 38 in all, over the "
        "limit of 30 bytes (max_bytes) by 8"
    )
    assert memory.write("a", "k1", "x" * 26, limits=limits, where=HERE).used_bytes == 30, "overwriting frees the old"
    memory.write("a", "k1", "", limits=limits, where=HERE)
    memory.write("a", "k2", "", limits=limits, where=HERE)
    with pytest.raises(MemoryFull, match=r"it holds 2 keys and the limit is 2 \(max_keys\)"):
        memory.write("a", "k3", "", limits=limits, where=HERE)
    assert memory.usage("a") == (8, 2)
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        memory.write("a", "k1", object(), limits=limits, where=HERE)
    with pytest.raises(ValueError):
        memory.write("a", "k1", float("nan"), limits=limits, where=HERE)


def test_a_replayed_request_is_applied_once(memory: AgentMemoryStore) -> None:
    first = memory.write("a", "k", "v", limits=LIMITS, where=HERE, request="call-1", expected_version=0)
    replay = memory.write("a", "k", "v", limits=LIMITS, where=HERE, request="call-1", expected_version=0)
    assert replay == MemoryWrite("k", 1, None, first.used_bytes, 1, replayed=True)
    gone = memory.delete("a", "k", where=HERE, request="call-2")
    assert memory.delete("a", "k", where=HERE, request="call-2") == MemoryWrite(
        "k", gone.version, 1, 0, 0, replayed=True
    )
    assert [(c.version, c.operation) for c in memory.changes("a", HERE)] == [(1, "set"), (2, "delete")]
    assert memory.write("a", "k", "v", limits=LIMITS, where=HERE, request="call-3").version == 3


def test_changes_are_per_engagement_and_never_hold_the_value(memory: AgentMemoryStore) -> None:
    memory.write("a", "k", "secret value", limits=LIMITS, where=HERE)
    memory.write("a", "k", "other", limits=LIMITS, where=Engagement("run-1", "note[1]"))
    memory.write("a", "k", "third", limits=LIMITS, where=Engagement("run-2", "note"))
    [change] = memory.changes("a", HERE)
    assert (change.task_id, change.step_id, change.version, change.size_bytes) == (task_id_for("run-1"), "note", 1, 15)
    assert "secret value" not in change.model_dump_json()
    assert memory.changes("a", HERE) == (change,), "the same change, with the same id, every time it is read"


def test_initialise_copies_what_fits_once(memory: AgentMemoryStore) -> None:
    for key in ("a", "b", "c"):
        memory.write("old", key, key * 10, limits=LIMITS, where=HERE)
    memory.delete("old", "b", where=HERE)
    assert memory.initialise("new", HERE, MemoryConfig(max_keys=1), source="old") == (1, 1)
    assert [(e.key, e.version) for e in memory.entries("new")] == [("c", 1)], "the most recent first"
    assert memory.initialise("new", HERE, LIMITS, source="old") is None, "never copied twice"
    assert [(c.key, c.operation) for c in memory.changes("new", HERE)] == [("c", "inherit")]
    assert memory.initialise("empty", HERE, LIMITS) == (0, 0) and memory.initialised("empty")


def test_forget_erases_everything_and_the_agent_does_not_inherit_again(memory: AgentMemoryStore) -> None:
    memory.write("a", "k", 1, limits=LIMITS, where=HERE)
    memory.write("a", "j", 1, limits=LIMITS, where=HERE)
    memory.delete("a", "j", where=HERE)
    memory.snapshot("a", HERE, lambda entries: f"{len(entries)} entries")
    memory.write("other", "k", 1, limits=LIMITS, where=HERE)
    forgotten = memory.forget("a")
    assert (forgotten.known, forgotten.keys, forgotten.changes, forgotten.snapshots) == (True, 1, 3, 1)
    assert memory.entries("a") == [] and memory.changes("a", HERE) == () and memory.usage("a") == (0, 0)
    assert memory.initialised("a") and memory.initialise("a", HERE, LIMITS, source="other") is None
    assert memory.get("other", "k") is not None, "other agents keep theirs"
    assert memory.forget("never-seen").known is False
    assert "never-seen" not in memory.agents() and "a" in memory.agents()


def test_a_snapshot_is_taken_once_per_engagement(memory: AgentMemoryStore) -> None:
    memory.write("a", "k", 1, limits=LIMITS, where=HERE)
    shown = memory.snapshot("a", HERE, lambda entries: ",".join(f"{e.key}={e.value}" for e in entries))
    memory.write("a", "k", 2, limits=LIMITS, where=HERE)
    assert memory.snapshot("a", HERE, lambda entries: "rendered again") == shown == "k=1"
    assert memory.snapshot("a", Engagement("run-2", "note"), lambda e: f"k={e[0].value}") == "k=2"


def test_a_slot_writes_each_change_once_as_a_node_the_agent_changed(memory: AgentMemoryStore) -> None:
    work = tool_work(turns=())
    where = Engagement("run-key-1", "research")
    memory.write(work.agent.id, "k", "v", limits=LIMITS, where=where)
    memory.delete(work.agent.id, "k", where=where)
    changes = memory.changes(work.agent.id, where)
    batch = RunGraph(DEFINITION, "run-key-1", "ana").step([slot_record(dataclasses.replace(work, memory=changes))])
    nodes = [n for n in batch.nodes if isinstance(n, MemoryChange)]
    assert nodes == list(changes) and {n.id for n in nodes} <= batch.ensured, "created once, never updated"
    links = [e for e in batch.edges if isinstance(e.props, ChangedMemory)]
    assert [(e.source_id, e.target_id, e.create_only) for e in links] == [(work.agent.id, c.id, True) for c in changes]
    assert [(n.operation, n.version, n.task_id) for n in nodes] == [
        ("set", 1, task_id_for("run-key-1")),
        ("delete", 2, task_id_for("run-key-1")),
    ]
    assert not [
        n for n in RunGraph(DEFINITION, "r", "ana").step([slot_record(work)]).nodes if isinstance(n, MemoryChange)
    ]
    assert [m.version for m in MIGRATIONS if "MemoryChange" in " ".join(m.statements)] == [4]
