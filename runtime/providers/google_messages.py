"""The Gemini format of a conversation with tools (google-genai types), and how function calls are read.

A model turn that asked for tools is a ``model`` content of ``function_call``
parts; the results are the next ``user`` content, one ``function_response`` part
per call (``{"output": …}``, or ``{"error": …}`` for a failed or refused call, as
the API documents), before any text. A call id is sent back where Gemini gave one.

Gemini 3 refuses a replayed ``function_call`` part without the ``thought_signature``
it came with (HTTP 400). The signature travels on the call (``ToolCall.signature``,
base64), so it goes back as received, also from a resumed run's checkpointed turns;
:class:`ThoughtSignatures` remembers this process's as well, for calls that lost it.
A call without one (a fallback from another provider) gets Google's documented
placeholder instead.

Structured output beside tools is the ``final_answer`` function with calling mode
``ANY`` (some function every turn: a real one, or the answer), since the JSON mode
(``response_json_schema``) would keep the model from calling tools.
"""

from __future__ import annotations

import base64
import json
import re
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from google.genai import types

from agentparty.models.messages import Message
from agentparty.models.tools import FINAL_ANSWER_TOOL, ToolCall, ToolSpec

from .conversation import (
    FINAL_ANSWER_DESCRIPTION,
    AnswerTool,
    Turn,
    answer_from_tool_input,
    final_answer_schema,
    object_arguments,
    synthetic_call_id,
)

SKIP_SIGNATURE = base64.urlsafe_b64decode("skip_thought_signature_validator")
"""Google's placeholder signature: the SDK base64-encodes bytes, and these encode to the documented string."""
_SYNTHETIC_ID = re.compile(r"^call_\d+_\d+$")
"""Ids made by :func:`synthetic_call_id` for a call Gemini left without one: not sent back to Gemini."""
_KEPT_SIGNATURES = 1024


class ThoughtSignatures:
    """The thought signatures of recent function calls, by call (bounded: the oldest are forgotten first)."""

    def __init__(self, size: int = _KEPT_SIGNATURES) -> None:
        self._size = size
        self._signatures: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()

    @staticmethod
    def _key(call: ToolCall) -> tuple[str, str, str]:
        return call.id, call.name, json.dumps(call.arguments, sort_keys=True, default=str)

    def remember(self, call: ToolCall, signature: bytes | None) -> None:
        if signature:
            self._signatures[self._key(call)] = signature
            self._signatures.move_to_end(self._key(call))
            while len(self._signatures) > self._size:
                self._signatures.popitem(last=False)

    def get(self, call: ToolCall) -> bytes | None:
        return self._signatures.get(self._key(call))


def google_contents(turns: Sequence[Turn], signatures: ThoughtSignatures) -> list[types.Content]:
    """The ``contents`` of a request, one per turn."""
    return [
        types.Content(role="model" if turn.role == "assistant" else "user", parts=_parts(turn, signatures))
        for turn in turns
    ]


def _parts(turn: Turn, signatures: ThoughtSignatures) -> list[types.Part]:
    parts = [
        types.Part(
            function_response=types.FunctionResponse(
                id=_sent_id(result.call_id),
                name=result.name,
                response={"error": result.content} if result.is_error else {"output": result.content},
            )
        )
        for result in turn.tool_results
    ]
    if turn.text or turn.plain:
        parts.append(types.Part(text=turn.text))
    for index, call in enumerate(turn.tool_calls):
        # Of parallel calls only the first carries a signature; an unknown first one gets the placeholder.
        carried = base64.b64decode(call.signature) if call.signature else None
        signature = carried or signatures.get(call) or (SKIP_SIGNATURE if index == 0 else None)
        function_call = types.FunctionCall(id=_sent_id(call.id), name=call.name, args=call.arguments)
        parts.append(types.Part(function_call=function_call, thought_signature=signature))
    return parts


def _sent_id(call_id: str) -> str | None:
    return None if _SYNTHETIC_ID.match(call_id) else call_id


def configure_tools(
    config: types.GenerateContentConfig, tools: Sequence[ToolSpec], output_schema: dict[str, Any] | None
) -> AnswerTool | None:
    """Offer ``tools`` in ``config`` (never called by the SDK itself), and the answer tool beside them if a schema
    is set; without tools, a schema is the JSON mode as before. Returns the answer tool, if one is offered."""
    if not tools:
        if output_schema is not None:
            config.response_mime_type = "application/json"
            config.response_json_schema = output_schema
        return None
    declarations = [
        types.FunctionDeclaration(name=tool.name, description=tool.description, parameters_json_schema=tool.parameters)
        for tool in tools
    ]
    # We run the tools ourselves: the SDK's automatic function calling stays off.
    config.automatic_function_calling = types.AutomaticFunctionCallingConfig(disable=True)
    answer: AnswerTool | None = None
    if output_schema is not None:
        schema, wrapped = final_answer_schema(output_schema)
        answer = AnswerTool(FINAL_ANSWER_TOOL, wrapped)
        declarations.append(
            types.FunctionDeclaration(
                name=FINAL_ANSWER_TOOL, description=FINAL_ANSWER_DESCRIPTION, parameters_json_schema=schema
            )
        )
        config.tool_config = types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(mode=types.FunctionCallingConfigMode.ANY)
        )
    config.tools = [types.Tool(function_declarations=declarations)]
    return answer


def read_calls(
    parts: Sequence[types.Part],
    answer_tool: AnswerTool | None,
    messages: Sequence[Message],
    signatures: ThoughtSignatures,
    where: tuple[str, str],
) -> tuple[str | None, tuple[ToolCall, ...]]:
    """The answer given through the answer tool (as JSON text, or None) and the real calls among ``parts``.

    ``parts`` are all the function-call parts of an answer (a stream's, gathered). A
    call to the answer tool beside real calls is dropped: the real ones run first.
    """
    provider, model = where
    calls: list[ToolCall] = []
    answer: str | None = None
    for index, part in enumerate(part for part in parts if part.function_call is not None):
        function_call = part.function_call
        assert function_call is not None  # filtered above; for the type checker
        name = function_call.name or ""
        arguments = object_arguments(function_call.args, name, provider, model)
        if answer_tool is not None and name == answer_tool.name:
            answer = answer_from_tool_input(arguments, answer_tool.wrapped)
            continue
        signature = base64.b64encode(part.thought_signature).decode() if part.thought_signature else None
        call = ToolCall(
            id=function_call.id or synthetic_call_id(messages, index),
            name=name,
            arguments=arguments,
            signature=signature,
        )
        signatures.remember(call, part.thought_signature)
        calls.append(call)
    return (None, tuple(calls)) if calls else (answer, ())
