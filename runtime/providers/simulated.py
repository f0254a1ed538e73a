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
import hashlib
import json
import math
from collections import Counter
from typing import Any

from pydantic import BaseModel, Field

from agentparty.models.step_errors import ProviderUnavailable, RateLimited
from agentparty.runtime.providers.base import Completion, CompletionRequest, TextCallback, chat_turns, structured_output

SIMULATED_LABEL = "[simulated]"


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


def _digest(*parts: Any) -> int:
    text = json.dumps(parts, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def sample_for_schema(schema: dict[str, Any], seed: int, label: str = "value") -> Any:
    """A deterministic value that satisfies a JSON Schema of the common shapes."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][seed % len(schema["enum"])]
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            return sample_for_schema(schema[combinator][0], seed, label)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(part)
        return sample_for_schema(merged, seed, label)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: sample_for_schema(sub, _digest(seed, name), name) for name, sub in properties.items()}
    if kind == "array":
        count = max(schema.get("minItems", 2), 1)
        if "maxItems" in schema:
            count = min(count, schema["maxItems"])
        return [sample_for_schema(schema.get("items", {}), _digest(seed, i), label) for i in range(count)]
    if kind == "integer":
        low = math.ceil(schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1))
        high = math.floor(schema.get("maximum", schema.get("exclusiveMaximum", 101) - 1))
        return low + seed % max(high - low + 1, 1)
    if kind == "number":
        low, high = schema.get("minimum", 0.0), schema.get("maximum", 1.0)
        return round(low + (seed % 1000) / 1000 * (high - low), 3)
    if kind == "boolean":
        return seed % 2 == 0
    if kind == "null":
        return None
    text = f"{SIMULATED_LABEL} {label} #{seed % 10_000}"
    min_length, max_length = schema.get("minLength", 0), schema.get("maxLength")
    text = text.ljust(min_length, ".")
    return text[:max_length] if max_length is not None else text


class SimulatedProvider:
    """Answers every registered ``simulated`` model without network or key."""

    name = "simulated"

    def __init__(self, settings: SimulatedSettings | None = None) -> None:
        self.settings = settings or SimulatedSettings()
        self._calls: Counter[int] = Counter()

    def _tokens(self, text: str) -> int:
        return max(1, math.ceil(len(text) / self.settings.chars_per_token))

    async def complete(self, request: CompletionRequest, on_text: TextCallback | None = None) -> Completion:
        system, turns = chat_turns(request.messages)
        key = _digest(self.settings.seed, request.model, system, turns, request.output_schema, dict(request.metadata))
        self._calls[key] += 1
        call = _digest(key, self._calls[key])
        s = self.settings
        delay = s.latency_ms + (call % 1000) / 1000 * s.latency_jitter_ms
        if delay:
            await asyncio.sleep(delay / 1000)
        roll = (call >> 16) % 10_000 / 10_000
        if roll < s.rate_limit_rate:
            raise RateLimited(f"simulated/{request.model}: HTTP 429: simulated rate limit", s.retry_after_s)
        if roll < s.rate_limit_rate + s.failure_rate:
            raise ProviderUnavailable(f"simulated/{request.model}: HTTP 503: simulated outage")

        if request.output_schema is not None:
            text = json.dumps(sample_for_schema(request.output_schema, key))
            # Schemas beyond the common shapes (patterns, formats…) may defeat the sampler: say so, like a real model would.
            output: Any = structured_output(text, request.output_schema, self.name, request.model)
        else:
            last_user = next((content for role, content in reversed(turns) if role == "user"), "")
            text = f"{SIMULATED_LABEL} answer to: {last_user[:160]}"
            output = text
        if request.stream and on_text is not None:
            for start in range(0, len(text), 32):
                on_text(text[start : start + 32])
        prompt_text = system + "".join(content for _, content in turns)
        return Completion(
            text=text,
            output=output,
            input_tokens=self._tokens(prompt_text),
            output_tokens=min(self._tokens(text), request.max_tokens),
            model=request.model,
            provider=self.name,
            finish_reason="stop",
            simulated=True,
            streamed=request.stream,
        )

    async def aclose(self) -> None:
        return None
