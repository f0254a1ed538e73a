"""Tools in the real local Bolt server: a run's step with tool calls writes Tool nodes and USED_TOOL counts, once.

Written the way a run writes (``RunGraph`` batches through ``GraphRecorder``) and read back with the official
``neo4j`` driver on its own connection.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, timedelta
from typing import Any

import pytest
from support.tool_work import DEFINITION, START, sample_turns, slot_record, step_result, tool_work

from agentparty.models.graph import Tool, stable_id
from agentparty.models.tools import TurnRecord
from agentparty.runtime.graph_server import DATABASE_NAME
from agentparty.runtime.graph_store import GraphStore
from agentparty.runtime.run_recorder import GraphRecorder, RunGraph

SEARCH, FETCH, DELETE = (
    Tool.named("search_docs", "python"),
    Tool.named("fetch", "mcp", "web"),
    Tool.named("delete_all", "python"),
)


@pytest.fixture(scope="module")
def driver(bolt_server: Any) -> Iterator[Any]:
    from neo4j import GraphDatabase

    config = bolt_server.database_config()
    with GraphDatabase.driver(config.uri, auth=(config.username, config.password.get_secret_value())) as drv:
        yield drv


def record_run(store: GraphStore, run_key: str, *slots: str, turns: tuple[TurnRecord, ...] | None = None) -> None:
    """The run's opening write, then one step whose slots' engagements called the sample tools (a resume: the same)."""
    run = RunGraph(DEFINITION, run_key, "ana")
    records = [slot_record(tool_work(slot, turns)) for slot in slots]
    for record in records:
        run.tally.add(step_result(record.slot), [record])
    recorder = GraphRecorder(store)

    async def write() -> None:
        await recorder.write(run.started(), "run started")
        await recorder.write(run.step(records), "step")

    asyncio.run(write())


def usage(driver: Any, run_key: str) -> dict[tuple[str, str], tuple[int, int, int]]:
    records, _, _ = driver.execute_query(
        "MATCH (a:Agent)-[r:USED_TOOL]->(t:Tool) WHERE r.task_id = $task "
        "RETURN t.name AS tool, r.step_id AS slot, r.calls AS calls, r.errors AS errors, r.refused AS refused",
        task=stable_id("task", run_key),
        database_=DATABASE_NAME,
    )
    return {(r["tool"], r["slot"]): (r["calls"], r["errors"], r["refused"]) for r in records}


def tools(driver: Any) -> dict[str, dict[str, Any]]:
    records, _, _ = driver.execute_query(
        "MATCH (t:Tool) WHERE t.id IN $ids RETURN t.id AS id, properties(t) AS p",
        ids=[SEARCH.id, FETCH.id, DELETE.id],
        database_=DATABASE_NAME,
    )
    return {r["id"]: dict(r["p"]) for r in records}


EXPECTED = {
    ("search_docs", "research[a]"): (2, 0, 0),
    ("fetch", "research[a]"): (1, 1, 0),
    ("delete_all", "research[a]"): (1, 0, 1),
    ("search_docs", "research[b]"): (2, 0, 0),
    ("fetch", "research[b]"): (1, 1, 0),
    ("delete_all", "research[b]"): (1, 0, 1),
}


def test_a_step_writes_tools_and_per_slot_counts_and_writing_it_again_changes_nothing(
    graph_store: GraphStore, driver: Any
) -> None:
    run_key = f"tooled-{uuid.uuid4()}"
    record_run(graph_store, run_key, "research[a]", "research[b]")
    assert usage(driver, run_key) == EXPECTED
    stored = tools(driver)
    assert {k: (p["name"], p["source"], p.get("server")) for k, p in stored.items()} == {
        SEARCH.id: ("search_docs", "python", None),
        FETCH.id: ("fetch", "mcp", "web"),
        DELETE.id: ("delete_all", "python", None),
    }
    records, _, _ = driver.execute_query(
        "MATCH (a:Agent {id: $agent})-[r:USED_TOOL {task_id: $task, step_id: 'research[a]'}]->(t:Tool {id: $tool}) "
        "RETURN r.last_used AS at",
        agent=tool_work().agent.id,
        task=stable_id("task", run_key),
        tool=SEARCH.id,
        database_=DATABASE_NAME,
    )
    assert [r["at"].to_native().replace(tzinfo=UTC) for r in records] == [START + timedelta(minutes=5)]

    # A resumed run writes the same step again: the links are found by task and slot, their counts set, not added.
    record_run(graph_store, run_key, "research[a]", "research[b]")
    record_run(graph_store, run_key, "research[a]", "research[b]")
    assert usage(driver, run_key) == EXPECTED
    count, _, _ = driver.execute_query(
        "MATCH ()-[r:USED_TOOL]->() WHERE r.task_id = $task RETURN count(r) AS n",
        task=stable_id("task", run_key),
        database_=DATABASE_NAME,
    )
    assert count[0]["n"] == 6
    assert len(tools(driver)) == 3

    # A slot written with other turns (an attempt that called less) has that attempt's counts: set, not summed.
    record_run(graph_store, run_key, "research[a]", turns=sample_turns()[:1])
    assert usage(driver, run_key) == EXPECTED | {("search_docs", "research[a]"): (1, 0, 0)}


def test_another_run_calling_the_same_tools_shares_their_nodes(graph_store: GraphStore, driver: Any) -> None:
    first, second = f"tooled-{uuid.uuid4()}", f"tooled-{uuid.uuid4()}"
    record_run(graph_store, first, "research")
    record_run(graph_store, second, "research")
    assert (
        usage(driver, first)
        == usage(driver, second)
        == {
            ("search_docs", "research"): (2, 0, 0),
            ("fetch", "research"): (1, 1, 0),
            ("delete_all", "research"): (1, 0, 1),
        }
    )
    records, _, _ = driver.execute_query(
        "MATCH (t:Tool) WHERE t.id IN $ids RETURN count(t) AS n",
        ids=[SEARCH.id, FETCH.id, DELETE.id],
        database_=DATABASE_NAME,
    )
    assert records[0]["n"] == 3, "one Tool node per tool, whichever runs call it"


def test_tool_ids_are_unique_in_the_schema(driver: Any, graph_store: GraphStore) -> None:
    from neo4j.exceptions import ConstraintError, Neo4jError

    records, _, _ = driver.execute_query("SHOW CONSTRAINTS", database_=DATABASE_NAME)
    assert "tool_id" in " ".join(str(dict(r)) for r in records)
    tool_id = str(uuid.uuid4())
    driver.execute_query("CREATE (:Tool {id: $id, name: 'a', source: 'python'})", id=tool_id, database_=DATABASE_NAME)
    with pytest.raises((ConstraintError, Neo4jError)):
        driver.execute_query(
            "CREATE (:Tool {id: $id, name: 'b', source: 'python'})", id=tool_id, database_=DATABASE_NAME
        )
