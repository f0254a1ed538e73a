"""The simulated provider with tools: deterministic calls with schema-valid arguments, then the answer.

A small loop stands in for the agent loop (tasks/), so these tests check only the
provider's side: what it asks for, given the conversation so far.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator
from pydantic import BaseModel

from agentparty.models.messages import AgentMessage, ErrorDetail, ErrorMessage, Message, SystemMessage, UserMessage
from agentparty.models.tools import ToolCall, ToolResult, ToolSpec
from agentparty.runtime.providers.base import Completion, CompletionRequest
from agentparty.runtime.providers.simulated import SIMULATED_LABEL, SimulatedProvider, SimulatedSettings
from agentparty.runtime.providers.simulated_tools import wanted_results


class Window(BaseModel):
    since: datetime
    tags: list[str]


class Filtered(BaseModel):
    query: str
    window: Window
    limit: int = 3


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
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string", "minLength": 2}, "unit": {"enum": ["C", "F"]}},
        "required": ["city", "unit"],
    },
)
FILTERED = ToolSpec(
    name="filtered_search", description="Search with a window.", parameters=Filtered.model_json_schema()
)
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "score": {"type": "number", "minimum": 0, "maximum": 1}},
    "required": ["title", "score"],
}
PROMPT = "Summarise what graph neural networks are for link prediction"


def first_messages(prompt: str = PROMPT) -> tuple[Message, ...]:
    return (SystemMessage(content="You are a researcher."), UserMessage(content=prompt, user_id="u", session_id="s"))


def request(
    messages: tuple[Message, ...], tools: tuple[ToolSpec, ...], schema: dict[str, Any] | None = None, **kw: Any
) -> CompletionRequest:
    return CompletionRequest(model="simulated", messages=messages, tools=tools, output_schema=schema, **kw)


def complete(provider: SimulatedProvider, req: CompletionRequest) -> Completion:
    return asyncio.run(provider.complete(req))


def ok(call: ToolCall) -> ToolResult:
    return ToolResult(call_id=call.id, name=call.name, content=f"result of {call.name}")


def failed(call: ToolCall, *, refused: bool = False) -> ToolResult:
    return ToolResult(call_id=call.id, name=call.name, content="it broke", is_error=True, refused=refused)


def result_message(result: ToolResult) -> Message:
    """As the agent loop writes a result: an error message for a failure, else a system message."""
    if result.is_error:
        detail = ErrorDetail(code="tool_refused" if result.refused else "tool_error", message=result.content)
        return ErrorMessage(content=result.content, error=detail, recoverable=not result.refused, tool_result=result)
    return SystemMessage(content=result.content, code="tool_result", tool_result=result)


def after(messages: tuple[Message, ...], completion: Completion, results: list[ToolResult]) -> tuple[Message, ...]:
    turn = AgentMessage(
        content=completion.text, agent_id="a", model="simulated", tool_calls=list(completion.tool_calls)
    )
    return (*messages, turn, *(result_message(r) for r in results))


def run_loop(
    provider: SimulatedProvider,
    tools: tuple[ToolSpec, ...],
    schema: dict[str, Any] | None = None,
    execute: Callable[[ToolCall], ToolResult] = ok,
    prompt: str = PROMPT,
) -> list[Completion]:
    """Model turn, tool calls, next turn… until an answer (at most 8 turns)."""
    messages = first_messages(prompt)
    turns: list[Completion] = []
    for _ in range(8):
        completion = complete(provider, request(messages, tools, schema))
        turns.append(completion)
        if not completion.tool_calls:
            return turns
        messages = after(messages, completion, [execute(call) for call in completion.tool_calls])
    raise AssertionError(f"no answer after {len(turns)} turns")


def assert_valid_arguments(calls: tuple[ToolCall, ...], tools: tuple[ToolSpec, ...]) -> None:
    by_name = {tool.name: tool for tool in tools}
    for call in calls:
        errors = list(Draft202012Validator(by_name[call.name].parameters).iter_errors(call.arguments))
        assert not errors, (call, errors)


def test_calls_a_tool_then_answers_with_a_valid_output() -> None:
    turns = run_loop(SimulatedProvider(), (SEARCH,), SCHEMA)

    calls = [call for turn in turns for call in turn.tool_calls]
    assert 1 <= len(calls) <= 2 and len(turns) == len(calls) + 1, "one call per turn with one tool"
    for turn in turns[:-1]:
        assert_valid_arguments(turn.tool_calls, (SEARCH,))
        assert turn.finish_reason == "tool_calls" and turn.output == turn.text
        assert turn.text.startswith(SIMULATED_LABEL) and "search_docs" in turn.text
        assert turn.simulated and turn.output_tokens > 0
    final = turns[-1]
    assert final.tool_calls == () and final.finish_reason == "stop"
    assert not list(Draft202012Validator(SCHEMA).iter_errors(final.output))
    assert len({call.id for call in calls}) == len(calls), "ids are unique within the conversation"


def test_a_text_answer_says_which_results_it_read() -> None:
    final = run_loop(SimulatedProvider(), (SEARCH,))[-1]
    assert final.output == final.text
    assert final.text.startswith(f"{SIMULATED_LABEL} answer to: {PROMPT}")
    assert "search_docs" in final.text


def test_two_tools_two_calls_on_the_first_turn() -> None:
    tools = (SEARCH, WEATHER)
    turns = run_loop(SimulatedProvider(), tools, SCHEMA)

    first = turns[0].tool_calls
    assert sorted(call.name for call in first) == ["get_weather", "search_docs"]
    assert_valid_arguments(first, tools)
    assert len(turns) == 2, "two results reach what it wants (at most two)"


def test_same_request_same_calls() -> None:
    req = request(first_messages(), (SEARCH, WEATHER))
    first = complete(SimulatedProvider(), req)
    again = complete(SimulatedProvider(), req)
    same_provider = SimulatedProvider()
    complete(same_provider, req)
    assert first.tool_calls == again.tool_calls == complete(same_provider, req).tool_calls
    assert first.tool_calls and first.text == again.text and first.input_tokens == again.input_tokens

    whole = [turn.tool_calls for turn in run_loop(SimulatedProvider(), (SEARCH,), SCHEMA)]
    assert whole == [turn.tool_calls for turn in run_loop(SimulatedProvider(), (SEARCH,), SCHEMA)]


def test_how_many_results_it_wants_depends_on_the_request() -> None:
    counts = {
        sum(len(turn.tool_calls) for turn in run_loop(SimulatedProvider(), (SEARCH,), prompt=f"topic {i}"))
        for i in range(12)
    }
    assert counts == {1, 2}
    assert {wanted_results(seed) for seed in range(4)} == {1, 2}


def test_a_search_parameter_gets_keywords_of_the_last_user_message() -> None:
    (call, *_) = complete(SimulatedProvider(), request(first_messages(), (SEARCH,))).tool_calls
    assert call.arguments == {"query": "graph neural networks link", "limit": 3}


def test_nested_models_and_formats_give_valid_arguments() -> None:
    (call,) = complete(SimulatedProvider(), request(first_messages(), (FILTERED,))).tool_calls
    parsed = Filtered.model_validate(call.arguments)  # $ref to $defs, a date-time, a default
    assert parsed.query == "graph neural networks link" and parsed.limit == 3


def test_an_error_is_retried_once_with_new_arguments() -> None:
    provider = SimulatedProvider()
    messages = first_messages()
    first = complete(provider, request(messages, (WEATHER,)))
    (call,) = first.tool_calls

    messages = after(messages, first, [failed(call)])
    retry = complete(provider, request(messages, (WEATHER,)))
    (again,) = retry.tool_calls
    assert again.name == call.name and again.id == f"{call.id}_retry"
    assert again.arguments != call.arguments
    assert_valid_arguments(retry.tool_calls, (WEATHER,))

    # The retry fails too: no second retry; the model moves on.
    messages = after(messages, retry, [failed(again)])
    then = complete(provider, request(messages, (WEATHER,)))
    assert all(not c.id.endswith("_retry") for c in then.tool_calls)


def test_errors_among_parallel_calls_are_retried() -> None:
    provider = SimulatedProvider()
    messages = first_messages()
    first = complete(provider, request(messages, (SEARCH, WEATHER)))
    broken, fine = first.tool_calls
    messages = after(messages, first, [failed(broken), ok(fine)])
    (retry,) = complete(provider, request(messages, (SEARCH, WEATHER))).tool_calls
    assert retry.id == f"{broken.id}_retry" and retry.name == broken.name


def test_a_refused_call_is_not_retried() -> None:
    provider = SimulatedProvider()
    turns = run_loop(provider, (SEARCH,), SCHEMA, execute=lambda call: failed(call, refused=True))
    assert all(not call.id.endswith("_retry") for turn in turns for call in turn.tool_calls)
    assert turns[-1].tool_calls == ()


def test_a_loop_whose_tools_always_fail_still_ends() -> None:
    turns = run_loop(SimulatedProvider(), (SEARCH, WEATHER), SCHEMA, execute=failed)
    assert turns[-1].tool_calls == ()
    assert not list(Draft202012Validator(SCHEMA).iter_errors(turns[-1].output))


def test_tool_results_count_as_input_tokens() -> None:
    provider = SimulatedProvider(SimulatedSettings(chars_per_token=1))
    messages = first_messages()
    first = complete(provider, request(messages, (SEARCH,)))
    (call,) = first.tool_calls
    messages = after(messages, first, [ok(call)])
    second = complete(provider, request(messages, (SEARCH,)))
    assert second.input_tokens >= first.input_tokens + len("result of search_docs")


def test_streaming_a_tool_turn() -> None:
    pieces: list[str] = []
    completion = asyncio.run(
        SimulatedProvider().complete(request(first_messages(), (SEARCH,), stream=True), pieces.append)
    )
    assert completion.tool_calls and completion.streamed
    assert "".join(pieces) == completion.text


def test_without_tools_nothing_changes() -> None:
    """The same request without tools answers as it always did (same text, same hash-seeded output)."""
    plain = complete(SimulatedProvider(), request(first_messages(), (), SCHEMA))
    assert plain.tool_calls == () and plain.finish_reason == "stop"
    assert plain.output == complete(SimulatedProvider(), request(first_messages(), (), SCHEMA)).output
