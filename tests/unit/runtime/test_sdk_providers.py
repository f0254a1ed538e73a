"""The OpenAI, Anthropic and Google adapters, through their real SDKs, against a local wire server.

Every error case also checks that exactly one HTTP request was made: the SDKs
must not retry (the engine's retries, breaker and fallback chain decide).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.llm_wire import Recorded, WireServer, free_port

from agentparty.models.messages import AgentMessage, SystemMessage, UserMessage
from agentparty.models.step_errors import (
    AuthenticationError,
    ContentPolicyViolation,
    InvalidModelOutput,
    ModelUnavailable,
    ProviderRequestError,
    ProviderUnavailable,
    RateLimited,
    StepError,
)
from agentparty.runtime.providers.anthropic_provider import AnthropicProvider
from agentparty.runtime.providers.base import Completion, CompletionRequest, Provider
from agentparty.runtime.providers.google_provider import GoogleProvider
from agentparty.runtime.providers.openai_provider import OpenAIProvider

# google-genai subclasses aiohttp's ClientSession for every client it builds, which aiohttp frowns on.
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

SYSTEM = "You are terse."
MESSAGES = (
    SystemMessage(content=SYSTEM),
    UserMessage(content="first question", user_id="u1", session_id="s1"),
    AgentMessage(content="first answer", agent_id="agent-1", model="m"),
    UserMessage(content="hello wire world", user_id="u1", session_id="s1"),
)
ANSWER = "echo: hello wire world"
INPUT_TOKENS = 3 + 2 + 2 + 3  # words in the system prompt and every turn
OUTPUT_TOKENS = 4

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 3},
        "count": {"type": "integer", "minimum": 2},
        "score": {"type": "number"},
        "ok": {"type": "boolean"},
        "kind": {"enum": ["alpha", "beta"]},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "nested": {"type": "object", "properties": {"flag": {"type": "boolean"}}, "required": ["flag"]},
    },
    "required": ["title", "count", "score", "ok", "kind", "tags", "nested"],
    "additionalProperties": False,
}
SCHEMA_SAMPLE = {
    "title": "sample",
    "count": 2,
    "score": 1.5,
    "ok": True,
    "kind": "alpha",
    "tags": ["sample", "sample"],
    "nested": {"flag": True},
}


@dataclass(frozen=True)
class Case:
    """One provider: how to build it, where it points, and where its wire format puts things."""

    name: str
    model: str
    make: Callable[[str | None, str | None, float], Provider]
    api_path: str
    """Part of the server path every call must reach."""
    blocked_finish: str
    """The dialect's finish reason for a filtered answer."""

    def base_url(self, server_url: str) -> str:
        return server_url + "/v1" if self.name == "openai" else server_url

    def system_prompt(self, body: dict[str, Any]) -> Any:
        if self.name == "openai":
            first = body["messages"][0]
            return first["content"] if first["role"] == "system" else None
        if self.name == "anthropic":
            return body.get("system")
        return "".join(p["text"] for p in body["systemInstruction"]["parts"])

    def roles(self, body: dict[str, Any]) -> list[str]:
        turns = body["contents"] if self.name == "google" else body["messages"]
        return [t["role"] for t in turns]

    def streamed(self, recorded: Recorded) -> bool:
        if self.name == "google":
            return recorded.path.endswith(":streamGenerateContent") and recorded.query.get("alt") == "sse"
        return recorded.json.get("stream") is True


CASES = [
    Case(
        "openai",
        "gpt-wire-1",
        lambda key, url, t: OpenAIProvider(key, base_url=url, timeout=t),
        "/v1/chat/completions",
        "content_filter",
    ),
    Case(
        "anthropic",
        "claude-wire-1",
        lambda key, url, t: AnthropicProvider(key, base_url=url, timeout=t),
        "/v1/messages",
        "refusal",
    ),
    Case(
        "google",
        "gemini-wire-1",
        lambda key, url, t: GoogleProvider(key, base_url=url, timeout=t),
        "/models/gemini-wire-1:",
        "SAFETY",
    ),
]
BY_NAME = {case.name: case for case in CASES}

_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_PROFILE",
    "ANTHROPIC_CUSTOM_HEADERS",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_USE_ENTERPRISE",
    "GOOGLE_GENAI_API_VERSION",
)


@pytest.fixture(autouse=True)
def _no_provider_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keys, URLs and profiles from the developer's environment must not leak into these tests."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path / "anthropic-config"))


