"""The Chat Completions format of a conversation with tools: messages, tool specs, and the calls a model makes.

A model turn that asked for tools is an ``assistant`` message with ``tool_calls``
(arguments as JSON text); each result is a ``{"role": "tool", "tool_call_id", "content"}``
message right after it, since the API refuses an assistant's call left without its
result. The format has no error flag for a result, so a failed call's text says
``Error:``. Streamed calls arrive as deltas keyed by ``index``: the id and name in
the first, the arguments as text fragments after it (:class:`StreamedToolCalls`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentparty.models.tools import ToolCall, ToolSpec

from .conversation import Turn, tool_arguments, tool_result_text


def openai_messages(system: str, turns: Sequence[Turn]) -> list[dict[str, Any]]:
    """The ``messages`` of a request: the system prompt first, then each turn (a user turn may become several)."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for turn in turns:
        if turn.plain:
            messages.append({"role": turn.role, "content": turn.text})
        elif turn.role == "assistant":
            messages.append(
                {
                    "role": "assistant",
                    # Content may be null beside tool calls (and is, when the model only called tools).
                    "content": turn.text or None,
                    "tool_calls": [
                        {
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                        }
                        for call in turn.tool_calls
                    ],
                }
            )
        else:
            messages += [
                {"role": "tool", "tool_call_id": result.call_id, "content": tool_result_text(result)}
                for result in turn.tool_results
            ]
            if turn.text:
                messages.append({"role": "user", "content": turn.text})
    return messages


def openai_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """The ``tools`` of a request (function tools; not ``strict``, for the same reason as the answer schema)."""
    return [
        {
            "type": "function",
            "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
        }
        for tool in tools
    ]


def parse_tool_calls(
    calls: Sequence[Any] | None, fallback_id: Callable[[int], str], provider: str, model: str
) -> tuple[ToolCall, ...]:
    """The function calls of a (non-streamed) answer; ``fallback_id(index)`` names a call the server left unnamed."""
    parsed: list[ToolCall] = []
    for index, call in enumerate(calls or ()):
        function = getattr(call, "function", None)
        if function is None:  # a custom (free-text) tool call: never offered, so never expected
            continue
        parsed.append(
            ToolCall(
                id=call.id or fallback_id(index),
                name=function.name,
                arguments=tool_arguments(function.arguments, function.name, provider, model),
            )
        )
    return tuple(parsed)


@dataclass
class _Fragment:
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class StreamedToolCalls:
    """Tool-call deltas of a stream, gathered by their ``index`` until the stream ends."""

    _calls: dict[int, _Fragment] = field(default_factory=dict)

    def add(self, deltas: Sequence[Any] | None) -> None:
        for delta in deltas or ():
            fragment = self._calls.setdefault(delta.index, _Fragment())
            fragment.id = fragment.id or delta.id
            function = delta.function
            if function is not None:
                # The name comes whole in the first delta; some compatible servers repeat it in later ones.
                if function.name and not fragment.name:
                    fragment.name = function.name
                if function.arguments:
                    fragment.arguments.append(function.arguments)

    def calls(self, fallback_id: Callable[[int], str], provider: str, model: str) -> tuple[ToolCall, ...]:
        """The finished calls in index order; arguments that do not parse are :class:`InvalidModelOutput`."""
        return tuple(
            ToolCall(
                id=fragment.id or fallback_id(position),
                name=fragment.name,
                arguments=tool_arguments("".join(fragment.arguments), fragment.name, provider, model),
            )
            for position, (_, fragment) in enumerate(sorted(self._calls.items()))
        )
