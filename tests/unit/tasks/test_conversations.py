"""Conversations, context windows and prompt templates, through the real runner and OpenAI SDK on a scripted server.

The conversation store is the real SQLite one; the "model" is the wire server of
``support.llm_wire``, scripted turn by turn. What the loop sent is read from the
requests the server recorded.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support.llm_wire import WireServer

from agentparty.models import CreateAgentTemplateRequest, ModelRegistry
from agentparty.models.config import AgentRuntimeConfig
from agentparty.models.messages import AgentMessage, ErrorMessage
from agentparty.models.step_errors import ContextWindowExceeded, ModelUnavailable, StepValidationError, ToolsRefused
from agentparty.models.tools import PythonTool
from agentparty.runtime.breakers import SqliteBreakerStore
from agentparty.runtime.budgets import BudgetLedger
from agentparty.runtime.conversations import ConversationStore, engagement_id
from agentparty.runtime.model_router import ModelRouter
from agentparty.runtime.providers.openai_provider import OpenAIProvider
from agentparty.tasks.agent import AgentStepRequest, AgentStepResponse, ModelAgentRunner
from agentparty.tasks.context_window import SUMMARY_PROMPT
from agentparty.tasks.templates import TemplateRegistry, engagement_key

BIG, SMALL = "gpt-wire-big", "gpt-wire-small"
RUN = "run-conversations"


def registry(window: int = 100_000, small_window: int = 100_000, chain: tuple[str, ...] = (BIG,)) -> ModelRegistry:
    def entry(name: str, max_tokens: int) -> dict[str, Any]:
        return {
            "provider": "openai",
            "name": name,
            "capabilities": {"maxTokens": max_tokens, "supportsFunctions": True, "supportsStreaming": True},
        }

    return ModelRegistry.model_validate(
        {
            "defaultModel": BIG,
            "availableModels": {BIG: entry(BIG, window), SMALL: entry(SMALL, small_window)},
            "fallbackChain": list(chain),
        }
    )


def runner(
    tmp_path: Path, server: WireServer, reg: ModelRegistry | None = None, runtime: AgentRuntimeConfig | None = None
) -> ModelAgentRunner:
    models = reg or registry()
    runtime = runtime or AgentRuntimeConfig()
    router = ModelRouter(
        registry=models,
        providers={"openai": OpenAIProvider("sk-test", base_url=server.url + "/v1", timeout=10)},
        breaker_store=SqliteBreakerStore(tmp_path / "breakers.sqlite"),
        ledger=BudgetLedger(tmp_path / "budgets.sqlite"),
    )
    return ModelAgentRunner(
        router=router,
        templates=TemplateRegistry.at(tmp_path, models=models, prompt_templates=runtime.prompt_templates),
        runtime=runtime,
        stream=False,
        conversations=ConversationStore.at(tmp_path),
    )


def ask(agent_runner: ModelAgentRunner, *tools: str, **fields: Any) -> AgentStepResponse:
    fields = {"agent": "analyst", "prompt": "Compare the weather in Paris and Rome.", **fields}
    request = AgentStepRequest(
        step_id="research",
        run_key=RUN,
        workflow_id="weather",
        tools=tuple(PythonTool(function=f"support.agent_tools:{t}") for t in tools),
        **fields,
    )

    async def once() -> AgentStepResponse:
        try:
            return await agent_runner.run(request)
        finally:  # the SDK's client belongs to this event loop: the next ask gets a fresh one
            await agent_runner.router.aclose()

    return asyncio.run(once())


def conversation(agent_runner: ModelAgentRunner, response_or_agent: AgentStepResponse | str) -> list[Any]:
    store = agent_runner.conversations
    assert store is not None
    agent_id = response_or_agent if isinstance(response_or_agent, str) else response_or_agent.agent_id
    key = engagement_id(agent_id, engagement_key(RUN, "research"))
    return store.page(key, limit=200).messages


def lookup(city: str) -> dict[str, Any]:
    """A call with a fixed id: a replayed turn (from its checkpoint) says exactly what it said the first time."""
    return {"name": "lookup", "arguments": {"city": city}, "id": f"call-{city}"}


def test_every_message_is_kept_once_in_order_and_a_replay_adds_none(tmp_path: Path, server: WireServer) -> None:
    agent_runner = runner(tmp_path, server)
    for _ in range(2):  # the same answers twice: a replayed engagement (resume) writes nothing new
        server.script(tool_calls=[lookup("Paris"), lookup("Rome")])
        server.script(text="Paris 21 C, Rome 21 C.")
        response = ask(agent_runner, "lookup")
    said = conversation(agent_runner, response)
    assert [(m.type, getattr(m, "code", None)) for m in said] == [
        ("system", None),
        ("user", None),
        ("agent", None),
        ("system", "tool_result"),
        ("system", "tool_result"),
        ("agent", None),
    ]
    first_turn, last_turn = said[2], said[5]
    assert isinstance(first_turn, AgentMessage) and [c.name for c in first_turn.tool_calls or []] == ["lookup"] * 2
    assert first_turn.agent_id == response.agent_id and first_turn.model == BIG
    assert last_turn.content == "Paris 21 C, Rome 21 C."
    store = agent_runner.conversations
    assert store is not None
    [engagement] = store.engagements(response.agent_id)
    assert engagement.workflow.workflow_id == "weather" and engagement.workflow.run_id == RUN
    assert engagement.workflow.current_step == "research" and engagement.workflow.status == "completed"


def test_a_retry_continues_the_conversation_after_its_failure(tmp_path: Path, server: WireServer) -> None:
    agent_runner = runner(tmp_path, server)
    server.script(tool_calls=[lookup("Paris")])
    server.script(status=400, error="the model went away")
    with pytest.raises(Exception, match="the model went away"):
        ask(agent_runner, "lookup")
    server.script(tool_calls=[lookup("Paris")])  # attempt 2 replays turn 1 (a checkpoint in a flow run)
    server.script(text="21 C in Paris.")
    response = ask(agent_runner, "lookup")
    said = conversation(agent_runner, response)
    assert [m.type for m in said] == ["system", "user", "agent", "system", "error", "agent"]
    failed = said[4]
    assert isinstance(failed, ErrorMessage) and failed.content.startswith("attempt 1 failed: ProviderRequestError")
    assert said[-1].content == "21 C in Paris."


def test_old_turns_are_trimmed_whole_to_fit_a_small_window(tmp_path: Path, server: WireServer) -> None:
    agent_runner = runner(tmp_path, server, registry(window=1_824))  # 800 for the input, 1024 for the answer
    for _ in range(3):
        server.script(tool_calls=[{"name": "essay", "arguments": {"words": 300}}])
    server.script(text="done")
    response = ask(agent_runner, "essay", max_tool_calls=5)
    assert response.output == "done"
    sent = server.requests
    # Each result is ~380 tokens: by turn 4 the oldest turns (each call with its result) are gone.
    last = sent[-1].json["messages"]
    calls = {c["id"] for m in last if m["role"] == "assistant" for c in m.get("tool_calls") or []}
    results = {m["tool_call_id"] for m in last if m["role"] == "tool"}
    assert calls == results and len(calls) < 3, "a tool call was separated from its result"
    notes = [m for m in conversation(agent_runner, response) if getattr(m, "code", None) == "context_trimmed"]
    assert notes and "left out to fit gpt-wire-big's 1824-token window" in notes[-1].content
    assert any("left out" in str(m.get("content")) for m in last if m["role"] == "system")


def test_when_nothing_can_be_dropped_the_step_fails_with_what_it_needed(tmp_path: Path, server: WireServer) -> None:
    agent_runner = runner(tmp_path, server, registry(window=1_100))
    with pytest.raises(ContextWindowExceeded) as caught:
        ask(agent_runner, prompt="Summarise this: " + "word " * 2_000)
    message = str(caught.value)
    assert "needs about" in message and "1024 of them for the answer" in message and "allows 1100" in message
    assert server.requests == [], "the model was asked anyway"


def test_summarize_condenses_the_dropped_turns_in_a_charged_turn(tmp_path: Path, server: WireServer) -> None:
    runtime = AgentRuntimeConfig(context_strategy="summarize")
    agent_runner = runner(tmp_path, server, registry(window=2_400), runtime)
    for _ in range(3):
        server.script(tool_calls=[{"name": "essay", "arguments": {"words": 500}}])
    server.script(text="Earlier: two huge pages were read.")  # the summary turn
    server.script(text="done")
    response = ask(agent_runner, "essay")
    summary_requests = [r for r in server.requests if r.json["messages"][0]["content"] == SUMMARY_PROMPT]
    assert len(summary_requests) == 1
    notes = [m for m in conversation(agent_runner, response) if getattr(m, "code", None) == "context_summary"]
    assert len(notes) == 1 and notes[0].content.endswith("Earlier: two huge pages were read.")
    assert response.output == "done"
    assert response.input_tokens > sum(t.input_tokens for t in response.turns), "the summary turn was not charged"


def test_a_fallback_model_whose_window_is_too_small_is_passed_over(tmp_path: Path, server: WireServer) -> None:
    agent_runner = runner(tmp_path, server, registry(window=100_000, small_window=1_500, chain=(BIG, SMALL)))
    server.script(status=401, error="bad key")  # a failure of this model: the chain moves on
    with pytest.raises(ModelUnavailable) as caught:
        ask(agent_runner, prompt="Read this: " + "word " * 1_000)
    assert f"{SMALL}: the conversation needs about" in str(caught.value) and "its window is 1500" in str(caught.value)
    assert len(server.requests) == 1, "the small model was asked although the conversation could not fit"


def test_a_prompt_template_is_the_system_prompt_filled_with_the_agent_and_the_inputs(
    tmp_path: Path, server: WireServer
) -> None:
    runtime = AgentRuntimeConfig(prompt_templates={"research": "You are {name} ({capabilities}). Research {topic}."})
    agent_runner = runner(tmp_path, server, runtime=runtime)
    templates = agent_runner.templates
    assert templates is not None
    request = CreateAgentTemplateRequest(
        name="scout",
        description="d",
        capabilities=["research"],
        model=BIG,
        parameters={},
        personality="",
        approval_required=False,
        prompt_template="research",
    )
    templates.publish("scout", templates.create(request).version.version)
    server.script(text="ok")
    ask(agent_runner, agent="scout", inputs={"topic": "tides"})
    assert server.requests[0].json["messages"][0]["content"] == "You are scout (research). Research tides."

    with pytest.raises(StepValidationError, match=r"needs \{topic\}, which is neither"):
        ask(agent_runner, agent="scout", inputs={"subject": "tides"})
    unknown = request.model_copy(update={"name": "ghost", "prompt_template": "nope"})
    with pytest.raises(ToolsRefused, match="prompt template 'nope' is not defined"):
        templates.create(unknown)


def test_a_forgotten_agent_has_no_conversations(tmp_path: Path, server: WireServer) -> None:
    agent_runner = runner(tmp_path, server)
    server.script(text="hello")
    response = ask(agent_runner)
    store = agent_runner.conversations
    assert store is not None and len(conversation(agent_runner, response)) == 3
    assert store.forget_agent(response.agent_id) == 3
    assert store.engagements(response.agent_id) == [] and conversation(agent_runner, response) == []


@pytest.mark.parametrize("stream", [False, True])
def test_an_agent_message_has_a_confidence_when_log_probabilities_are_asked_for(
    tmp_path: Path, server: WireServer, stream: bool
) -> None:
    agent_runner = replace(runner(tmp_path, server), stream=stream)
    templates = agent_runner.templates
    assert templates is not None
    request = CreateAgentTemplateRequest(
        name="sure",
        description="d",
        capabilities=["research"],
        model=BIG,
        parameters={"logprobs": True},
        personality="",
        approval_required=False,
    )
    templates.publish("sure", templates.create(request).version.version)
    server.script(text="Paris is warmer than Rome today.")
    response = ask(agent_runner, agent="sure")
    assert server.requests[0].json.get("logprobs") is True
    [answer] = [m for m in conversation(agent_runner, response) if isinstance(m, AgentMessage)]
    assert answer.confidence == pytest.approx(0.8)  # the wire server gives every token ln 0.8

    server.script(text="again")
    plain = ask(agent_runner)  # an ad-hoc agent does not ask: no confidence
    assert "logprobs" not in server.requests[-1].json
    assert [m.confidence for m in conversation(agent_runner, plain) if isinstance(m, AgentMessage)] == [None]
