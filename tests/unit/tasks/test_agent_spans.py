"""The spans an agent's loop makes (``runtime/tracing.py``), read from the SDK's in-memory exporter.

The loop runs through the real runner, router and OpenAI SDK against the scripted
model server (as in ``test_agent_loop.py``): a turn that calls a tool, then a
final answer. Outside a flow run there is no Prefect span for the step, so the
chat and tool spans are roots here; their parents in a run are checked in the
Phoenix test (tests/integration/api/test_traces.py).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from support.llm_wire import WireServer

from agentparty.models import ModelRegistry
from agentparty.models.config import AgentRuntimeConfig
from agentparty.models.tools import PythonTool, ToolPolicy
from agentparty.runtime import tracing
from agentparty.runtime.breakers import SqliteBreakerStore
from agentparty.runtime.budgets import BudgetLedger
from agentparty.runtime.masking import Masker
from agentparty.runtime.model_router import ModelRouter
from agentparty.runtime.providers.base import CompletionRequest
from agentparty.runtime.providers.openai_provider import OpenAIProvider
from agentparty.tasks.agent import AgentStepRequest, AgentStepResponse, ModelAgentRunner
from agentparty.tasks.templates import TemplateRegistry

MODEL = "gpt-wire-1"
SCHEMA = {"type": "object", "required": ["summary"], "properties": {"summary": {"type": "string"}}}
PROMPT = "Compare the weather in Paris and Rome; reply to ana.lopez@example.org."


def _runner(tmp_path: Path, server: WireServer) -> ModelAgentRunner:
    entry = {
        "provider": "openai",
        "name": MODEL,
        "capabilities": {"maxTokens": 8000, "supportsFunctions": True, "supportsStreaming": True},
        "pricing": {"inputPerMillion": 1.0, "outputPerMillion": 2.0},
    }
    models = ModelRegistry.model_validate(
        {"defaultModel": MODEL, "availableModels": {MODEL: entry}, "fallbackChain": [MODEL]}
    )
    router = ModelRouter(
        registry=models,
        providers={"openai": OpenAIProvider("sk-test", base_url=server.url + "/v1", timeout=10)},
        breaker_store=SqliteBreakerStore(tmp_path / "breakers.sqlite"),
        ledger=BudgetLedger(tmp_path / "budgets.sqlite"),
    )
    return ModelAgentRunner(
        router=router,
        templates=TemplateRegistry.at(tmp_path, None, models),
        runtime=AgentRuntimeConfig(),
        stream=False,
        policy=ToolPolicy(),
    )


def _ask(tmp_path: Path, server: WireServer) -> AgentStepResponse:
    """One tool-calling turn (``lookup`` for Paris, with the requester's address), then the answer."""
    server.script(
        tool_calls=[{"name": "lookup", "arguments": {"city": "Paris"}, "id": "call_paris"}],
        text="I will look it up for ana.lopez@example.org",
    )
    server.script(output={"summary": "Paris 21 C; tell ana.lopez@example.org"})
    request = AgentStepRequest(
        step_id="research",
        agent="analyst",
        prompt=PROMPT,
        output_schema=SCHEMA,
        run_key="run-spans",
        tools=(PythonTool(function="support.agent_tools:lookup"),),
    )
    return asyncio.run(_runner(tmp_path, server).run(request))


def _by_operation(finished: tuple[ReadableSpan, ...], operation: str) -> list[ReadableSpan]:
    return [s for s in finished if (s.attributes or {}).get("gen_ai.operation.name") == operation]


def test_turns_and_tool_calls_make_genai_spans_without_content(
    tmp_path: Path, server: WireServer, spans: InMemorySpanExporter
) -> None:
    response = _ask(tmp_path, server)
    finished = spans.get_finished_spans()
    chats, tools = _by_operation(finished, "chat"), _by_operation(finished, "execute_tool")
    assert [s.name for s in chats] == [f"chat {MODEL}", f"chat {MODEL}"]
    assert [s.name for s in tools] == ["execute_tool lookup"]
    for span, turn in zip(chats, response.turns, strict=True):
        attributes = dict(span.attributes or {})
        assert attributes["gen_ai.provider.name"] == "openai"
        assert attributes["gen_ai.request.model"] == attributes["gen_ai.response.model"] == MODEL
        assert attributes["gen_ai.usage.input_tokens"] == turn.input_tokens > 0
        assert attributes["gen_ai.usage.output_tokens"] == turn.output_tokens
        assert str(attributes["gen_ai.agent.name"]).startswith("analyst") and attributes["agentparty.turn"] == turn.turn
        assert attributes["agentparty.step.id"] == "research"
    tool = dict(tools[0].attributes or {})
    assert tool["gen_ai.tool.name"] == "lookup" and tool["gen_ai.tool.type"] == "function"
    assert tool["gen_ai.tool.call.id"] == response.turns[0].tool_calls[0].call_id == "call_paris"
    assert tools[0].status.status_code is not StatusCode.ERROR
    # The tool ran between the two turns, not inside either (one trace each here: no run span above them).
    assert chats[0].end_time <= tools[0].start_time and tools[0].end_time <= chats[1].start_time
    captured = [k for s in finished for k in (s.attributes or {}) if k.endswith(("messages", "arguments", "result"))]
    assert captured == [], "content stays out of spans unless captureContent is on"


def test_captured_content_is_masked(tmp_path: Path, server: WireServer, spans: InMemorySpanExporter) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracing.start_tracing(provider, capture=True, masker=Masker())  # monitoring.tracing.captureContent, dataMasking
    _ask(tmp_path, server)
    finished = spans.get_finished_spans()
    first, second = _by_operation(finished, "chat")
    sent = json.loads(str((first.attributes or {})["gen_ai.input.messages"]))
    assert [m["role"] for m in sent] == ["system", "user"]
    assert "Compare the weather in Paris" in sent[1]["parts"][0]["content"]
    said = json.loads(str((first.attributes or {})["gen_ai.output.messages"]))
    assert said[0]["parts"][-1] == {
        "type": "tool_call",
        "id": "call_paris",
        "name": "lookup",
        "arguments": {"city": "Paris"},
    }
    assert [m["role"] for m in json.loads(str((second.attributes or {})["gen_ai.input.messages"]))][-1] == "tool"
    tool = dict(_by_operation(finished, "execute_tool")[0].attributes or {})
    assert json.loads(str(tool["gen_ai.tool.call.arguments"])) == {"city": "Paris"}
    assert json.loads(str(tool["gen_ai.tool.call.result"]))["temperature"] == 21
    every = " ".join(str(v) for s in finished for v in (s.attributes or {}).values())
    assert "ana.lopez@example.org" not in every and "[email]" in every


def test_a_refused_tool_call_is_an_error_span(tmp_path: Path, server: WireServer, spans: InMemorySpanExporter) -> None:
    server.script(tool_calls=[{"name": "no_such_tool", "arguments": {}, "id": "call_x"}])
    server.script(output={"summary": "gave up on it"})
    request = AgentStepRequest(
        step_id="research",
        agent="analyst",
        prompt="go",
        output_schema=SCHEMA,
        run_key="run-refused",
        tools=(PythonTool(function="support.agent_tools:lookup"),),
    )
    asyncio.run(_runner(tmp_path, server).run(request))
    (tool,) = _by_operation(spans.get_finished_spans(), "execute_tool")
    assert tool.name == "execute_tool no_such_tool" and tool.status.status_code is StatusCode.ERROR
    assert (tool.attributes or {})["error.type"] == "tool_error"


def test_without_tracing_nothing_is_made(tmp_path: Path, server: WireServer) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.stop_tracing()  # the state a process without an endpoint is in
    _ask(tmp_path, server)
    with tracing.chat_span(CompletionRequest(model="m", messages=()), "a", "a", "s", 1) as span:
        assert not span.is_recording() and span.get_span_context().is_valid is False
    assert exporter.get_finished_spans() == ()
    assert tracing.run_trace_labels() is None
