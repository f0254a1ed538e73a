"""The Messages API format of a conversation with tools, and how an answer's content blocks are read.

A model turn that asked for tools is an ``assistant`` message of ``tool_use``
blocks (after its text, if any); the results are the next ``user`` message, one
``tool_result`` block per call, placed before any text as the API requires, with
``is_error`` on a failed or refused call. Turns without tools are written as
before (a plain string), so requests without tools do not change.

Structured output rides on a tool whose input is the answer. Without other tools
it is the forced tool ``respond``; beside real tools the model must be free to
call them, so the answer is the ``final_answer`` tool and ``tool_choice`` is
``any`` (some tool every turn: a real one, or the answer).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from anthropic.types import Message

from agentparty.models.tools import FINAL_ANSWER_TOOL, ToolCall, ToolSpec

from .conversation import (
    FINAL_ANSWER_DESCRIPTION,
    AnswerTool,
    Turn,
    answer_from_tool_input,
    final_answer_schema,
    object_arguments,
    tool_arguments,
)

RESPOND_TOOL = "respond"
"""The forced tool of a structured answer when no other tools are offered."""
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
"""``tool_use`` ids must match ``^[a-zA-Z0-9_-]+$``; a call made by another provider (a fallback) may not."""


def anthropic_messages(turns: Sequence[Turn]) -> list[dict[str, Any]]:
    """The ``messages`` of a request, one per turn."""
    return [{"role": turn.role, "content": turn.text if turn.plain else _blocks(turn)} for turn in turns]


def _blocks(turn: Turn) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for result in turn.tool_results:
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": _call_id(result.call_id)}
        if result.content:
            block["content"] = result.content
        if result.is_error:
            block["is_error"] = True
        blocks.append(block)
    if turn.text:
        blocks.append({"type": "text", "text": turn.text})
    blocks += [
        {"type": "tool_use", "id": _call_id(call.id), "name": call.name, "input": call.arguments}
        for call in turn.tool_calls
    ]
    return blocks


def _call_id(call_id: str) -> str:
    return _ID_UNSAFE.sub("_", call_id) or "call"


def tool_params(
    tools: Sequence[ToolSpec], output_schema: dict[str, Any] | None
) -> tuple[dict[str, Any], AnswerTool | None]:
    """``tools`` and ``tool_choice`` for a request, and the tool a structured answer comes through (if any)."""
    offered = [{"name": tool.name, "description": tool.description, "input_schema": tool.parameters} for tool in tools]
    if output_schema is None:
        return ({"tools": offered} if offered else {}), None
    schema, wrapped = final_answer_schema(output_schema)
    if not offered:
        answer = AnswerTool(RESPOND_TOOL, wrapped)
        description = "Give your answer as this tool's input, exactly matching its schema."
        choice: dict[str, Any] = {"type": "tool", "name": RESPOND_TOOL}
    else:
        answer = AnswerTool(FINAL_ANSWER_TOOL, wrapped)
        description = FINAL_ANSWER_DESCRIPTION
        choice = {"type": "any"}
    offered.append({"name": answer.name, "description": description, "input_schema": schema})
    return {"tools": offered, "tool_choice": choice}, answer


def read_content(
    message: Message,
    answer_tool: AnswerTool | None,
    streamed_inputs: dict[int, str] | None,
    provider: str,
    model: str,
) -> tuple[str, tuple[ToolCall, ...]]:
    """The answer text (or the answer tool's input as JSON) and the real tool calls of a response.

    A call to the answer tool is the answer, never a tool call; beside real calls in
    the same turn it is dropped (the real ones run first, and the model answers again).
    ``streamed_inputs`` holds each streamed ``tool_use`` block's raw JSON by index:
    the SDK parses it leniently (a cut-off object still parses), it is parsed strictly here.
    """
    text = "".join(block.text for block in message.content if block.type == "text")
    calls: list[ToolCall] = []
    answer: dict[str, Any] | None = None
    for index, block in enumerate(message.content):
        if block.type != "tool_use":
            continue
        if streamed_inputs is not None and index in streamed_inputs:
            arguments = tool_arguments(streamed_inputs[index], block.name, provider, model)
        else:
            arguments = object_arguments(block.input, block.name, provider, model)
        if answer_tool is not None and block.name == answer_tool.name:
            answer = arguments
        else:
            calls.append(ToolCall(id=block.id, name=block.name, arguments=arguments))
    if calls:
        return text, tuple(calls)
    if answer_tool is not None and answer is not None:
        return answer_from_tool_input(answer, answer_tool.wrapped), ()
    # Without the answer tool's call, the text is validated as is (and usually fails).
    return text, ()
