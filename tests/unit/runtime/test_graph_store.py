"""GraphStore batches without a server (the unit half): one UNWIND statement per label and relationship type, and
edges refuse labels their type does not connect.

Writes against the real local Bolt server (batched, idempotent, safe under concurrent
writers) are ``tests/integration/graph/test_graph_store.py``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

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
from agentparty.runtime.graph_store import Edge, GraphBatch


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


def test_one_batch_statement_per_label_and_type() -> None:
    batch, _, _ = sample_batch()
    queries = [q for q, _ in batch.statements()]
    assert (
        len(queries) == 5 + 5
    )  # labels: Agent, TemplateVersion, AgentState, SystemActor, Capability; five relationship types
    assert all(q.startswith("UNWIND $rows AS row") for q in queries)


def test_edges_refuse_labels_their_type_does_not_connect() -> None:
    with pytest.raises(ValueError, match="HAS_CAPABILITY goes from"):
        Edge(HasCapability(proficiency=0.5), "a", "b", target_label="Team").labels()
