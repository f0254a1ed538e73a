"""What each home store gives up for an erasure (some runs) and for a purge (what is older than a cutoff)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agentparty.models.agent import WorkflowState
from agentparty.models.memory import MemoryConfig
from agentparty.models.messages import UserMessage
from agentparty.runtime.agent_memory import AgentMemoryStore, Engagement
from agentparty.runtime.conversations import ConversationStore
from agentparty.runtime.erasure import forget_memory_before, forget_memory_of_runs, remove_result_files
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.run_index import RunIndex
from agentparty.runtime.state_db import state_db
from agentparty.runtime.webhook_deliveries import WebhookDeliveries

LIMITS = MemoryConfig()


def test_the_run_index_knows_whose_runs_are_whose(tmp_path: Path) -> None:
    index = RunIndex.at(tmp_path)
    index.started("f1", "f1", "wf", "ana")
    index.started("f2", "f2", "wf", "bo")
    index.started("f3", "f1", "wf", "ana")  # a resume of f1: same run key, another flow run
    index.finished("f1", "completed")
    runs = index.of_user("ana")
    assert [(r.flow_run_id, r.run_key, r.status) for r in runs] == [("f1", "f1", "completed"), ("f3", "f1", None)]
    assert {r.flow_run_id for r in index.started_before(datetime.now(UTC) + timedelta(seconds=1))} == {"f1", "f2", "f3"}
    assert index.started_before(datetime.now(UTC) - timedelta(days=1)) == []
    assert index.forget(["f1", "f3"]) == 2
    assert index.of_user("ana") == [] and [r.flow_run_id for r in index.of_user("bo")] == ["f2"]


def test_conversations_of_runs_go_and_others_stay(tmp_path: Path) -> None:
    store = ConversationStore.at(tmp_path)
    workflow = WorkflowState(workflow_id="wf", run_id="r1", current_step="s")
    mine = store.begin("agent", '["r1", "s"]', "r1", "s", workflow)
    theirs = store.begin("agent", '["r2", "s"]', "r2", "s", workflow)
    store.append(mine, [UserMessage(content="secret of r1", user_id="ana", session_id="r1")])
    store.append(theirs, [UserMessage(content="r2's", user_id="bo", session_id="r2")])
    assert [e.id for e in store.of_runs(["r1"])] == [mine]
    assert store.forget_runs(["r1"]) == 1
    assert store.of_runs(["r1"]) == [] and store.page(theirs).total == 1
    assert store.forget_before(datetime.now(UTC) - timedelta(days=1)) == 0
    assert store.forget_before(datetime.now(UTC) + timedelta(seconds=1)) == 1


def test_memory_written_by_erased_runs_goes_where_it_is_theirs(tmp_path: Path) -> None:
    memory = AgentMemoryStore.at(tmp_path)
    memory.write("a", "mine", "user data", limits=LIMITS, where=Engagement("r1", "s"))
    memory.write("a", "shared", "from r1", limits=LIMITS, where=Engagement("r1", "s"))
    memory.write("a", "shared", "from r2", limits=LIMITS, where=Engagement("r2", "s"))  # overwritten since
    memory.snapshot("a", Engagement("r1", "s"), lambda entries: "snapshot")
    forgotten = forget_memory_of_runs(memory.path, ["r1"])
    assert (forgotten.entries, forgotten.changes, forgotten.snapshots) == (1, 2, 1)
    assert memory.get("a", "mine") is None
    shared = memory.get("a", "shared")
    assert shared is not None and shared.value == "from r2"
    again = memory.write("a", "mine", "new", limits=LIMITS, where=Engagement("r3", "s"))
    assert again.version == 2, "the erased key keeps its version: no version number is reused"
    assert forget_memory_before(memory.path, datetime.now(UTC) + timedelta(seconds=1)).changes == 2
    assert memory.get("a", "shared") is not None, "a purge keeps the agents' current memory"


def test_deliveries_and_delivered_events_of_runs_go(tmp_path: Path) -> None:
    deliveries = WebhookDeliveries.at(tmp_path)
    first = deliveries.accept("wf", "k1", "flow/dep", {"x": 1}).delivery
    second = deliveries.accept("wf", "k2", "flow/dep", {"x": 2}).delivery
    deliveries.record_run(first.delivery_id, "run-1")
    deliveries.record_run(second.delivery_id, "run-2")
    assert deliveries.forget_runs(["run-1"]) == 1
    assert deliveries.get(first.delivery_id) is None and deliveries.get(second.delivery_id) is not None
    assert deliveries.forget_before(time.time() + 1) == 1

    outbox = Outbox.at(tmp_path)
    with state_db(outbox.path, write=True) as db:
        db.executemany(
            "INSERT INTO outbox (event_id, topic, key, event_type, event_version, correlation_id, value, created_at,"
            " delivered_at) VALUES (?, 't', 'k', 'e', '1', ?, x'00', 0, ?)",
            [("e1", "run-1", 1.0), ("e2", "run-1", None), ("e3", "run-2", 2.0)],
        )
    assert outbox.forget_delivered(["run-1"]) == 1, "a pending event is still owed to the broker"
    assert outbox.pending_count("run-1") == 1
    assert outbox.forget_delivered_before(1.5) == 0 and outbox.forget_delivered_before(3.0) == 1


def test_result_files_are_removed_inside_the_results_folder_only(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "abc").write_text("{}")
    outside = tmp_path / "elsewhere"
    outside.write_text("{}")
    assert remove_result_files(results, ["abc", str(results / "abc"), str(outside), "../elsewhere", "missing"]) == 1
    assert not (results / "abc").exists() and outside.exists()
