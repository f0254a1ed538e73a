"""GraphStore writes against the real local Bolt server: batched, idempotent, safe under concurrent writers.

The statements a batch makes, and edges refusing labels their type does not connect,
need no server: ``tests/unit/runtime/test_graph_store.py``.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from agentparty.models.graph import (
    Agent,
    AgentStateRecord,
    Capability,
    HasCapability,
    HasState,
    Instantiates,
    SystemActor,
    TemplateVersion,
    TransitionedBy,
    WorkedWith,
)
from agentparty.models.states import AgentLifecycleState
from agentparty.runtime.graph_server import DATABASE_NAME
from agentparty.runtime.graph_store import GraphBatch, GraphStore


@pytest.fixture
def store(graph_store: GraphStore) -> GraphStore:
    return graph_store


def count_ids(store: GraphStore, label: str, ids: list[str]) -> int:
    records, _, _ = store.driver.execute_query(
        f"UNWIND $ids AS id MATCH (n:{label} {{id: id}}) RETURN count(n) AS n", ids=ids, database_=DATABASE_NAME
    )
    return int(records[0]["n"])


def edges_between(store: GraphStore, rel_type: str, source_id: str) -> list[dict[str, Any]]:
    records, _, _ = store.driver.execute_query(
        f"MATCH ({{id: $id}})-[r:{rel_type}]->(b) RETURN properties(r) AS p, b.id AS target",
        id=source_id,
        database_=DATABASE_NAME,
    )
    return [{"target": r["target"], **dict(r["p"])} for r in records]


def sample_batch() -> tuple[GraphBatch, Agent, list[Capability]]:
    started = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    agent = Agent(name="writer", model="simulated", created_at=started, updated_at=started)
    peer = Agent(name="reviewer", model="simulated")
    version = TemplateVersion(template_id=str(uuid.uuid4()), version="1.0.0", model="simulated")
    capabilities = [Capability(name=f"cap_{i}") for i in range(3)]
    state = AgentStateRecord(name=AgentLifecycleState.RUNNING, timestamp=started, transition_reason="step draft")
    actor = SystemActor(name="governance", kind="governance")
    batch = GraphBatch().add(agent, peer, version, state, actor, *capabilities)
    batch.link(Instantiates(), agent.id, version.id)
    for i, capability in enumerate(capabilities):
        batch.link(HasCapability(proficiency=0.5 + i / 10), agent.id, capability.id)
    batch.link(HasState(), agent.id, state.id)
    batch.link(TransitionedBy(timestamp=started, state_id=state.id), agent.id, actor.id, target_label="SystemActor")
    batch.link(WorkedWith(success_score=0.8, task_count=1, last_collaboration=started), agent.id, peer.id)
    return batch, agent, capabilities


def test_batch_writes_nodes_and_relationships_once(store: GraphStore) -> None:
    batch, agent, capabilities = sample_batch()
    first = store.write(batch)
    assert first.nodes == 8 and first.relationships == 7
    store.write(batch)  # a retry or a resumed run writes the same batch again
    assert count_ids(store, "Agent", [agent.id]) == 1
    assert count_ids(store, "Capability", [c.id for c in capabilities]) == 3
    assert sorted(e["proficiency"] for e in edges_between(store, "HAS_CAPABILITY", agent.id)) == [0.5, 0.6, 0.7]
    assert len(edges_between(store, "WORKED_WITH", agent.id)) == 1
    assert len(edges_between(store, "TRANSITIONED_BY", agent.id)) == 1


def test_nodes_read_back_equal_what_was_written(store: GraphStore) -> None:
    batch, agent, _ = sample_batch()
    store.write(batch)
    (read,) = store.read_nodes(Agent, [agent.id])
    assert read == agent, "datetimes, enums and JSON fields survive the round trip"


def test_keyed_relationships_keep_each_transition(store: GraphStore) -> None:
    agent, actor = Agent(name="a", model="simulated"), SystemActor(name="governance", kind="governance")
    batch = GraphBatch().add(agent, actor)
    states = [str(uuid.uuid4()), str(uuid.uuid4())]
    for state_id in states:
        batch.link(
            TransitionedBy(timestamp=datetime.now(UTC), state_id=state_id),
            agent.id,
            actor.id,
            target_label="SystemActor",
            key=("state_id",),
        )
    store.write(batch)
    store.write(batch)
    assert sorted(e["state_id"] for e in edges_between(store, "TRANSITIONED_BY", agent.id)) == sorted(states)


def test_concurrent_writers_on_the_same_ids_leave_one_node_each(store: GraphStore) -> None:
    capabilities = [Capability(name=f"shared_{i}") for i in range(20)]
    agents = [Agent(name=f"agent_{i}", model="simulated") for i in range(5)]
    batch = GraphBatch().add(*capabilities, *agents)
    for agent in agents:
        for capability in capabilities:
            batch.link(HasCapability(proficiency=0.5), agent.id, capability.id)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            store.write(batch, "concurrent batch")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert count_ids(store, "Capability", [c.id for c in capabilities]) == 20
    assert all(len(edges_between(store, "HAS_CAPABILITY", a.id)) == 20 for a in agents)
