"""The agent loop through the real runner, router and OpenAI SDK, against a local server scripted turn by turn.

Each test scripts what the "model" answers on each turn (tool calls, then a final
answer) and checks what the loop did with it: which tools ran with which
arguments, what went back to the model (read from the requests the server
recorded), and where it stopped. Outside a flow run there are no checkpoints
(``tasks/checkpoints.py``): the durable side is tested in the integration lane.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from support import agent_tools
from support.llm_wire import WireServer

from agentparty.models import CreateAgentTemplateRequest, ModelRegistry
from agentparty.models.config import AgentRuntimeConfig
from agentparty.models.step_errors import BudgetExceeded, LoopLimitExceeded, ModelUnavailable, ToolsRefused
from agentparty.models.tools import PythonTool, ToolPolicy
from agentparty.runtime.breakers import SqliteBreakerStore
from agentparty.runtime.budgets import BudgetLedger
from agentparty.runtime.human_input import ApprovalDecision
from agentparty.runtime.model_router import ModelRouter
from agentparty.runtime.providers.openai_provider import OpenAIProvider
from agentparty.tasks.agent import AgentStepRequest, AgentStepResponse, ModelAgentRunner, agent_work_of
from agentparty.tasks.lifecycle import ApprovalRequest, ToolApprovalRequest
from agentparty.tasks.templates import TemplateRegistry

MODEL = "gpt-wire-1"
ANSWER_SCHEMA = {"type": "object", "required": ["summary"], "properties": {"summary": {"type": "string"}}}


def tool(name: str, **options: Any) -> PythonTool:
    return PythonTool(function=f"support.agent_tools:{name}", **options)


def call(name: str, arguments: Any, call_id: str | None = None) -> dict[str, Any]:
    found = {"name": name, "arguments": arguments}
    return found | ({"id": call_id} if call_id else {})


class ScriptedApprover:
    """Answers tool approvals from a list (True, False, or None for "nobody answered"); records what it was asked."""

    def __init__(self, *answers: bool | None) -> None:
        self.answers = list(answers)
        self.asked: list[ToolApprovalRequest] = []

    async def decide(self, request: ApprovalRequest | ToolApprovalRequest) -> ApprovalDecision | None:
        assert isinstance(request, ToolApprovalRequest)
        self.asked.append(request)
        answer = self.answers.pop(0)
        if answer is None:
            return None
        return ApprovalDecision(approve=answer, reason="" if answer else "not today", approver="ana")


def registry(supports_functions: bool = True) -> ModelRegistry:
    def entry(name: str, functions: bool) -> dict[str, Any]:
        return {
            "provider": "openai",
            "name": name,
            "capabilities": {"maxTokens": 8000, "supportsFunctions": functions, "supportsStreaming": True},
            "pricing": {"inputPerMillion": 1.0, "outputPerMillion": 2.0},
        }

    return ModelRegistry.model_validate(
        {
            "defaultModel": MODEL,
            "availableModels": {MODEL: entry(MODEL, supports_functions), "gpt-plain": entry("gpt-plain", False)},
            "fallbackChain": [MODEL],
        }
    )


def runner(
    tmp_path: Path,
    server: WireServer,
    *,
    approver: ScriptedApprover | None = None,
    runtime: AgentRuntimeConfig | None = None,
    reg: ModelRegistry | None = None,
    policy: ToolPolicy | None = None,
) -> ModelAgentRunner:
    models = reg or registry()
    router = ModelRouter(
        registry=models,
        providers={"openai": OpenAIProvider("sk-test", base_url=server.url + "/v1", timeout=10)},
        breaker_store=SqliteBreakerStore(tmp_path / "breakers.sqlite"),
        ledger=BudgetLedger(tmp_path / "budgets.sqlite"),
    )
    return ModelAgentRunner(
        router=router,
        templates=TemplateRegistry.at(tmp_path, policy, models),
        approver=approver or ScriptedApprover(),
        runtime=runtime or AgentRuntimeConfig(),
        stream=False,
        policy=policy or ToolPolicy(),
    )


def ask(agent_runner: ModelAgentRunner, *tools: PythonTool, agent: str = "analyst", **fields: Any) -> AgentStepResponse:
    request = AgentStepRequest(
        step_id="research",
        agent=agent,
        prompt="Compare the weather in Paris and Rome.",
        output_schema=ANSWER_SCHEMA,
        run_key=f"run-{id(agent_runner)}",
        tools=tools,
        **fields,
    )
    return asyncio.run(agent_runner.run(request))


def failure(agent_runner: ModelAgentRunner, *tools: PythonTool, **fields: Any) -> BaseException:
    with pytest.raises(Exception) as caught:
        ask(agent_runner, *tools, **fields)
    return caught.value


def test_several_calls_in_one_turn_then_an_answer(tmp_path: Path, server: WireServer) -> None:
    server.script(tool_calls=[call("lookup", {"city": "Paris"}), call("fetch_page", {"url": "https://rome.example"})])
    server.script(output={"summary": "Paris 21 C; Rome's page fetched"})
    response = ask(runner(tmp_path, server), tool("lookup"), tool("fetch_page"))

    assert response.output == {"summary": "Paris 21 C; Rome's page fetched"}
    assert sorted(agent_tools.CALLS, key=str) == [  # the two ran at once: in either order
        ("fetch_page", {"url": "https://rome.example"}),
        ("lookup", {"city": "Paris", "unit": "celsius"}),
    ]
    first, second = server.requests
    offered = {t["function"]["name"]: t["function"] for t in first.tools}
    assert set(offered) == {"lookup", "fetch_page"}
    assert offered["lookup"]["description"].startswith("Look up today's temperature")
    lookup_schema = offered["lookup"]["parameters"]
    assert lookup_schema["required"] == ["city"] and lookup_schema["properties"]["unit"]["enum"] == [
        "celsius",
        "fahrenheit",
    ]
    assert lookup_schema["properties"]["city"]["description"] == 'The city\'s name, e.g. "Paris".'
    results = second.tool_results
    assert [json.loads(results[0]["content"])["temperature"], results[1]["content"]] == [
        21,
        "<html>https://rome.example</html>",
    ]
    assert [r["tool_call_id"] for r in results] == [c["id"] for c in second.tool_calls_sent]
    turns = response.turns
    assert [(t.turn, len(t.tool_calls), t.final) for t in turns] == [(1, 2, False), (2, 0, True)]
    assert all(c.ok and not c.cached for c in turns[0].tool_calls)
    assert response.input_tokens == sum(t.input_tokens for t in turns) > 0
    assert response.work is not None and response.work.turns == response.turns


def test_errors_go_back_to_the_model_which_corrects_them(tmp_path: Path, server: WireServer) -> None:
    server.script(tool_calls=[call("explode", {"reason": "disk full"})])
    server.script(tool_calls=[call("slow", {"seconds": 5})])
    server.script(tool_calls=[call("lookup", {"city": 5, "planet": "mars"})])
    server.script(tool_calls=[call("lookup", {"city": "Paris"})])
    server.script(output={"summary": "21 C"})
    agent_runner = runner(tmp_path, server, runtime=AgentRuntimeConfig(max_consecutive_errors=4))
    response = ask(agent_runner, tool("explode"), tool("slow", timeout=0.3), tool("lookup"))

    assert response.output == {"summary": "21 C"}
    # OpenAI's tool messages have no error flag: the adapter marks an error in the text.
    sent = [r.tool_results[-1]["content"] if r.tool_results else None for r in server.requests]
    assert sent[1] == "Error: ValueError: exploded: disk full"
    assert sent[2] == "Error: timed out after 0.3 s"
    assert "invalid arguments" in sent[3] and "city" in sent[3] and "planet" in sent[3]
    assert json.loads(sent[4])["city"] == "Paris"
    assert [c.ok for t in response.turns for c in t.tool_calls] == [False, False, False, True]
    # The bad arguments never reached the function; the sync one that timed out was abandoned, not awaited.
    assert [name for name, _ in agent_tools.CALLS] == ["explode", "slow", "lookup"]


def test_too_many_errors_in_a_row_fail_the_step(tmp_path: Path, server: WireServer) -> None:
    for _ in range(3):
        server.script(tool_calls=[call("explode", {"reason": "again"})])
    agent_runner = runner(tmp_path, server, runtime=AgentRuntimeConfig(max_consecutive_errors=2))
    error = failure(agent_runner, tool("explode"))
    assert isinstance(error, LoopLimitExceeded)
    assert "2 tool errors in a row (max_consecutive_errors 2)" in str(error) and "exploded: again" in str(error)
    work = agent_work_of(error)
    assert work is not None and [len(t.tool_calls) for t in work.turns] == [1, 1], "the failed step keeps its calls"
    assert work.agent.status.value == "failed"


def test_a_result_over_its_cap_is_truncated_with_a_note(tmp_path: Path, server: WireServer) -> None:
    server.script(tool_calls=[call("huge", {"size": 5000})])
    server.script(output={"summary": "long"})
    response = ask(runner(tmp_path, server), tool("huge", max_result_chars=100))
    content = server.requests[1].tool_results[0]["content"]
    assert content.startswith("x" * 100) and content.endswith("[truncated: 4900 more characters not shown]")
    assert response.turns[0].tool_calls[0].truncated


def test_max_turns_stops_a_loop_that_never_answers(tmp_path: Path, server: WireServer) -> None:
    for n in range(5):
        server.script(tool_calls=[call("lookup", {"city": f"City {n}"})])
    error = failure(runner(tmp_path, server), tool("lookup"), max_turns=3)
    assert isinstance(error, LoopLimitExceeded)
    assert "maxTurns 3 reached without a final answer (3 tool calls made)" in str(error)
    assert len(server.requests) == 3


def test_max_tool_calls_counts_calls_over_the_whole_loop(tmp_path: Path, server: WireServer) -> None:
    server.script(tool_calls=[call("lookup", {"city": "A"}), call("lookup", {"city": "B"})])
    server.script(tool_calls=[call("lookup", {"city": "C"}), call("lookup", {"city": "D"})])
    error = failure(runner(tmp_path, server), tool("lookup"), max_tool_calls=3)
    assert isinstance(error, LoopLimitExceeded)
    assert "maxToolCalls 3 reached: 2 calls made, turn 2 asked for 2 more" in str(error)
    assert len(agent_tools.CALLS) == 2, "the calls over the limit were not made"


def test_a_budget_runs_out_in_the_middle_of_the_loop(tmp_path: Path, server: WireServer) -> None:
    server.script(tool_calls=[call("huge", {"size": 6000})])
    server.script(output={"summary": "never"})
    error = failure(runner(tmp_path, server), tool("huge"), agent_token_budget=2000)
    assert isinstance(error, BudgetExceeded) and "agent budget" in str(error)
    assert len(server.requests) == 1, "the second turn was refused before it was sent"
    work = agent_work_of(error)
    assert work is not None and len(work.turns) == 1 and work.turns[0].tool_calls[0].ok


def test_approvals_one_given_one_refused(tmp_path: Path, server: WireServer) -> None:
    server.script(
        tool_calls=[call("lookup", {"city": "Paris"}), call("lookup", {"city": "Rome", "unit": "fahrenheit"})]
    )
    server.script(output={"summary": "only Paris"})
    approver = ScriptedApprover(True, False)
    response = ask(runner(tmp_path, server, approver=approver), tool("lookup", needs_approval=True))

    assert [a.tool for a in approver.asked] == ["lookup", "lookup"]
    assert '"city": "Rome"' in approver.asked[1].arguments
    assert agent_tools.CALLS == [("lookup", {"city": "Paris", "unit": "celsius"})], "the refused call was not made"
    refused = server.requests[1].tool_results[1]["content"]
    assert refused == "Error: the call was not made: rejected by ana: not today"
    assert [(c.ok, c.refused) for c in response.turns[0].tool_calls] == [(True, False), (False, True)]


def test_a_denied_tool_is_never_offered_nor_called(tmp_path: Path, server: WireServer) -> None:
    policy = ToolPolicy(allowed_modules=["support.agent_tools"])
    agent_runner = runner(tmp_path, server, policy=policy)
    templates = agent_runner.templates
    assert templates is not None
    templates.create(
        CreateAgentTemplateRequest(
            name="analyst",
            description="Compares cities",
            model=MODEL,
            parameters={},
            personality="careful",
            capabilities=["data_analysis"],
            approval_required=False,
            tools=["support.agent_tools:lookup", "support.agent_tools:delete_everything"],
            permissions=["!tools:delete_everything"],
        )
    )
    templates.publish("analyst", "1.0.0")
    server.script(tool_calls=[call("delete_everything", {"confirm": True}), call("lookup", {"city": "Oslo"})])
    server.script(output={"summary": "done"})
    response = ask(agent_runner)

    assert [t["function"]["name"] for t in server.requests[0].tools] == ["lookup"]
    assert [name for name, _ in agent_tools.CALLS] == ["lookup"], "the denied tool ran"
    denied = server.requests[1].tool_results[0]["content"]
    assert denied == "Error: the tool 'delete_everything' is not permitted for this agent; it was not called"
    assert response.turns[0].tool_calls[0].refused


def test_template_tools_off_a_shrunk_allowlist_are_refused_at_run_time(tmp_path: Path, server: WireServer) -> None:
    allowed = runner(tmp_path, server, policy=ToolPolicy(allowed_modules=["support.*"]))
    assert allowed.templates is not None
    allowed.templates.create(
        CreateAgentTemplateRequest(
            name="analyst",
            description="",
            model=MODEL,
            parameters={},
            personality="",
            capabilities=[],
            approval_required=False,
            tools=["support.agent_tools:lookup"],
        )
    )
    allowed.templates.publish("analyst", "1.0.0")
    shrunk = runner(tmp_path, server, policy=ToolPolicy())
    error = failure(shrunk)
    assert isinstance(error, ToolsRefused) and "'support.agent_tools' is not on the allowlist" in str(error)
    assert server.requests == [], "no model was asked"


def test_a_model_without_functions_is_skipped_when_the_step_has_tools(tmp_path: Path, server: WireServer) -> None:
    reg = registry().model_copy(update={"fallback_chain": ["gpt-plain", MODEL]})
    server.script(output={"summary": "from the second model"})
    response = ask(runner(tmp_path, server, reg=reg), tool("lookup"), model="gpt-plain")
    assert response.model == MODEL and response.requested_model == "gpt-plain"
    assert response.fallback_reasons == (
        "gpt-plain: gpt-plain: does not support functions, and this step offers tools",
    )
    only = registry().model_copy(update={"fallback_chain": ["gpt-plain"]})
    error = failure(runner(tmp_path, server, reg=only), tool("lookup"), model="gpt-plain")
    assert isinstance(error, ModelUnavailable) and "does not support functions" in str(error)


def test_the_running_state_left_holds_the_loops_calls_errors_and_tokens(tmp_path: Path, server: WireServer) -> None:
    server.script(tool_calls=[call("explode", {"reason": "disk full"}), call("lookup", {"city": "Paris"})])
    server.script(tool_calls=[call("lookup", {"city": 5})])
    server.script(output={"summary": "21 C"})
    response = ask(runner(tmp_path, server), tool("explode"), tool("lookup"))
    assert response.work is not None
    left = {t.left.name.value: t.left for t in response.work.transitions}
    running = left["running"]
    assert running.metrics.model_dump() == {
        "requests": 3,
        "errors": 2,  # the exception, and the arguments that did not validate
        "input_tokens": response.input_tokens,
        "output_tokens": response.output_tokens,
        "tool_calls": 3,
        "refused": 0,
    }
    assert running.token_count == response.input_tokens + response.output_tokens > 0
    assert left["initialized"].metrics.requests == 0, "nothing happens before the agent runs"
    completed = next(t for t in response.work.transitions if t.record.name.value == "completed")
    assert completed.event.metrics == running.metrics, "the transition event carries the same figures"
