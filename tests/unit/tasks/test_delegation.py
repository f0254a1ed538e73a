"""``ask_agent``: an agent hands a sub-question to another, through the real runner and the OpenAI SDK.

Every model turn, the asking agent's and the asked agents', goes to one local wire server scripted turn by turn,
in the order the hand-offs make them (the asker waits for the answer, so the order is fixed). The tests check
what each agent was offered and told, what came back as the tool result, the limits' refusals, and what the
asker's engagement record carries: the hand-offs, two agent messages each, with the asked agents' engagements.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from support.llm_wire import Recorded, WireServer
from support.tool_work import tool_work

from agentparty.models import ModelRegistry
from agentparty.models.config import AgentRuntimeConfig
from agentparty.models.engagements import Colleague, Handoff, SlotRecord, messages_exchanged
from agentparty.models.messages import AgentMessage
from agentparty.models.states import AgentLifecycleState
from agentparty.models.tools import ToolPolicy
from agentparty.runtime.breakers import SqliteBreakerStore
from agentparty.runtime.budgets import Budget, BudgetLedger
from agentparty.runtime.model_router import ModelRouter
from agentparty.runtime.providers.openai_provider import OpenAIProvider
from agentparty.tasks.agent import AgentStepRequest, AgentStepResponse, ModelAgentRunner, agent_work_of
from agentparty.tasks.delegation import ASK_AGENT, DELEGATE_ROLE, Delegation, colleagues_for, enable_delegation
from agentparty.tasks.templates import TemplateRegistry, persistent_agent_id

MODEL = "gpt-wire-1"
ANSWER_SCHEMA = {"type": "object", "required": ["summary"], "properties": {"summary": {"type": "string"}}}
TEAM = (Colleague("critic", "critic"), Colleague("researcher", "researcher"))


def ask_call(agent: str, question: str) -> dict[str, Any]:
    return {"name": ASK_AGENT, "arguments": {"agent": agent, "question": question}}


def agent_id(name: str) -> str:
    return persistent_agent_id("ad-hoc", name, MODEL)


def runner(tmp_path: Path, server: WireServer, runtime: AgentRuntimeConfig | None = None) -> ModelAgentRunner:
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
        providers={"openai": OpenAIProvider("sk-test", base_url=server.url + "/v1", timeout=10)},
        breaker_store=SqliteBreakerStore(tmp_path / "breakers.sqlite"),
        ledger=BudgetLedger(tmp_path / "budgets.sqlite"),
    )
    return enable_delegation(
        ModelAgentRunner(
            router=router,
            templates=TemplateRegistry.at(tmp_path, ToolPolicy(), models),
            runtime=runtime or AgentRuntimeConfig(),
            stream=False,
        )
    )


def request(agent_runner: ModelAgentRunner, **fields: Any) -> AgentStepRequest:
    return AgentStepRequest(
        step_id="research",
        agent="analyst",
        prompt="Is Rome warmer than Paris today?",
        output_schema=ANSWER_SCHEMA,
        run_key=f"run-{id(agent_runner)}",
        **({"colleagues": TEAM} | fields),
    )


def run(agent_runner: ModelAgentRunner, **fields: Any) -> AgentStepResponse:
    return asyncio.run(agent_runner.run(request(agent_runner, **fields)))


def offered(recorded: Recorded) -> dict[str, Any]:
    return {t["function"]["name"]: t["function"] for t in recorded.tools}


def said(recorded: Recorded, role: str) -> str:
    return next(m["content"] for m in recorded.json["messages"] if m["role"] == role)


def test_two_levels_deep_then_refused_at_the_depth_limit(tmp_path: Path, server: WireServer) -> None:
    server.script(tool_calls=[ask_call("critic", "Is Rome warmer?")])  # analyst, turn 1
    server.script(tool_calls=[ask_call("researcher", "Today's temperature in Rome?")])  # critic (depth 1)
    server.script(tool_calls=[ask_call("critic", "Can you check?")])  # researcher (depth 2): past the limit
    server.script(text="Rome 24 C")  # researcher answers itself
    server.script(text="Yes: Rome 24 C, Paris 18 C")  # critic
    server.script(output={"summary": "Rome is warmer"})  # analyst, turn 2
    response = run(runner(tmp_path, server))

    assert response.output == {"summary": "Rome is warmer"}
    analyst, critic, researcher, researcher_2, critic_2, analyst_2 = server.requests
    assert offered(analyst)[ASK_AGENT]["parameters"]["properties"]["agent"]["enum"] == ["critic", "researcher"]
    assert "ask_agent tool (critic, researcher)" in said(analyst, "system")
    assert offered(critic)[ASK_AGENT]["parameters"]["properties"]["agent"]["enum"] == ["researcher"], "not itself"
    assert said(critic, "user") == "Is Rome warmer?" and said(researcher, "user") == "Today's temperature in Rome?"
    refusal = researcher_2.tool_results[0]["content"]
    assert refusal.startswith("Error: the call was not made: max_delegation_depth 2 reached: you are 2 hand-off(s)")
    assert critic_2.tool_results[0]["content"] == "Rome 24 C"
    assert analyst_2.tool_results[0]["content"] == "Yes: Rome 24 C, Paris 18 C"

    work = response.work
    assert work is not None
    [to_critic] = work.handoffs
    [to_researcher] = to_critic.work.handoffs
    assert to_critic.slot.startswith("research→critic#1.") and to_researcher.slot.startswith(
        to_critic.slot + "→researcher#1."
    )
    assert (to_critic.asker, to_critic.work.agent.id, to_researcher.asker) == (
        agent_id("analyst"),
        agent_id("critic"),
        agent_id("critic"),
    )
    assert to_critic.question.metadata == {"to": agent_id("critic"), "handoff": to_critic.slot}
    assert to_critic.answer is not None and to_critic.answer.agent_id == agent_id("critic")
    assert (to_critic.answer.content, to_critic.answer.model) == ("Yes: Rome 24 C, Paris 18 C", MODEL)
    assert to_critic.answer.metadata == {"to": agent_id("analyst"), "handoff": to_critic.slot}
    assert to_researcher.work.handoffs == (), "the refused call handed nothing off"
    assert [c.refused for t in to_researcher.work.turns for c in t.tool_calls] == [True]
    for handoff in (to_critic, to_researcher):
        assert handoff.work.role == DELEGATE_ROLE and handoff.work.slot == handoff.slot
        assert handoff.work.agent.status is AgentLifecycleState.COMPLETED and handoff.work.provisioned is not None
    assert messages_exchanged((work,)) == 4
    record = SlotRecord("research", True, response.output, agents=(work,))
    assert [slot for slot, _ in record.engagements()] == ["research", to_critic.slot, to_researcher.slot]


def test_fan_out_past_max_delegations_is_refused(tmp_path: Path, server: WireServer) -> None:
    server.script(tool_calls=[ask_call("critic", "First question?")])
    server.script(text="first answer")
    server.script(tool_calls=[ask_call("researcher", "Second question?")])
    server.script(output={"summary": "with one answer"})
    response = run(runner(tmp_path, server, AgentRuntimeConfig(max_delegations=1)))

    assert len(server.requests) == 4, "the second question reached nobody"
    refusal = server.requests[3].tool_results[1]["content"]
    assert refusal == (
        "Error: the call was not made: max_delegations 1 reached: you have already asked 1 time(s); "
        "answer with what you have"
    )
    assert response.work is not None and [h.slot.split("#")[0] for h in response.work.handoffs] == ["research→critic"]
    assert [(c.ok, c.refused) for t in response.turns for c in t.tool_calls] == [(True, False), (False, True)]


def test_a_wrong_colleague_is_an_error_the_model_corrects(tmp_path: Path, server: WireServer) -> None:
    server.script(tool_calls=[{"name": ASK_AGENT, "arguments": {"agent": "oracle", "question": "?"}}])
    server.script(tool_calls=[ask_call("critic", "Is it warm?")])
    server.script(text="yes")
    server.script(output={"summary": "warm"})
    response = run(runner(tmp_path, server))

    error = server.requests[1].tool_results[0]["content"]
    assert error == "Error: invalid arguments: agent: 'oracle' is not one to ask; ask one of: critic, researcher"
    assert response.work is not None and len(response.work.handoffs) == 1


def test_an_asked_agent_that_fails_is_a_tool_error_and_one_message(tmp_path: Path, server: WireServer) -> None:
    server.script(tool_calls=[ask_call("critic", "Is it warm?")])
    server.script(status=400, error="the critic's request was malformed")
    server.script(output={"summary": "unsure"})
    response = run(runner(tmp_path, server))

    error = server.requests[2].tool_results[0]["content"]
    assert error.startswith("Error: critic could not answer:") and "malformed" in error
    assert response.work is not None
    [handoff] = response.work.handoffs
    assert handoff.answer is None and handoff.messages == 1
    assert handoff.work.agent.status is AgentLifecycleState.FAILED


def test_hand_offs_of_a_failed_attempt_ride_on_the_next_that_succeeds(tmp_path: Path, server: WireServer) -> None:
    agent_runner = runner(tmp_path, server)
    server.script(tool_calls=[ask_call("critic", "Is it warm?")])
    server.script(text="yes")
    server.script(status=400, error="turn 2 refused")
    server.script(output={"summary": "warm"})  # the retry answers at once: no new hand-off

    async def two_attempts() -> tuple[BaseException, AgentStepResponse]:
        with pytest.raises(Exception) as caught:
            await agent_runner.run(request(agent_runner))
        return caught.value, await agent_runner.run(request(agent_runner))

    error, response = asyncio.run(two_attempts())
    failed = agent_work_of(error)
    assert failed is not None and len(failed.handoffs) == 1
    assert response.work is not None and response.work.handoffs == failed.handoffs
    delegation = next(e for e in agent_runner.extensions if isinstance(e, Delegation))
    assert delegation.handoffs(request(agent_runner), drain=False) == (), "carried once, then forgotten"


def test_without_colleagues_no_tool_and_an_agent_never_asks_itself(tmp_path: Path, server: WireServer) -> None:
    server.script(output={"summary": "alone"})
    run(runner(tmp_path, server), colleagues=())
    assert server.requests[0].tools == [] and ASK_AGENT not in said(server.requests[0], "system")

    own = request(runner(tmp_path, server), colleagues=(Colleague("analyst", "analyst"), *TEAM))
    assert list(colleagues_for(own)) == ["critic", "researcher"]
    pinned = request(
        runner(tmp_path, server), version="1.0.0", colleagues=(Colleague("analyst@2.0.0", "analyst", "2.0.0"),)
    )
    assert list(colleagues_for(pinned)) == ["analyst@2.0.0"], "another version of the same template may be asked"


def test_the_team_budget_covers_the_asked_agent(tmp_path: Path, server: WireServer) -> None:
    server.script(tool_calls=[ask_call("critic", "Is it warm? " + "very " * 50)])
    server.script(text="yes")
    server.script(output={"summary": "warm"})
    agent_runner = runner(tmp_path, server)
    team = Budget("team", "team-run", 100_000)
    response = run(agent_runner, budgets=(team,))
    assert response.work is not None
    [handoff] = response.work.handoffs
    used = agent_runner.router.ledger.usage(team)
    asked_tokens = handoff.work.input_tokens + handoff.work.output_tokens
    assert asked_tokens > 0 and used.used == response.tokens + asked_tokens


def test_handoff_messages_count_both_ways() -> None:
    question = AgentMessage(content="?", agent_id="a", model="m", metadata={"to": "b"})
    answered = Handoff(slot="s→b#1.abcdef", question=question, answer=question, work=tool_work())
    unanswered = Handoff(slot="s→b#2.abcdef", question=question, answer=None, work=tool_work())
    assert (answered.messages, unanswered.messages) == (2, 1)
    outer = tool_work()
    asked_on = dataclasses.replace(answered, work=dataclasses.replace(outer, handoffs=(unanswered,)))
    nested = dataclasses.replace(outer, handoffs=(asked_on,))
    assert messages_exchanged((nested,)) == 3
    assert json.dumps(answered.question.model_dump(mode="json"))  # a seed 002 message, serialisable