@pytest.fixture(scope="module")
def server() -> Iterator[WireServer]:
    with WireServer() as running:
        yield running


@pytest.fixture
def wire(server: WireServer) -> Iterator[WireServer]:
    server.reset()
    yield server
    server.reset()


@pytest.fixture(params=CASES, ids=lambda case: case.name)
def case(request: pytest.FixtureRequest) -> Case:
    return request.param


class Loop:
    """One event loop for the module, with one long-lived provider per case.

    The engine keeps its providers for many calls, and building an SDK client
    costs 50-150 ms (TLS contexts), so the plain calls share one provider per
    case; tests that need other settings build their own and close it.
    """

    def __init__(self) -> None:
        self.runner = asyncio.Runner()
        self.shared: dict[tuple[str, str], Provider] = {}

    def provider(self, case: Case, server_url: str) -> Provider:
        key = (case.name, server_url)
        if key not in self.shared:
            self.shared[key] = case.make("test-key", case.base_url(server_url), 5.0)
        return self.shared[key]

    def close(self) -> None:
        async def close_all() -> None:
            for provider in self.shared.values():
                await provider.aclose()

        try:
            self.runner.run(close_all())
        finally:
            self.runner.close()


@pytest.fixture(scope="module")
def loop() -> Iterator[Loop]:
    running = Loop()
    yield running
    running.close()


def request_for(case: Case, **overrides: Any) -> CompletionRequest:
    return CompletionRequest(model=case.model, messages=MESSAGES, **overrides)


_SHARED: dict[str, Any] = {"api_key": "test-key", "base_url": None, "timeout": 5.0}


def call(
    case: Case,
    wire: WireServer,
    loop: Loop,
    request: CompletionRequest,
    *,
    on_text: Callable[[str], None] | None = None,
    **settings: Any,
) -> Completion:
    """One completion: on the case's shared provider, or on one built from ``settings``
    (``api_key``, ``base_url``, ``timeout``) and closed afterwards."""
    if all(settings.get(name, default) == default for name, default in _SHARED.items()):
        return loop.runner.run(loop.provider(case, wire.url).complete(request, on_text))
    merged = {**_SHARED, **settings}

    async def go() -> Completion:
        provider = case.make(merged["api_key"], merged["base_url"] or case.base_url(wire.url), merged["timeout"])
        try:
            return await provider.complete(request, on_text)
        finally:
            await provider.aclose()

    return loop.runner.run(go())


def failure(case: Case, wire: WireServer, loop: Loop, request: CompletionRequest, **kwargs: Any) -> StepError:
    with pytest.raises(StepError) as caught:
        call(case, wire, loop, request, **kwargs)
    return caught.value


def only_request(wire: WireServer, case: Case) -> Recorded:
    requests = wire.requests
    assert len(requests) == 1, f"expected exactly one HTTP request, got {len(requests)}: {[r.path for r in requests]}"
    assert case.api_path in requests[0].path
    return requests[0]


# ---------------------------------------------------------------------------
# Success paths


def test_plain_completion(case: Case, wire: WireServer, loop: Loop) -> None:
    wire.script(model=f"{case.model}-2025")
    completion = call(case, wire, loop, request_for(case, max_tokens=321, temperature=0.25, top_p=0.5, seed=7))

    assert completion.text == ANSWER
    assert completion.output == ANSWER
    assert (completion.input_tokens, completion.output_tokens, completion.tokens) == (
        INPUT_TOKENS,
        OUTPUT_TOKENS,
        INPUT_TOKENS + OUTPUT_TOKENS,
    )
    assert completion.model == f"{case.model}-2025", "the model the response reports"
    assert completion.provider == case.name
    assert completion.finish_reason == {"openai": "stop", "anthropic": "end_turn", "google": "STOP"}[case.name]
    assert not completion.simulated and not completion.streamed

    body = only_request(wire, case).json
    assert case.system_prompt(body) == SYSTEM
    if case.name == "openai":
        assert case.roles(body) == ["system", "user", "assistant", "user"]
        assert (body["max_tokens"], body["temperature"], body["top_p"], body["seed"]) == (321, 0.25, 0.5, 7)
    elif case.name == "anthropic":
        assert case.roles(body) == ["user", "assistant", "user"]
        assert body["max_tokens"] == 321 and body["temperature"] == 0.25
        assert "top_p" not in body, "newer Claude models reject temperature and top_p together"
    else:
        assert case.roles(body) == ["user", "model", "user"]
        assert body["generationConfig"] == {"maxOutputTokens": 321, "temperature": 0.25, "topP": 0.5, "seed": 7}


