"""What every LLM provider adapter takes and returns, and how provider failures are classified.

Adapters are thin layers over the official SDKs (DESIGN.md §9). They never
retry (SDK ``max_retries=0``): a failure becomes one of the engine's errors
(``agentparty.models.step_errors``), and the step's Prefect retries, the circuit
breaker and the model registry's fallback chain decide what happens next.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from agentparty.models.messages import AgentMessage, ErrorMessage, Message, SystemMessage, UserMessage
from agentparty.models.step_errors import (
    AuthenticationError,
    ContentPolicyViolation,
    InvalidModelOutput,
    ModelUnavailable,
    ProviderRequestError,
    ProviderUnavailable,
    RateLimited,
    StepError,
    StepValidationError,
)
from agentparty.models.tools import ToolCall, ToolSpec

Role = Literal["user", "assistant"]
TextCallback = Callable[[str], None]
"""Receives each streamed text delta as it arrives."""


@dataclass(frozen=True)
class CompletionRequest:
    model: str
    """The provider's model id (the registry's model name)."""
    messages: tuple[Message, ...]
    """Seed 002's unified messages: system, user, agent (the model's earlier turns) and error."""
    output_schema: dict[str, Any] | None = None
    """When set, the answer is JSON matching this schema (``Completion.output`` holds it, validated)."""
    max_tokens: int = 1024
    temperature: float | None = None
    top_p: float | None = None
    stream: bool = False
    timeout: float = 60.0
    seed: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    """Correlation data (agent, step, run); the simulated provider seeds itself with it."""
    tools: tuple[ToolSpec, ...] = ()
    """Tools the model may ask for this turn (never given to a model without ``supportsFunctions``)."""
    logprobs: bool = False
    """Ask for token log-probabilities, where the provider gives them (``Completion.confidence``)."""
    context_tokens: int | None = None
    """The agent loop's estimate of the input's size: a model in the chain whose window cannot hold it and
    ``max_tokens`` more is passed over (a fallback with a smaller window is checked, not assumed to fit)."""


@dataclass(frozen=True)
class Completion:
    text: str
    output: Any
    """The validated structured output when the request had a schema, else ``text``."""
    input_tokens: int
    output_tokens: int
    model: str
    provider: str
    finish_reason: str | None = None
    simulated: bool = False
    streamed: bool = False
    """True when the answer arrived as a stream from the provider (not merely when streaming was asked for)."""
    tool_calls: tuple[ToolCall, ...] = ()
    """The tools the model asked for; when there are any, ``output`` is not a final answer (it is ``text``)."""
    confidence: float | None = None
    """The geometric mean of the answer's token probabilities, when the provider gave log-probabilities."""

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Provider(Protocol):
    """One LLM provider behind its official SDK (or the simulated one)."""

    name: str

    async def complete(self, request: CompletionRequest, on_text: TextCallback | None = None) -> Completion: ...

    async def aclose(self) -> None: ...


def chat_turns(messages: tuple[Message, ...]) -> tuple[str, list[tuple[Role, str]]]:
    """Split unified messages into a system prompt and alternating chat turns that start with the user.

    An error message (a tool or step failure shown to the model) becomes a user
    turn that says so, since no provider has a role for it. Consecutive turns of
    one role are merged, because strict servers refuse two in a row.
    """
    system: list[str] = []
    turns: list[tuple[Role, str]] = []
    for message in messages:
        role: Role
        if isinstance(message, SystemMessage):
            system.append(message.content)
            continue
        if isinstance(message, AgentMessage):
            role, text = "assistant", message.content
        elif isinstance(message, ErrorMessage):
            role, text = "user", f"[error {message.error.code}] {message.error.message}"
        elif isinstance(message, UserMessage) or message.type == "user":
            role, text = "user", message.content
        else:
            raise ProviderRequestError(f"cannot send a {message.type!r} message to a model")
        if turns and turns[-1][0] == role:
            turns[-1] = (role, f"{turns[-1][1]}\n\n{text}")
        else:
            turns.append((role, text))
    if not turns or turns[-1][0] != "user":
        raise ProviderRequestError("a completion needs a user message last (the turn the model answers)")
    if turns[0][0] != "user":
        raise ProviderRequestError("a conversation must start with a user message")
    return "\n\n".join(system), turns


def structured_output(text: str, schema: dict[str, Any] | None, provider: str, model: str) -> Any:
    """Parse and validate a structured answer; a bad one is retryable (another sample may be good)."""
    if schema is None:
        return text
    body = text.strip()
    if body.startswith("```"):  # some OpenAI-compatible servers fence their JSON
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        raise InvalidModelOutput(
            f"{provider}/{model} returned no valid JSON ({exc.msg} at {exc.pos}): {text[:200]!r}"
        ) from None

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise StepValidationError(f"outputSchema is not a valid JSON Schema: {exc.message}") from None
    error = next(iter(sorted(Draft202012Validator(schema).iter_errors(value), key=str)), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise InvalidModelOutput(f"{provider}/{model} output does not match outputSchema at {where}: {error.message}")
    return value


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


_CONTENT_POLICY_MARKERS = (
    "content_policy",
    "content_filter",
    "content policy",
    "safety system",
    "safety settings",
    "responsible ai",
)


def classify_status(
    provider: str, model: str, status: int, message: str, headers: Mapping[str, str] | None = None
) -> StepError:
    """The engine error for an HTTP status from a provider."""
    where = f"{provider}/{model}: HTTP {status}: {message}"
    if status == 429 and "insufficient_quota" in message:
        # OpenAI's "out of credits" is a 429 too, but waiting will not help: the next model may.
        return ModelUnavailable(f"{where} (quota exhausted)")
    if status == 429:
        retry_after = parse_retry_after(headers)
        hint = f" (retry after {retry_after:.1f}s)" if retry_after is not None else ""
        return RateLimited(f"{where}{hint}", retry_after)
    if status in (408, 409) or status >= 500:
        return ProviderUnavailable(where)
    if status in (401, 403):
        return AuthenticationError(where)
    if status == 404:
        return ModelUnavailable(where)
    if any(marker in message.lower() for marker in _CONTENT_POLICY_MARKERS):
        return ContentPolicyViolation(where)
    return ProviderRequestError(where)


def confidence_of(logprobs: Sequence[float]) -> float | None:
    """The geometric mean probability of an answer's tokens (None without log-probabilities)."""
    if not logprobs:
        return None
    return min(1.0, max(0.0, math.exp(sum(logprobs) / len(logprobs))))
