"""The keyless simulated provider: deterministic, schema-valid, labelled, with configurable latency and failures."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from agentparty.models.messages import SystemMessage, UserMessage
from agentparty.models.step_errors import ProviderUnavailable, RateLimited
from agentparty.runtime.providers.base import CompletionRequest
from agentparty.runtime.providers.simulated import SIMULATED_LABEL, SimulatedProvider, SimulatedSettings

SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "object",
        "properties": {"title": {"type": "string"}, "score": {"type": "number", "minimum": 0, "maximum": 1}},
        "required": ["title", "score"],
    },
    {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 3},
            "level": {"enum": ["low", "high"]},
        },
    },
    {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 5, "maximum": 9},
            "ok": {"type": "boolean"},
            "note": {"type": ["string", "null"], "maxLength": 12},
        },
    },
    {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer"}}}},
]


def request(
    text: str = "Summarise graph neural networks", schema: dict[str, Any] | None = None, **kw: Any
) -> CompletionRequest:
    messages = (SystemMessage(content="You are a writer."), UserMessage(content=text, user_id="u", session_id="s"))
    return CompletionRequest(model="simulated", messages=messages, output_schema=schema, **kw)


def complete(provider: SimulatedProvider, req: CompletionRequest) -> Any:
    return asyncio.run(provider.complete(req))


@pytest.mark.parametrize("schema", SCHEMAS)
def test_structured_outputs_satisfy_their_schema(schema: dict[str, Any]) -> None:
    completion = complete(SimulatedProvider(), request(schema=schema))
    assert not list(Draft202012Validator(schema).iter_errors(completion.output))
    assert completion.simulated and completion.provider == "simulated"


def test_same_seed_same_answer_other_seed_other_answer() -> None:
    schema = SCHEMAS[0]
    first = complete(SimulatedProvider(SimulatedSettings(seed=1)), request(schema=schema))
    again = complete(SimulatedProvider(SimulatedSettings(seed=1)), request(schema=schema))
    other = complete(SimulatedProvider(SimulatedSettings(seed=2)), request(schema=schema))
    assert first.output == again.output
    assert first.output != other.output


def test_text_answers_are_labelled_and_count_tokens() -> None:
    completion = complete(SimulatedProvider(), request("What is a GNN?"))
    assert completion.text.startswith(SIMULATED_LABEL) and "What is a GNN?" in completion.text
    prompt_chars = len("You are a writer.") + len("What is a GNN?")
    assert completion.input_tokens == -(-prompt_chars // 4)
    assert completion.output_tokens == -(-len(completion.text) // 4)


def test_streaming_delivers_the_text_in_pieces() -> None:
    pieces: list[str] = []
    completion = asyncio.run(SimulatedProvider().complete(request("stream me " * 20, stream=True), pieces.append))
    assert len(pieces) > 1 and "".join(pieces) == completion.text and completion.streamed


def test_latency_is_applied() -> None:
    provider = SimulatedProvider(SimulatedSettings(latency_ms=150))
    started = time.perf_counter()
    complete(provider, request())
    assert time.perf_counter() - started >= 0.15


def test_configured_failures_and_rate_limits() -> None:
    with pytest.raises(ProviderUnavailable):
        complete(SimulatedProvider(SimulatedSettings(failure_rate=1.0)), request())
    with pytest.raises(RateLimited) as caught:
        complete(SimulatedProvider(SimulatedSettings(rate_limit_rate=1.0, retry_after_s=2.5)), request())
    assert caught.value.retry_after == 2.5


def test_failure_rate_is_about_right_and_reproducible() -> None:
    def outcomes(seed: int) -> list[bool]:
        provider = SimulatedProvider(SimulatedSettings(seed=seed, failure_rate=0.3))
        results = []
        for i in range(400):
            try:
                complete(provider, request(f"question {i}"))
                results.append(True)
            except ProviderUnavailable:
                results.append(False)
        return results

    first = outcomes(3)
    assert 0.2 < first.count(False) / len(first) < 0.4
    assert outcomes(3) == first


def test_a_retry_of_the_same_request_can_succeed() -> None:
    provider = SimulatedProvider(SimulatedSettings(seed=0, failure_rate=0.5))
    outcomes = []
    for _ in range(20):
        try:
            complete(provider, request("the same question"))
            outcomes.append(True)
        except ProviderUnavailable:
            outcomes.append(False)
    assert True in outcomes and False in outcomes