def test_reported_model_defaults_to_requested(case: Case, wire: WireServer, loop: Loop) -> None:
    assert call(case, wire, loop, request_for(case)).model == case.model


def test_structured_output(case: Case, wire: WireServer, loop: Loop) -> None:
    completion = call(case, wire, loop, request_for(case, output_schema=SCHEMA))

    assert completion.output == SCHEMA_SAMPLE
    assert completion.input_tokens == INPUT_TOKENS
    assert completion.output_tokens == len(completion.text.split()) > 0
    body = only_request(wire, case).json
    if case.name == "openai":
        assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": SCHEMA}}
    elif case.name == "anthropic":
        assert body["tools"][0]["name"] == "respond" and body["tools"][0]["input_schema"] == SCHEMA
        assert body["tool_choice"] == {"type": "tool", "name": "respond"}
    else:
        assert body["generationConfig"]["responseMimeType"] == "application/json"
        assert body["generationConfig"]["responseJsonSchema"] == SCHEMA


def test_invalid_json_is_invalid_model_output(case: Case, wire: WireServer, loop: Loop) -> None:
    # For Anthropic: the model answers in text instead of calling the forced tool.
    wire.script(text="this is not json")
    error = failure(case, wire, loop, request_for(case, output_schema=SCHEMA))
    assert type(error) is InvalidModelOutput
    assert "no valid JSON" in str(error)
    only_request(wire, case)


def test_output_not_matching_schema_is_invalid_model_output(case: Case, wire: WireServer, loop: Loop) -> None:
    wire.script(output={"title": "ok", "count": "three"})
    error = failure(case, wire, loop, request_for(case, output_schema=SCHEMA))
    assert type(error) is InvalidModelOutput
    assert "does not match outputSchema" in str(error)
    only_request(wire, case)


def test_streaming(case: Case, wire: WireServer, loop: Loop) -> None:
    deltas: list[str] = []
    completion = call(case, wire, loop, request_for(case, stream=True), on_text=deltas.append)

    assert len(deltas) > 1
    assert "".join(deltas) == completion.text == ANSWER
    assert (completion.input_tokens, completion.output_tokens) == (INPUT_TOKENS, OUTPUT_TOKENS)
    assert completion.streamed
    assert completion.finish_reason == {"openai": "stop", "anthropic": "end_turn", "google": "STOP"}[case.name]
    recorded = only_request(wire, case)
    assert case.streamed(recorded)
    assert case.system_prompt(recorded.json) == SYSTEM
    if case.name == "openai":
        assert recorded.json["stream_options"] == {"include_usage": True}


def test_streaming_structured_output(case: Case, wire: WireServer, loop: Loop) -> None:
    deltas: list[str] = []
    completion = call(case, wire, loop, request_for(case, stream=True, output_schema=SCHEMA), on_text=deltas.append)

    assert completion.output == SCHEMA_SAMPLE
    recorded = only_request(wire, case)
    if case.name == "anthropic":
        # A forced tool's input is not text: Anthropic makes a plain call instead.
        assert not case.streamed(recorded) and not completion.streamed and deltas == []
    else:
        assert case.streamed(recorded) and completion.streamed
        assert "".join(deltas) == completion.text


def test_streaming_without_callback(case: Case, wire: WireServer, loop: Loop) -> None:
    completion = call(case, wire, loop, request_for(case, stream=True))
    assert completion.text == ANSWER and completion.output_tokens == OUTPUT_TOKENS


def test_openai_compatible_server_without_key(wire: WireServer, loop: Loop) -> None:
    """Ollama, vLLM and friends: base_url and no key; OpenAI's newer max_completion_tokens is not sent."""
    case = BY_NAME["openai"]
    completion = call(case, wire, loop, request_for(case, seed=3), api_key=None)

    assert completion.text == ANSWER and completion.provider == "openai"
    recorded = only_request(wire, case)
    assert recorded.headers["authorization"] == "Bearer not-needed"
    assert recorded.json["max_tokens"] == 1024 and "max_completion_tokens" not in recorded.json
    assert recorded.json["seed"] == 3


def test_openai_itself_gets_max_completion_tokens() -> None:
    assert OpenAIProvider("k")._max_tokens_field == "max_completion_tokens"
    assert OpenAIProvider("k", base_url="https://api.openai.com/v1")._max_tokens_field == "max_completion_tokens"
    assert OpenAIProvider(None, base_url="http://localhost:11434/v1")._max_tokens_field == "max_tokens"


