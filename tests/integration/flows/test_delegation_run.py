"""Delegation in a real run: two levels of ``ask_agent`` hand-offs, then one refused at the depth limit.

A one-step workflow runs on the real Prefect server; its agent and the agents it asks talk to OpenAI's SDK
against a local wire server scripted turn by turn (the asker waits for each answer, so the order is fixed). The
run writes to the real Bolt graph server and emits through the outbox into the real Kafka-protocol broker
(Tansu). Checked with the official clients: the team's ``messages_exchanged`` in ``team_performance`` read back
from the broker, and the same count in the graph's ASKED links read with the ``neo4j`` driver; the asked agents'
turns ran as checkpoints of their own slots; a resumed run asks no model again and counts nothing twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.llm_wire import WireServer
from support.run_services_support import services

from agentparty.flows import CompileOptions, WorkflowResult, compile_workflow
from agentparty.models import ModelRegistry, WorkflowDefinition
from agentparty.models.config import KafkaConfig
from agentparty.models.events import TeamPerformanceEvent
from agentparty.models.graph import stable_id
from agentparty.runtime.breakers import SqliteBreakerStore
from agentparty.runtime.budgets import BudgetLedger
from agentparty.runtime.event_bus import EventBus
from agentparty.runtime.event_consumer import EventConsumer
from agentparty.runtime.graph_store import GraphStore
from agentparty.runtime.model_router import ModelRouter
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.providers.openai_provider import OpenAIProvider
from agentparty.runtime.relay import OutboxRelay
from agentparty.runtime.run_recorder import GraphRecorder
from agentparty.tasks.agent import ModelAgentRunner
from agentparty.tasks.delegation import ASK_AGENT, enable_delegation
from agentparty.tasks.templates import TemplateRegistry, persistent_agent_id

pytestmark = pytest.mark.usefixtures("prefect_server")

MODEL = "gpt-wire-1"
DEFINITION = {
    "id": "delegation",
    "name": "Delegation",
    "teamTokenBudget": 200000,
    "steps": [
        {
            "id": "draft",
            "type": "task",
            "configuration": {
                "agent": "writer",
                "prompt": "Is Rome warmer than Paris today?",
                "delegates": ["critic", "researcher"],
                "outputSchema": {
                    "type": "object",
                    "required": ["summary"],
                    "properties": {"summary": {"type": "string"}},
                },
            },
        }
    ],
    "triggers": [{"type": "manual"}],
    "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
}


def ask(agent: str, question: str) -> dict[str, Any]:
    return {"name": ASK_AGENT, "arguments": {"agent": agent, "question": question}}


def agent_id(name: str) -> str:
    return persistent_agent_id("ad-hoc", name, MODEL)


def runner(home: Path, wire: WireServer) -> ModelAgentRunner:
    models = ModelRegistry.model_validate(
        {
            "defaultModel": MODEL,
            "availableModels": {
                MODEL: {
                    "provider": "openai",
                    "name": MODEL,
                    "capabilities": {"maxTokens": 8000, "supportsFunctions": True, "supportsStreaming": True},
                    "pricing": {"inputPerMillion": 1.0, "outputPerMillion": 2.0},
                }
            },
            "fallbackChain": [MODEL],
        }
    )
    router = ModelRouter(
        registry=models,
        providers={"openai": OpenAIProvider("sk-test", base_url=wire.url + "/v1", timeout=10)},
        breaker_store=SqliteBreakerStore(home / "breakers.sqlite"),
        ledger=BudgetLedger(home / "budgets.sqlite"),
    )
    return enable_delegation(ModelAgentRunner(router=router, templates=TemplateRegistry.at(home), stream=False))


@pytest.fixture
def bus(kafka_broker: Any, tmp_path: Path) -> Iterator[tuple[EventBus, KafkaConfig, str]]:
    prefix = f"asks{uuid.uuid4().hex[:8]}."
    config = KafkaConfig(bootstrap_servers=[kafka_broker.bootstrap_servers], group_id="tests")
    outbox = Outbox(tmp_path / "outbox.sqlite", prefix)
    relay = OutboxRelay(outbox, config, message_timeout_ms=3000)
    yield EventBus(outbox, relay, mirror=False), config, prefix
    relay.stop()


def run(agent_runner: ModelAgentRunner, store: GraphStore, bus: EventBus, key: str) -> WorkflowResult:
    recorder = GraphRecorder(store)
    options = CompileOptions(services=services(agent_runner=agent_runner, recorder=recorder, events=bus, user_id="ana"))
    flow = compile_workflow(WorkflowDefinition.model_validate(DEFINITION), options=options)
    return asyncio.run(flow(resume_key=key))


def asked_links(store: GraphStore, key: str) -> dict[tuple[str, str], tuple[str, int, int]]:
    records, _, _ = store.driver.execute_query(
        "MATCH (a:Agent)-[r:ASKED]->(b:Agent) WHERE r.task_id = $task "
        "RETURN a.id AS asker, b.id AS asked, r.step_id AS slot, r.questions AS questions, r.answers AS answers",
        task=stable_id("task", key),
        database_=store.database,
    )
    return {(r["asker"], r["asked"]): (r["slot"], r["questions"], r["answers"]) for r in records}


def delegates_in_team(store: GraphStore, key: str) -> dict[str, str]:
    records, _, _ = store.driver.execute_query(
        "MATCH (a:Agent)-[m:MEMBER_OF]->(t:Team {id: $team}) RETURN a.id AS agent, m.role AS role",
        team=stable_id("team", key),
        database_=store.database,
    )
    return {r["agent"]: r["role"] for r in records}


async def task_run_names(flow_name: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    async with get_client() as client:
        runs = await client.read_task_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))
    return [r.name for r in runs]


def test_two_levels_deep_then_refused_counted_in_the_team_event_and_the_graph(
    graph_store: GraphStore, bus: tuple[EventBus, KafkaConfig, str], tmp_path: Path
) -> None:
    event_bus, config, prefix = bus
    key = f"asks-{uuid.uuid4()}"
    with WireServer() as wire:
        wire.script(tool_calls=[ask("critic", "Is Rome warmer?")])  # writer
        wire.script(tool_calls=[ask("researcher", "Today's temperature in Rome?")])  # critic, depth 1
        wire.script(tool_calls=[ask("critic", "Can you check?")])  # researcher, depth 2: refused
        wire.script(text="Rome 24 C")
        wire.script(text="Yes: Rome 24 C, Paris 18 C")
        wire.script(output={"summary": "Rome is warmer"})
        result = run(runner(tmp_path, wire), graph_store, event_bus, key)
        assert result.status.value == "completed", result.reason
        refusal = wire.requests[3].tool_results[0]["content"]
        assert "max_delegation_depth 2 reached" in refusal

        # A resumed run reuses the step: nobody is asked again, nothing is counted twice.
        resumed_home = tmp_path / "resumed"
        resumed_home.mkdir()
        again = run(runner(resumed_home, wire), graph_store, event_bus, key)
        assert again.steps["draft"].cached and len(wire.requests) == 6
    assert result.events_pending == 0 and again.events_pending == 0

    writer, critic, researcher = agent_id("writer"), agent_id("critic"), agent_id("researcher")
    links = asked_links(graph_store, key)
    assert {pair: counts[1:] for pair, counts in links.items()} == {
        (writer, critic): (1, 1),
        (critic, researcher): (1, 1),
    }
    assert links[(writer, critic)][0] == "draft" and links[(critic, researcher)][0].startswith("draft→critic#1.")
    assert sum(q + a for _, q, a in links.values()) == 4
    assert delegates_in_team(graph_store, key) == {writer: "draft", critic: "delegate", researcher: "delegate"}

    with EventConsumer(config, prefix) as consumer:
        events = list(consumer.events())
    performance = [e for e in events if isinstance(e, TeamPerformanceEvent)]
    assert len(performance) == 1, "the resumed run's team event has the same id: sent once"
    metrics = performance[0].payload.collaboration_metrics
    assert (metrics.messages_exchanged, metrics.pair_count) == (4, 3)
    provisioned = sorted(e.payload.agent_id for e in events if e.event_type == "agent_provisioned")
    assert provisioned == sorted([writer, critic, researcher])
    draft = result.steps["draft"]
    own = sum(t.input_tokens + t.output_tokens for t in draft.turns)
    assert performance[0].payload.token_usage == result.tokens == draft.tokens > own > 0, "the asked agents' count"

    names = asyncio.run(task_run_names("Delegation"))
    asked_turns = [n for n in names if n.startswith("draft→critic#1.") and n.endswith(" · turn 1")]
    assert len(asked_turns) == 2, f"the critic's and the researcher's first turns are checkpoints: {sorted(set(names))}"
