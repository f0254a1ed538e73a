"""Tools in the run's graph batches (``RunGraph.step``): Tool nodes, USED_TOOL links with the slot's counts. No server."""

from __future__ import annotations

from datetime import timedelta

from support.tool_work import DEFINITION, START, slot_record, tool_work

from agentparty.models.graph import (
    NODE_TYPES,
    RELATIONSHIP_TYPES,
    SEED_NODE_LABELS,
    Tool,
    UsedTool,
    stable_id,
)
from agentparty.runtime.graph_migrations import MIGRATIONS
from agentparty.runtime.graph_store import GraphBatch
from agentparty.runtime.run_recorder import RunGraph

RUN_KEY = "run-key-1"


def batch_for(*works: object) -> GraphBatch:
    run = RunGraph(DEFINITION, RUN_KEY, "ana")
    return run.step([slot_record(work) for work in works])  # type: ignore[arg-type]


def used(batch: GraphBatch) -> list[tuple[str, str, UsedTool]]:
    return [(e.source_id, e.target_id, e.props) for e in batch.edges if isinstance(e.props, UsedTool)]


def test_tool_is_an_extension_node_with_an_id_from_what_it_is() -> None:
    assert Tool in NODE_TYPES and "Tool" not in SEED_NODE_LABELS and UsedTool in RELATIONSHIP_TYPES
    assert (UsedTool.type, UsedTool.source, UsedTool.target) == ("USED_TOOL", ("Agent",), ("Tool",))
    docs = Tool.named("fetch", "mcp", "web")
    assert docs.id == stable_id("tool", "mcp", "web", "fetch") == Tool.named("fetch", "mcp", "web").id
    assert Tool.named("fetch", "python").id == stable_id("tool", "python", "", "fetch") != docs.id
    assert Tool.named("fetch", "mcp", "other").id != docs.id


def test_a_slot_writes_one_tool_per_distinct_tool_and_one_link_each_with_its_counts() -> None:
    work = tool_work()
    batch = batch_for(work)
    tools = {n.id: n for n in batch.nodes if isinstance(n, Tool)}
    search, fetch, delete = (
        Tool.named("search_docs", "python"),
        Tool.named("fetch", "mcp", "web"),
        Tool.named("delete_all", "python"),
    )
    assert tools == {search.id: search, fetch.id: fetch, delete.id: delete}
    assert {search.id, fetch.id, delete.id} <= batch.ensured, "ensured: an existing Tool is left as it is"
    links = {target: props for source, target, props in used(batch) if source == work.agent.id}
    assert len(used(batch)) == 3 and set(links) == set(tools)
    task_id = stable_id("task", RUN_KEY)
    assert {t: (p.task_id, p.step_id, p.calls, p.errors, p.refused) for t, p in links.items()} == {
        search.id: (task_id, "research", 2, 0, 0),  # c1 answered, c3 reused from its checkpoint
        fetch.id: (task_id, "research", 1, 1, 0),
        delete.id: (task_id, "research", 1, 0, 1),  # refused, not counted as an error
    }
    assert {p.last_used for p in links.values()} == {START + timedelta(minutes=5)}, (
        "the engagement's last transition: a replay writes the same value"
    )


def test_links_merge_on_task_and_slot_and_set_their_counts() -> None:
    statements = [q for q, _ in batch_for(tool_work()).statements() if "USED_TOOL" in q]
    assert statements == [
        "UNWIND $rows AS row MATCH (a:Agent {id: row.s}) MATCH (b:Tool {id: row.t}) "
        "MERGE (a)-[r:USED_TOOL {task_id: row.props.task_id, step_id: row.props.step_id}]->(b) SET r += row.props"
    ]
    edges = [e for e in batch_for(tool_work()).edges if isinstance(e.props, UsedTool)]
    assert all(e.key == ("task_id", "step_id") and not e.create_only for e in edges)


def test_each_slot_has_its_own_links_and_a_slot_without_turns_none() -> None:
    batch = batch_for(tool_work("research[a]"), tool_work("research[b]"), tool_work("research[c]", turns=()))
    slots = sorted((props.step_id, props.calls) for _, _, props in used(batch))
    assert slots == [
        ("research[a]", 1),
        ("research[a]", 1),
        ("research[a]", 2),
        ("research[b]", 1),
        ("research[b]", 1),
        ("research[b]", 2),
    ]
    assert not [n for n in batch_for(tool_work(turns=())).nodes if isinstance(n, Tool)]


def test_migration_3_adds_the_tool_constraint_and_leaves_the_earlier_ones() -> None:
    assert [m.version for m in MIGRATIONS][:3] == [1, 2, 3]
    assert [m.checksum for m in MIGRATIONS[:2]] == ["4432041275b8cb93", "47b44d77117b1f05"], (
        "migrations 1 and 2 are recorded in existing graphs: never edit them"
    )
    assert MIGRATIONS[2].statements == ("CREATE CONSTRAINT tool_id IF NOT EXISTS FOR (n:Tool) REQUIRE n.id IS UNIQUE",)