def test_api_key_is_sent(case: Case, wire: WireServer, loop: Loop) -> None:
    call(case, wire, loop, request_for(case), api_key="sk-wire-secret")
    headers = only_request(wire, case).headers
    sent = headers.get("authorization", "") + headers.get("x-api-key", "") + headers.get("x-goog-api-key", "")
    assert "sk-wire-secret" in sent


ENV_KEYS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "google": "GOOGLE_API_KEY"}


def test_custom_server_never_gets_the_environment_key(
    case: Case, wire: WireServer, loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key meant for the provider itself is not sent to a base_url (a local or third-party server)."""
    monkeypatch.setenv(ENV_KEYS[case.name], "sk-real-provider-key")
    completion = call(case, wire, loop, request_for(case), api_key=None)

    assert completion.text == ANSWER
    headers = only_request(wire, case).headers
    assert "sk-real-provider-key" not in " ".join(headers.values())
    assert "not-needed" in " ".join(headers.values())


def test_anthropic_sends_top_p_when_it_is_the_only_sampling_setting(wire: WireServer, loop: Loop) -> None:
    case = BY_NAME["anthropic"]
    call(case, wire, loop, request_for(case, top_p=0.9))
    body = only_request(wire, case).json
    assert body["top_p"] == 0.9 and "temperature" not in body


def test_anthropic_wraps_a_non_object_schema(wire: WireServer, loop: Loop) -> None:
    case = BY_NAME["anthropic"]
    schema = {"type": "array", "items": {"type": "string"}}
    completion = call(case, wire, loop, request_for(case, output_schema=schema))

    assert completion.output == ["sample"]
    tool = only_request(wire, case).json["tools"][0]
    assert tool["input_schema"] == {"type": "object", "properties": {"output": schema}, "required": ["output"]}


# ---------------------------------------------------------------------------
# Failures: each one HTTP request, each the right engine error

STATUS_CASES = [
    pytest.param(429, {"Retry-After": "7"}, "Too many requests, slow down", RateLimited, id="429"),
    pytest.param(500, {}, "internal failure", ProviderUnavailable, id="500"),
    pytest.param(503, {}, "temporarily overloaded", ProviderUnavailable, id="503"),
    pytest.param(401, {}, "invalid x-api-key", AuthenticationError, id="401"),
    pytest.param(403, {}, "this key may not use this model", AuthenticationError, id="403"),
    pytest.param(400, {}, "max_tokens is too large for this model", ProviderRequestError, id="400"),
    pytest.param(
        400,
        {},
        "Your request was rejected as a result of our safety system",
        ContentPolicyViolation,
        id="400-content-policy",
    ),
    pytest.param(404, {}, "model not found", ModelUnavailable, id="404"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(("status", "headers", "message", "expected"), STATUS_CASES)
def test_http_status_maps_to_engine_error(
    case: Case,
    wire: WireServer,
    loop: Loop,
    stream: bool,
    status: int,
    headers: dict[str, str],
    message: str,
    expected: type[StepError],
) -> None:
    wire.script(status=status, headers=headers, error=message)
    error = failure(case, wire, loop, request_for(case, stream=stream))

    assert type(error) is expected, repr(error)
    assert f"HTTP {status}" in str(error) and message in str(error)
    if expected is RateLimited:
        assert isinstance(error, RateLimited) and error.retry_after == 7.0
    only_request(wire, case)


def test_openai_content_policy_error_code(wire: WireServer, loop: Loop) -> None:
    """OpenAI names a content-policy refusal in its error code even when the message does not say so."""
    case = BY_NAME["openai"]
    wire.script(status=400, error="Your prompt was flagged", error_type="content_policy_violation")
    assert type(failure(case, wire, loop, request_for(case))) is ContentPolicyViolation
    only_request(wire, case)


@pytest.mark.parametrize(("status", "expected"), [(503, ProviderUnavailable), (429, RateLimited)], ids=["503", "429"])
def test_error_inside_a_stream(
    case: Case, wire: WireServer, loop: Loop, status: int, expected: type[StepError]
) -> None:
    """An error event after the stream started (HTTP 200): classified by the error it carries."""
    wire.script(stream_error=status, error="stream interrupted")
    deltas: list[str] = []
    error = failure(case, wire, loop, request_for(case, stream=True), on_text=deltas.append)

    assert type(error) is expected, repr(error)
    assert deltas == ["echo: "]
    only_request(wire, case)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_content_filter_finish_reason(case: Case, wire: WireServer, loop: Loop, stream: bool) -> None:
    wire.script(finish_reason=case.blocked_finish)
    error = failure(case, wire, loop, request_for(case, stream=stream))
    assert type(error) is ContentPolicyViolation, repr(error)
    only_request(wire, case)


def test_openai_refusal(wire: WireServer, loop: Loop) -> None:
    case = BY_NAME["openai"]
    refusal = {
        "id": "chatcmpl-refused",
        "object": "chat.completion",
        "created": 0,
        "model": case.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "refusal": "I can't help with that."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    wire.script(body=refusal)
    error = failure(case, wire, loop, request_for(case, output_schema=SCHEMA))
    assert type(error) is ContentPolicyViolation and "can't help" in str(error)


def test_google_blocked_prompt(wire: WireServer, loop: Loop) -> None:
    case = BY_NAME["google"]
    wire.script(
        body={
            "promptFeedback": {"blockReason": "SAFETY"},
            "usageMetadata": {"promptTokenCount": 10, "totalTokenCount": 10},
        }
    )
    error = failure(case, wire, loop, request_for(case))
    assert type(error) is ContentPolicyViolation and "SAFETY" in str(error)
    only_request(wire, case)


def test_google_retry_info_is_the_retry_after(wire: WireServer, loop: Loop) -> None:
    """Gemini says when to retry in a RetryInfo error detail rather than a header."""
    case = BY_NAME["google"]
    retry_info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}
    wire.script(
        status=429,
        body={
            "error": {
                "code": 429,
                "message": "Resource exhausted",
                "status": "RESOURCE_EXHAUSTED",
                "details": [retry_info],
            }
        },
    )
    error = failure(case, wire, loop, request_for(case))
    assert isinstance(error, RateLimited) and error.retry_after == 12.0
    only_request(wire, case)


def test_malformed_response_body(case: Case, wire: WireServer, loop: Loop) -> None:
    wire.script(raw="<html>bad gateway</html>", status=502)
    error = failure(case, wire, loop, request_for(case))
    assert type(error) is ProviderUnavailable, repr(error)
    only_request(wire, case)


def test_connection_refused(case: Case, wire: WireServer, loop: Loop) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    base_url = closed + "/v1" if case.name == "openai" else closed
    started = time.monotonic()
    error = failure(case, wire, loop, request_for(case), base_url=base_url)
    assert type(error) is ProviderUnavailable, repr(error)
    assert time.monotonic() - started < 1.0, "no SDK retry (Google's aiohttp transport would sleep 1-10 s first)"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_server_slower_than_timeout(case: Case, wire: WireServer, loop: Loop, stream: bool) -> None:
    wire.script(delay=1.0)
    started = time.monotonic()
    error = failure(case, wire, loop, request_for(case, stream=stream), timeout=0.25)
    assert type(error) is ProviderUnavailable, repr(error)
    assert time.monotonic() - started < 0.9
    only_request(wire, case)


def test_request_timeout_below_provider_timeout_wins(case: Case, wire: WireServer, loop: Loop) -> None:
    wire.script(delay=1.0)
    error = failure(case, wire, loop, request_for(case, timeout=0.25), timeout=30.0)
    assert type(error) is ProviderUnavailable, repr(error)
    only_request(wire, case)


def test_missing_api_key_is_model_unavailable(case: Case, wire: WireServer, loop: Loop) -> None:
    """No key anywhere and the provider's own endpoint: this model cannot answer; the next one may."""

    async def go() -> None:
        provider = case.make(None, None, 1.0)
        try:
            await provider.complete(request_for(case))
        finally:
            await provider.aclose()

    with pytest.raises(ModelUnavailable, match="no API key"):
        loop.runner.run(go())
    assert wire.requests == []


def test_one_provider_serves_many_calls(case: Case, wire: WireServer, loop: Loop) -> None:
    """A client survives errors: the provider object is reused by the engine across steps."""

    async def go() -> list[str]:
        provider = case.make("test-key", case.base_url(wire.url), 5.0)
        outcomes: list[str] = []
        try:
            for _ in range(3):
                try:
                    outcomes.append((await provider.complete(request_for(case))).text)
                except StepError as exc:
                    outcomes.append(type(exc).__name__)
        finally:
            await provider.aclose()
        return outcomes

    wire.script()
    wire.script(status=503, error="down")
    assert loop.runner.run(go()) == [ANSWER, "ProviderUnavailable", ANSWER]
    assert len(wire.requests) == 3
