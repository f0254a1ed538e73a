"""A conversation with tool calls, in the shape every provider's format is written from.

The engine's messages (seed 002) are a flat list: user and agent messages, system
notes, errors, and each tool call's result as a system or error message that
carries a ``tool_result``. Providers want alternating user/assistant turns
instead, with the model's tool calls inside its turn and the results inside the
next user turn (OpenAI spreads that user turn over ``tool`` messages; Anthropic
wants the results first in it; Gemini wants them as ``function_response`` parts).
:func:`conversation` builds those turns once, merging consecutive turns of one
role because strict servers refuse two in a row, so each adapter only writes its
own syntax.

It also holds what the adapters share about tool calls: the ``final_answer``
tool's schema (a structured answer offered as a tool where a provider cannot mix
tools with its JSON mode), argument parsing, and call ids for providers that give
none.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentparty.models.messages import AgentMessage, ErrorMessage, Message, SystemMessage, UserMessage
from agentparty.models.step_errors import InvalidModelOutput, ProviderRequestError
from agentparty.models.tools import FINAL_ANSWER_TOOL, ToolCall, ToolSpec

from .base import Role

WRAPPED_ANSWER = "output"
"""Tool inputs must be objects: an answer schema of another type is wrapped as this property."""
FINAL_ANSWER_DESCRIPTION = (
    "Give your final answer as this tool's input, exactly matching its schema. "
    "Call it only when you need no more tools."
)


@dataclass(frozen=True)
class ToolOutcome:
    """One tool call's result as the model reads it."""

    call_id: str
    name: str
    content: str
    is_error: bool
    """The call failed or was refused (an error message, or a result marked as an error)."""
    refused: bool = False
    """It was never made: a person rejected it, or the agent may not use the tool."""


@dataclass
class Turn:
    """One turn of the conversation: the user's (text and tool results) or the model's (text and tool calls)."""

    role: Role
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    """The model's calls (assistant turns only)."""
    tool_results: list[ToolOutcome] = field(default_factory=list)
    """Results of the previous turn's calls (user turns only); providers want them before any text."""

    def merge(self, other: Turn) -> None:
        self.text = "\n\n".join(part for part in (self.text, other.text) if part)
        self.tool_calls += other.tool_calls
        self.tool_results += other.tool_results

    @property
    def plain(self) -> bool:
        """Text only: written exactly as before tools existed."""
        return not self.tool_calls and not self.tool_results


def tool_outcome(message: SystemMessage | ErrorMessage) -> ToolOutcome | None:
    """The tool result a system or error message carries, with the text the model should read; None without one."""
    result = message.tool_result
    if result is None:
        return None
    is_error = isinstance(message, ErrorMessage) or result.is_error or result.refused
    text = result.content or message.content
    if not text and isinstance(message, ErrorMessage):
        text = message.error.message
    return ToolOutcome(
        call_id=result.call_id, name=result.name, content=text, is_error=is_error, refused=result.refused
    )


def _turn(message: Message) -> Turn | None:
    """The turn one message makes (None for a system note, which goes to the system prompt)."""
    if isinstance(message, SystemMessage | ErrorMessage) and (outcome := tool_outcome(message)) is not None:
        return Turn("user", tool_results=[outcome])
    if isinstance(message, SystemMessage):
        return None
    if isinstance(message, AgentMessage):
        return Turn("assistant", message.content, tool_calls=list(message.tool_calls or ()))
    if isinstance(message, ErrorMessage):
        # No provider has a role for an error: the user turn says so.
        return Turn("user", f"[error {message.error.code}] {message.error.message}")
    if isinstance(message, UserMessage) or message.type == "user":
        return Turn("user", message.content)
    raise ProviderRequestError(f"cannot send a {message.type!r} message to a model")


def conversation(messages: Sequence[Message]) -> tuple[str, list[Turn]]:
    """Split unified messages into a system prompt and alternating turns that start and end with the user.

    The last turn is the one the model answers: a user message, or the results of
    the model's tool calls. Without tool calls or results this gives the same turns
    as :func:`agentparty.runtime.providers.base.chat_turns` (except that merging
    skips empty texts, so a results-only turn adds no blank lines to the next text).
    """
    system: list[str] = []
    turns: list[Turn] = []
    for message in messages:
        turn = _turn(message)
        if turn is None:
            system.append(message.content)
        elif turns and turns[-1].role == turn.role:
            turns[-1].merge(turn)
        else:
            turns.append(turn)
    if not turns or turns[-1].role != "user":
        raise ProviderRequestError(
            "a completion needs a user message or tool results last (the turn the model answers)"
        )
    if turns[0].role != "user":
        raise ProviderRequestError("a conversation must start with a user message")
    return "\n\n".join(system), turns


@dataclass(frozen=True)
class AnswerTool:
    """The tool a structured answer is given through: its name, and whether its schema wraps the answer."""

    name: str
    wrapped: bool


def final_answer_schema(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The input schema of a tool whose input is the answer, and whether ``schema`` was wrapped (not an object)."""
    if schema.get("type") == "object":
        return schema, False
    return {"type": "object", "properties": {WRAPPED_ANSWER: schema}, "required": [WRAPPED_ANSWER]}, True


def answer_from_tool_input(tool_input: Any, wrapped: bool) -> str:
    """An answer tool's input as the JSON text ``structured_output`` validates (unwrapped when it was wrapped)."""
    if wrapped and isinstance(tool_input, dict) and WRAPPED_ANSWER in tool_input:
        tool_input = tool_input[WRAPPED_ANSWER]
    return json.dumps(tool_input)


def check_tool_names(tools: Sequence[ToolSpec], output_schema: dict[str, Any] | None) -> None:
    """A real tool may not take the name the structured answer is offered under."""
    if output_schema is not None and any(tool.name == FINAL_ANSWER_TOOL for tool in tools):
        raise ProviderRequestError(
            f"a tool is named {FINAL_ANSWER_TOOL!r}, the name reserved for the structured answer: rename the tool"
        )


def tool_arguments(raw: str | None, name: str, provider: str, model: str) -> dict[str, Any]:
    """A tool call's arguments from the JSON text the model wrote; bad JSON is retryable, like a bad answer."""
    if raw is None or not raw.strip():
        return {}  # a call without arguments; some OpenAI-compatible servers send "" for it
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidModelOutput(
            f"{provider}/{model} called tool {name!r} with arguments that are not valid JSON "
            f"({exc.msg} at {exc.pos}): {raw[:200]!r}"
        ) from None
    return object_arguments(value, name, provider, model)


def object_arguments(value: Any, name: str, provider: str, model: str) -> dict[str, Any]:
    """Arguments must be a JSON object (every provider's function parameters are one)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidModelOutput(
            f"{provider}/{model} called tool {name!r} with arguments that are not a JSON object: {str(value)[:200]!r}"
        )
    return value


def synthetic_call_id(messages: Sequence[Message], index: int) -> str:
    """A call id for a provider that gives none: the same for the same request, unique within its conversation."""
    turn = sum(1 for message in messages if isinstance(message, AgentMessage))
    return f"call_{turn}_{index}"


def tool_result_text(outcome: ToolOutcome) -> str:
    """A result as text, for formats without an error flag (OpenAI's ``tool`` message)."""
    return f"Error: {outcome.content}" if outcome.is_error else outcome.content
