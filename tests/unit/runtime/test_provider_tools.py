"""Tool calls through the OpenAI, Anthropic and Google adapters, their real SDKs, and the local wire server.

Each provider is checked for what it sends (tool specs, the earlier turn's calls,
the results, the final-answer mechanism) byte for byte as the server received it,
and for what it reads back (one call, several, streamed, malformed).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.llm_wire import Recorded, WireServer

from agentparty.models.messages import AgentMessage, ErrorDetail, ErrorMessage, Message, SystemMessage, UserMessage
from agentparty.models.step_errors import InvalidModelOutput, ProviderRequestError, StepError
from agentparty.models.tools import FINAL_ANSWER_TOOL, ToolCall, ToolResult, ToolSpec
from agentparty.runtime.providers.anthropic_provider import AnthropicProvider
from agentparty.runtime.providers.base import Completion, CompletionRequest, Provider, chat_turns
from agentparty.runtime.providers.conversation import conversation
from agentparty.runtime.providers.google_provider import GoogleProvider
from agentparty.runtime.providers.openai_provider import OpenAIProvider

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

DIALECTS = ["openai", "anthropic", "google"]
MODELS = {"openai": "gpt-wire-1", "anthropic": "claude-wire-1", "google": "gemini-wire-1"}
MAKERS: dict[str, Callable[[str], Provider]] = {
    "openai": lambda url: OpenAIProvider("test-key", base_url=url + "/v1", timeout=5.0),
    "anthropic": lambda url: AnthropicProvider("test-key", base_url=url, timeout=5.0),
    "google": lambda url: GoogleProvider("test-key", base_url=url, timeout=5.0),
}

SEARCH = ToolSpec(
    name="search_docs",
    description="Search the research corpus.",
    parameters={
        "type": "object",
        "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "default": 3}},
        "required": ["query"],
        "additionalProperties": False,
    },
)
WEATHER = ToolSpec(
    name="get_weather",
    description="The weather in a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    source="mcp",
)
TOOLS = (SEARCH, WEATHER)
SYSTEM = "You are terse."
PROMPT: tuple[Message, ...] = (
    SystemMessage(content=SYSTEM),
    UserMessage(content="find graph papers", user_id="u1", session_id="s1"),
)
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "count": {"type": "integer", "minimum": 2}},
    "required": ["title", "count"],
}
SCHEMA_SAMPLE = {"title": "sample", "count": 2}

CALL_SEARCH = {"name": "search_docs", "arguments": {"query": "graph networks", "limit": 2}}
CALL_WEATHER = {"name": "get_weather", "arguments": {"city": "Paris"}}
TOOL_FINISH = {"openai": "tool_calls", "anthropic": "tool_use", "google": "STOP"}


class Harness:
    """One event loop and one long-lived provider per dialect (as the engine keeps them)."""

    def __init__(self, server: WireServer) -> None:
        self.server = server
        self.runner = asyncio.Runner()
        self.providers = {name: make(server.url) for name, make in MAKERS.items()}

    def complete(
        self, dialect: str, request: CompletionRequest, on_text: Callable[[str], None] | None = None
    ) -> Completion:
        return self.runner.run(self.providers[dialect].complete(request, on_text))

    def close(self) -> None:
        async def close_all() -> None:
            for provider in self.providers.values():
                await provider.aclose()

        try:
            self.runner.run(close_all())
        finally:
            self.runner.close()


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    with WireServer() as server:
        running = Harness(server)
        yield running
        running.close()


@pytest.fixture
def wire(harness: Harness) -> Iterator[WireServer]:
    harness.server.reset()
    yield harness.server
    harness.server.reset()


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def request_for(dialect: str, messages: tuple[Message, ...] = PROMPT, **overrides: Any) -> CompletionRequest:
    return CompletionRequest(model=MODELS[dialect], messages=messages, **{"tools": TOOLS, **overrides})


def only_request(wire: WireServer) -> Recorded:
    requests = wire.requests
    assert len(requests) == 1, [r.path for r in requests]
    return requests[0]


def _generation_config(recorded: Recorded) -> dict[str, Any]:
    return dict(recorded.json.get("generationConfig") or {})


# ---------------------------------------------------------------------------
# The shared conversation


def test_conversation_without_tools_is_what_chat_turns_gives() -> None:
    messages = (
        SystemMessage(content="one"),
        UserMessage(content="q1", user_id="u", session_id="s"),
        UserMessage(content="q1b", user_id="u", session_id="s"),
        AgentMessage(content="a1", agent_id="a", model="m"),
        SystemMessage(content="two"),
        ErrorMessage(content="x", error=ErrorDetail(code="step_failed", message="boom"), recoverable=True),
        UserMessage(content="q2", user_id="u", session_id="s"),
    )
    system, turns = conversation(messages)
    assert (system, [(t.role, t.text) for t in turns]) == chat_turns(messages)
    assert all(t.plain for t in turns)


def test_conversation_puts_calls_and_results_in_turns() -> None:
    system, turns = conversation(SECOND_TURN)
    assert system == SYSTEM
    assert [t.role for t in turns] == ["user", "assistant", "user"]
    assert turns[1].tool_calls == CALLS
    assert [(r.call_id, r.is_error) for r in turns[2].tool_results] == [("call_abc1", False), ("call_abc2", True)]
    assert turns[2].text == "and be brief"


def test_conversation_must_end_with_the_turn_the_model_answers() -> None:
    with pytest.raises(ProviderRequestError, match="last"):
        conversation(SECOND_TURN[:3])  # the model's calls, with no results yet


# ---------------------------------------------------------------------------
# Offering tools


EXPECTED_TOOLS = {
    "openai": [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
        }
        for t in TOOLS
    ],
    "anthropic": [{"name": t.name, "description": t.description, "input_schema": t.parameters} for t in TOOLS],
    # google-genai 3.x sends this field under its proto name; the API's JSON accepts both spellings.
    "google": [{"name": t.name, "description": t.description, "parameters_json_schema": t.parameters} for t in TOOLS],
}
SCHEMA_FIELD = {"anthropic": "input_schema", "google": "parameters_json_schema"}


def test_tools_are_offered_in_the_provider_format(dialect: str, harness: Harness, wire: WireServer) -> None:
    completion = harness.complete(dialect, request_for(dialect))

    assert completion.tool_calls == ()
    assert completion.output == completion.text == "echo: find graph papers"
    recorded = only_request(wire)
    assert recorded.tools == EXPECTED_TOOLS[dialect]
    body = recorded.json
    assert "tool_choice" not in body and "toolConfig" not in body, "the model may answer without tools"
    if dialect == "google":
        assert len(body["tools"]) == 1, "one Tool holding every function declaration"
        assert "responseMimeType" not in _generation_config(recorded)
        assert "automaticFunctionCalling" not in str(body), "the SDK-side setting is not sent"


def test_no_tools_no_tool_fields(dialect: str, harness: Harness, wire: WireServer) -> None:
    harness.complete(dialect, request_for(dialect, tools=()))
    body = only_request(wire).json
    assert not {"tools", "tool_choice", "toolConfig"} & set(body)


# ---------------------------------------------------------------------------
# Reading tool calls


def test_one_tool_call(dialect: str, harness: Harness, wire: WireServer) -> None:
    wire.script(tool_calls=[CALL_SEARCH])
    completion = harness.complete(dialect, request_for(dialect))

    (call,) = completion.tool_calls
    assert (call.name, call.arguments) == ("search_docs", {"query": "graph networks", "limit": 2})
    expected_id = {"openai": "call_wire_", "anthropic": "toolu_wire_", "google": "call_0_0"}[dialect]
    assert call.id.startswith(expected_id), call.id
    assert completion.text == completion.output == ""
    assert completion.finish_reason == TOOL_FINISH[dialect]
    assert completion.output_tokens == 5  # words of the arguments' JSON
    assert not completion.streamed


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_several_calls_in_one_turn_with_text(dialect: str, stream: bool, harness: Harness, wire: WireServer) -> None:
    wire.script(text="Let me look that up.", tool_calls=[CALL_SEARCH, CALL_WEATHER])
    deltas: list[str] = []
    completion = harness.complete(dialect, request_for(dialect, stream=stream), deltas.append)

    assert [(c.name, c.arguments) for c in completion.tool_calls] == [
        ("search_docs", {"query": "graph networks", "limit": 2}),
        ("get_weather", {"city": "Paris"}),
    ]
    assert len({c.id for c in completion.tool_calls}) == 2
    if dialect == "google":
        assert [c.id for c in completion.tool_calls] == ["call_0_0", "call_0_1"]
    assert completion.text == completion.output == "Let me look that up."
    assert completion.streamed is stream
    assert "".join(deltas) == (completion.text if stream else "")
    recorded = only_request(wire)
    if dialect == "google":
        assert recorded.path.endswith(":streamGenerateContent" if stream else ":generateContent")
    else:
        assert recorded.json.get("stream", False) is stream


def test_streamed_call_without_text(dialect: str, harness: Harness, wire: WireServer) -> None:
    wire.script(tool_calls=[CALL_WEATHER])
    deltas: list[str] = []
    completion = harness.complete(dialect, request_for(dialect, stream=True), deltas.append)

    assert [(c.name, c.arguments) for c in completion.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert completion.text == "" and "".join(deltas) == ""
    assert completion.streamed and completion.finish_reason == TOOL_FINISH[dialect]
    assert completion.output_tokens == 2


def test_a_call_without_arguments(dialect: str, harness: Harness, wire: WireServer) -> None:
    wire.script(tool_calls=[{"name": "get_weather", "arguments": {}}])
    (call,) = harness.complete(dialect, request_for(dialect, stream=True)).tool_calls
    assert call.arguments == {}


@pytest.mark.parametrize(
    "raw", ['{"query": "graph', '{"query": nope}', '["graph"]'], ids=["cut-off", "not-json", "not-an-object"]
)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_malformed_arguments_are_invalid_model_output(
    dialect: str, stream: bool, raw: str, harness: Harness, wire: WireServer
) -> None:
    """Arguments that are not a JSON object are a bad sample (retryable), like a bad structured answer."""
    wire.script(tool_calls=[{"name": "search_docs", "arguments": raw}])
    with pytest.raises(StepError) as caught:
        harness.complete(dialect, request_for(dialect, stream=stream))
    assert type(caught.value) is InvalidModelOutput, repr(caught.value)
    assert "search_docs" in str(caught.value)
    only_request(wire)


# ---------------------------------------------------------------------------
# The next turn: the model's calls and their results, in the provider's format

CALLS = [
    ToolCall(id="call_abc1", name="search_docs", arguments={"query": "graph"}),
    ToolCall(id="call_abc2", name="get_weather", arguments={"city": "Atlantis"}),
]
OK = ToolResult(call_id="call_abc1", name="search_docs", content='[{"title": "GraphSAGE"}]')
FAILED = ToolResult(call_id="call_abc2", name="get_weather", content="unknown city 'Atlantis'", is_error=True)
SECOND_TURN: tuple[Message, ...] = (
    *PROMPT,
    AgentMessage(content="", agent_id="a1", model="m", tool_calls=CALLS),
    SystemMessage(content=OK.content, code="tool_result", tool_result=OK),
    ErrorMessage(
        content=FAILED.content,
        error=ErrorDetail(code="tool_error", message=FAILED.content),
        recoverable=True,
        tool_result=FAILED,
    ),
    UserMessage(content="and be brief", user_id="u1", session_id="s1"),
)
USER_FIRST = {"role": "user", "content": "find graph papers"}

EXPECTED_SECOND_TURN: dict[str, Any] = {
    "openai": [
        {"role": "system", "content": SYSTEM},
        USER_FIRST,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc1",
                    "type": "function",
                    "function": {"name": "search_docs", "arguments": '{"query": "graph"}'},
                },
                {
                    "id": "call_abc2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Atlantis"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc1", "content": OK.content},
        {"role": "tool", "tool_call_id": "call_abc2", "content": "Error: unknown city 'Atlantis'"},
        {"role": "user", "content": "and be brief"},
    ],
    "anthropic": [
        USER_FIRST,
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_abc1", "name": "search_docs", "input": {"query": "graph"}},
                {"type": "tool_use", "id": "call_abc2", "name": "get_weather", "input": {"city": "Atlantis"}},
            ],
        },
        {
            "role": "user",
            "content": [  # the results first, then the text: the API's rule
                {"type": "tool_result", "tool_use_id": "call_abc1", "content": OK.content},
                {"type": "tool_result", "tool_use_id": "call_abc2", "content": FAILED.content, "is_error": True},
                {"type": "text", "text": "and be brief"},
            ],
        },
    ],
    "google": [
        {"role": "user", "parts": [{"text": "find graph papers"}]},
        {
            "role": "model",
            "parts": [
                # A call this process never saw gets Google's placeholder signature (the first of parallel calls).
                {
                    "functionCall": {"id": "call_abc1", "name": "search_docs", "args": {"query": "graph"}},
                    "thoughtSignature": "skip_thought_signature_validator",
                },
                {"functionCall": {"id": "call_abc2", "name": "get_weather", "args": {"city": "Atlantis"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"id": "call_abc1", "name": "search_docs", "response": {"output": OK.content}}},
                {"functionResponse": {"id": "call_abc2", "name": "get_weather", "response": {"error": FAILED.content}}},
                {"text": "and be brief"},
            ],
        },
    ],
}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_second_turn_sends_calls_and_results(dialect: str, stream: bool, harness: Harness, wire: WireServer) -> None:
    completion = harness.complete(dialect, request_for(dialect, SECOND_TURN, stream=stream))

    assert completion.output == "echo: and be brief"
    recorded = only_request(wire)
    turns = recorded.json["contents" if dialect == "google" else "messages"]
    assert turns == EXPECTED_SECOND_TURN[dialect]
    assert len(recorded.tool_results) == 2 and len(recorded.tool_calls_sent) == 2
    if dialect == "anthropic":
        assert recorded.json["system"] == SYSTEM
    if dialect == "google":
        assert recorded.json["systemInstruction"]["parts"] == [{"text": SYSTEM}]


def test_results_last_are_the_turn_the_model_answers(dialect: str, harness: Harness, wire: WireServer) -> None:
    """Without a new user message, the tool results themselves end the conversation."""
    harness.complete(dialect, request_for(dialect, SECOND_TURN[:-1]))
    recorded = only_request(wire)
    turns = recorded.json["contents" if dialect == "google" else "messages"]
    expected = copy.deepcopy(EXPECTED_SECOND_TURN[dialect])
    if dialect == "openai":
        expected.pop()  # the user's message after the tool messages
    else:
        expected[-1]["content" if dialect == "anthropic" else "parts"].pop()  # the text after the results
    assert turns == expected


def test_refused_call_is_an_error_result(harness: Harness, wire: WireServer) -> None:
    refused = ToolResult(
        call_id="call_abc2", name="get_weather", content="rejected by ops", is_error=True, refused=True
    )
    messages = (
        *PROMPT,
        AgentMessage(content="Checking.", agent_id="a1", model="m", tool_calls=CALLS[1:]),
        ErrorMessage(
            content=refused.content,
            error=ErrorDetail(code="tool_refused", message=refused.content),
            recoverable=False,
            tool_result=refused,
        ),
    )
    harness.complete("anthropic", request_for("anthropic", messages))
    body = only_request(wire).json
    assert body["messages"][1]["content"][0] == {"type": "text", "text": "Checking."}
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_abc2", "content": "rejected by ops", "is_error": True}
    ]


def test_google_replays_the_thought_signature_it_received(harness: Harness, wire: WireServer) -> None:
    """Gemini 3 refuses a replayed call without its signature: the provider keeps the ones it saw."""
    wire.script(tool_calls=[{**CALL_SEARCH, "id": "fc-1", "signature": "c2lnbmF0dXJlLTE="}])
    first = harness.complete("google", request_for("google"))
    (call,) = first.tool_calls
    assert call.id == "fc-1"

    result = ToolResult(call_id=call.id, name=call.name, content="found")
    messages = (
        *PROMPT,
        AgentMessage(content="", agent_id="a1", model="m", tool_calls=[call]),
        SystemMessage(content="found", code="tool_result", tool_result=result),
    )
    harness.complete("google", request_for("google", messages))
    second = wire.requests[-1]
    assert second.tool_calls_sent == [
        {
            "functionCall": {"id": "fc-1", "name": "search_docs", "args": {"query": "graph networks", "limit": 2}},
            "thoughtSignature": "c2lnbmF0dXJlLTE=",
        }
    ]
    assert second.tool_results == [{"id": "fc-1", "name": "search_docs", "response": {"output": "found"}}]


def test_a_thought_signature_survives_a_resume_on_the_call_itself(harness: Harness, wire: WireServer) -> None:
    """A resumed run replays turns from checkpoints in a new process: the signature rides on the ToolCall."""
    wire.script(tool_calls=[{**CALL_SEARCH, "id": "fc-9", "signature": "c2lnbmF0dXJlLTk="}])
    (call,) = harness.complete("google", request_for("google")).tool_calls
    assert call.signature == "c2lnbmF0dXJlLTk="
    stored = type(call).model_validate_json(call.model_dump_json())  # as a checkpoint keeps it
    fresh = GoogleProvider("k-test", base_url=wire.url)  # a new process: nothing remembered
    result = ToolResult(call_id=call.id, name=call.name, content="found")
    messages = (
        *PROMPT,
        AgentMessage(content="", agent_id="a1", model="m", tool_calls=[stored]),
        SystemMessage(content="found", code="tool_result", tool_result=result),
    )
    harness.runner.run(fresh.complete(request_for("google", messages)))
    harness.runner.run(fresh.aclose())
    assert wire.requests[-1].tool_calls_sent[0]["thoughtSignature"] == "c2lnbmF0dXJlLTk="


def test_google_does_not_send_ids_it_never_gave(harness: Harness, wire: WireServer) -> None:
    wire.script(tool_calls=[CALL_SEARCH])
    (call,) = harness.complete("google", request_for("google")).tool_calls
    assert call.id == "call_0_0"
    messages = (
        *PROMPT,
        AgentMessage(content="", agent_id="a1", model="m", tool_calls=[call]),
        SystemMessage(
            content="found",
            code="tool_result",
            tool_result=ToolResult(call_id=call.id, name=call.name, content="found"),
        ),
    )
    harness.complete("google", request_for("google", messages))
    second = wire.requests[-1]
    assert "id" not in second.tool_calls_sent[0]["functionCall"]
    assert second.tool_results == [{"name": "search_docs", "response": {"output": "found"}}]


# ---------------------------------------------------------------------------
# The final answer beside tools


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_final_answer_with_tools_and_schema(dialect: str, stream: bool, harness: Harness, wire: WireServer) -> None:
    completion = harness.complete(dialect, request_for(dialect, output_schema=SCHEMA, stream=stream))

    assert completion.output == SCHEMA_SAMPLE
    assert completion.tool_calls == ()
    recorded = only_request(wire)
    body = recorded.json
    names = [t["function"]["name"] if dialect == "openai" else t["name"] for t in recorded.tools]
    if dialect == "openai":
        # OpenAI: JSON mode beside the tools; the model calls tools or answers in JSON.
        assert names == ["search_docs", "get_weather"]
        assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": SCHEMA}}
        assert "tool_choice" not in body
    elif dialect == "anthropic":
        assert names == ["search_docs", "get_weather", FINAL_ANSWER_TOOL]
        assert recorded.tools[-1]["input_schema"] == SCHEMA
        assert body["tool_choice"] == {"type": "any"}
        assert completion.streamed is stream, "with tools, a structured answer streams too"
    else:
        assert names == ["search_docs", "get_weather", FINAL_ANSWER_TOOL]
        assert recorded.tools[-1][SCHEMA_FIELD[dialect]] == SCHEMA
        assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
        assert "responseMimeType" not in _generation_config(recorded)
        assert "responseJsonSchema" not in _generation_config(recorded)


def test_tool_turn_with_a_schema_is_not_validated(dialect: str, harness: Harness, wire: WireServer) -> None:
    """A turn that calls tools is not the answer: its text need not match the schema."""
    wire.script(text="thinking aloud", tool_calls=[CALL_SEARCH])
    completion = harness.complete(dialect, request_for(dialect, output_schema=SCHEMA))
    assert completion.output == "thinking aloud"
    assert [c.name for c in completion.tool_calls] == ["search_docs"]


@pytest.mark.parametrize("dialect", ["anthropic", "google"])
def test_final_answer_beside_real_calls_is_dropped(dialect: str, harness: Harness, wire: WireServer) -> None:
    wire.script(tool_calls=[CALL_SEARCH, {"name": FINAL_ANSWER_TOOL, "arguments": SCHEMA_SAMPLE}])
    completion = harness.complete(dialect, request_for(dialect, output_schema=SCHEMA))
    assert [c.name for c in completion.tool_calls] == ["search_docs"]
    assert completion.output == completion.text == ""


@pytest.mark.parametrize("dialect", ["anthropic", "google"])
def test_final_answer_that_does_not_match_is_invalid_model_output(
    dialect: str, harness: Harness, wire: WireServer
) -> None:
    wire.script(output={"title": "ok", "count": "three"})
    with pytest.raises(InvalidModelOutput, match="does not match outputSchema"):
        harness.complete(dialect, request_for(dialect, output_schema=SCHEMA))


@pytest.mark.parametrize("dialect", ["anthropic", "google"])
def test_final_answer_of_a_non_object_schema_is_wrapped(dialect: str, harness: Harness, wire: WireServer) -> None:
    schema = {"type": "array", "items": {"type": "string"}}
    completion = harness.complete(dialect, request_for(dialect, output_schema=schema, stream=True))

    assert completion.output == ["sample"]
    wrapped = {"type": "object", "properties": {"output": schema}, "required": ["output"]}
    final = only_request(wire).tools[-1]
    assert final[SCHEMA_FIELD[dialect]] == wrapped


@pytest.mark.parametrize("dialect", ["anthropic", "google"])
def test_a_tool_may_not_take_the_final_answer_name(dialect: str, harness: Harness, wire: WireServer) -> None:
    clash = ToolSpec(name=FINAL_ANSWER_TOOL, description="mine", parameters={"type": "object", "properties": {}})
    request = CompletionRequest(model=MODELS[dialect], messages=PROMPT, tools=(clash,), output_schema=SCHEMA)
    with pytest.raises(ProviderRequestError, match="rename the tool"):
        harness.complete(dialect, request)
    assert wire.requests == []


def test_anthropic_structured_answer_without_tools_keeps_the_forced_tool(harness: Harness, wire: WireServer) -> None:
    completion = harness.complete("anthropic", request_for("anthropic", tools=(), output_schema=SCHEMA, stream=True))
    assert completion.output == SCHEMA_SAMPLE and not completion.streamed
    body = only_request(wire).json
    assert [t["name"] for t in body["tools"]] == ["respond"]
    assert body["tool_choice"] == {"type": "tool", "name": "respond"}
