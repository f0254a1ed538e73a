"""Agent steps: the interface the workflow engine calls, and an interim simulated agent.

INTERIM: :class:`InterimSimulatedAgent` only stands in until the agents issue
lands (templates, model registry, provider SDKs, the real ``simulated``
provider), which replaces it behind the same :class:`AgentRunner` interface.
Its outputs are labelled ``simulated`` and say so wherever they appear.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentparty.tasks.errors import StepValidationError


@dataclass(frozen=True)
class AgentStepRequest:
    step_id: str
    agent: str
    prompt: str
    version: str | None = None
    capability: str | None = None
    model: str | None = None
    output_schema: dict[str, Any] | None = None
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentStepResponse:
    output: Any
    model: str
    input_tokens: int
    output_tokens: int
    simulated: bool

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class AgentRunner(Protocol):
    async def run(self, request: AgentStepRequest) -> AgentStepResponse: ...


def _digest(*parts: Any) -> int:
    text = json.dumps(parts, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def sample_for_schema(schema: dict[str, Any], seed: int, label: str = "value") -> Any:
    """A deterministic value that satisfies a (simple) JSON Schema: enough for a simulated answer."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][seed % len(schema["enum"])]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: sample_for_schema(sub, _digest(seed, name), name) for name, sub in properties.items()}
    if kind == "array":
        count = max(schema.get("minItems", 2), 1)
        return [sample_for_schema(schema.get("items", {}), _digest(seed, i), label) for i in range(count)]
    if kind == "integer":
        low, high = schema.get("minimum", 0), schema.get("maximum", 100)
        return low + seed % (high - low + 1)
    if kind == "number":
        low, high = schema.get("minimum", 0.0), schema.get("maximum", 1.0)
        return round(low + (seed % 1000) / 1000 * (high - low), 3)
    if kind == "boolean":
        return seed % 2 == 0
    if kind == "null":
        return None
    return f"[simulated] {label} #{seed % 10_000}"


class InterimSimulatedAgent:
    """Deterministic, schema-valid answers without any API key (interim; see module docstring)."""

    model = "simulated"

    async def run(self, request: AgentStepRequest) -> AgentStepResponse:
        seed = _digest(request.step_id, request.agent, request.prompt)
        if request.output_schema:
            output = sample_for_schema(request.output_schema, seed)
            from jsonschema import Draft202012Validator

            errors = sorted(Draft202012Validator(request.output_schema).iter_errors(output), key=str)
            if errors:
                raise StepValidationError(f"simulated output does not satisfy outputSchema: {errors[0].message}")
        else:
            output = f"[simulated] {request.agent} answering: {request.prompt[:80]}"
        input_tokens = max(1, len(request.prompt) // 4)
        output_tokens = max(1, len(json.dumps(output)) // 4)
        return AgentStepResponse(output, request.model or self.model, input_tokens, output_tokens, simulated=True)
