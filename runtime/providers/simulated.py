"""The keyless ``simulated`` provider: deterministic, schema-valid answers (DESIGN.md §9).

It lets the whole engine run with no API key, in the spirit of pydantic-ai's
TestModel. Everything it returns is marked ``simulated`` (the completion, the
step result, the run's table), and its text says so. For a given seed the same
request gets the same answer; the n-th call of the same request gets the same
outcome on every run, so configured failures are reproducible and a retry can
succeed.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from agentparty.models.step_errors import ProviderUnavailable, RateLimited
from agentparty.models.tools import ToolCall
from agentparty.runtime.providers.base import Completion, CompletionRequest, TextCallback, structured_output
from agentparty.runtime.providers.conversation import Turn, conversation
from agentparty.runtime.providers.simulated_tools import plan_tool_calls
from agentparty.runtime.providers.simulated_values import SIMULATED_LABEL, digest, sample_for_schema

__all__ = ["SIMULATED_LABEL", "SimulatedProvider", "SimulatedSettings", "sample_for_schema"]


class SimulatedSettings(BaseModel):
    """How the simulated provider behaves (``AGENTPARTY_SIMULATED__*`` environment variables)."""

    seed: int = 0
    latency_ms: float = Field(default=0.0, ge=0.0)
    """Base latency of every call."""
    latency_jitter_ms: float = Field(default=0.0, ge=0.0)
    """Up to this much extra latency, deterministic per call."""
    failure_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of calls that fail with a 503 (retryable)."""
    rate_limit_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of calls that fail with a 429 carrying ``retry_after_s``."""
    retry_after_s: float = Field(default=1.0, ge=0.0)
    chars_per_token: float = Field(default=4.0, gt=0.0)
    """Token usage is the text length divided by this (the usual rule of thumb for English)."""


class SimulatedProvider:
    """Answers every registered ``simulated`` model without network or key."""

    name = "simulated"

    def __init__(self, settings: SimulatedSettings | None = None) -> None:
        self.settings = settings or SimulatedSettings()
        self._calls: Counter[int] = Counter()

    def _tokens(self, text: str) -> int:
        return max(1, math.ceil(len(text) / self.settings.chars_per_token))

    async def complete(self, request: CompletionRequest, on_text: TextCallback | None = None) -> Completion:
        system, turns = conversation(request.messages)
        key = digest(
            self.settings.seed, request.model, system, _turns_key(turns), request.output_schema, dict(request.metadata)
        )
        if request.tools:
            key = digest(key, [tool.name for tool in request.tools])
        await self._weather(request, key)

        tool_calls: tuple[ToolCall, ...] = ()
        if request.tools:
            loop_seed = digest(
                self.settings.seed,
                request.model,
                sorted(tool.name for tool in request.tools),
                dict(request.metadata),
                turns[0].text,
            )
            tool_calls = plan_tool_calls(request.tools, turns, request.messages, loop_seed)
        if tool_calls:
            text = f"{SIMULATED_LABEL} calling {', '.join(call.name for call in tool_calls)}"
            output: Any = text
        elif request.output_schema is not None:
            text = json.dumps(sample_for_schema(request.output_schema, key))
            # Schemas beyond the common shapes (patterns, formats…) may defeat the sampler: say so, like a real model would.
            output = structured_output(text, request.output_schema, self.name, request.model)
        else:
            text = _text_answer(turns)
            output = text
        if request.stream and on_text is not None:
            for start in range(0, len(text), 32):
                on_text(text[start : start + 32])
        calls_text = json.dumps([call.model_dump() for call in tool_calls]) if tool_calls else ""
        return Completion(
            text=text,
            output=output,
            input_tokens=self._tokens(system + "".join(_turn_text(turn) for turn in turns)),
            output_tokens=min(self._tokens(text + calls_text), request.max_tokens),
            model=request.model,
            provider=self.name,
            finish_reason="tool_calls" if tool_calls else "stop",
            simulated=True,
            streamed=request.stream,
            tool_calls=tool_calls,
        )

    async def _weather(self, request: CompletionRequest, key: int) -> None:
        """The configured latency and failures of this call: the n-th call of the same request fares the same on
        every run."""
        self._calls[key] += 1
        call = digest(key, self._calls[key])
        s = self.settings
        delay = s.latency_ms + (call % 1000) / 1000 * s.latency_jitter_ms
        if delay:
            await asyncio.sleep(delay / 1000)
        roll = (call >> 16) % 10_000 / 10_000
        if roll < s.rate_limit_rate:
            raise RateLimited(f"simulated/{request.model}: HTTP 429: simulated rate limit", s.retry_after_s)
        if roll < s.rate_limit_rate + s.failure_rate:
            raise ProviderUnavailable(f"simulated/{request.model}: HTTP 503: simulated outage")

    async def aclose(self) -> None:
        return None


def _turns_key(turns: Sequence[Turn]) -> list[list[Any]]:
    """What the turns say, for the request's hash (text-only turns hash as they did before tools existed)."""
    key: list[list[Any]] = []
    for turn in turns:
        entry: list[Any] = [turn.role, turn.text]
        if not turn.plain:
            entry.append([call.model_dump() for call in turn.tool_calls])
            entry.append([(r.call_id, r.name, r.content, r.is_error) for r in turn.tool_results])
        key.append(entry)
    return key


def _turn_text(turn: Turn) -> str:
    """A turn as the prompt's text, for token counts: its text, its calls' arguments, its results."""
    calls = "".join(f"{call.name}{json.dumps(call.arguments)}" for call in turn.tool_calls)
    return turn.text + calls + "".join(result.content for result in turn.tool_results)


def _text_answer(turns: Sequence[Turn]) -> str:
    """The labelled text answer: what it answers, and which tools' results it read."""
    last_user = next((turn.text for turn in reversed(turns) if turn.role == "user" and turn.text), "")
    used = [result.name for turn in turns for result in turn.tool_results if not result.is_error]
    text = f"{SIMULATED_LABEL} answer to: {last_user[:160]}"
    if used:
        text += (
            f" (after reading {len(used)} tool result{'s' if len(used) > 1 else ''}: {', '.join(dict.fromkeys(used))})"
        )
    return text
