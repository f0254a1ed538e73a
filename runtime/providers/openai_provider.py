"""OpenAI Chat Completions over the official ``openai`` SDK; with ``base_url`` also any
OpenAI-compatible server (Ollama, vLLM, LiteLLM, llama.cpp).

The SDK never retries here (``max_retries=0``): one call is one HTTP request, and
its failure becomes an engine error that the step's retries, the circuit breaker
and the model's fallback chain act on (see ``base.py``).

Tools are function tools (``openai_messages.py`` writes the format). A final
answer with both tools and an output schema keeps ``response_format: json_schema``
beside ``tools``: each turn the model either calls tools or answers in JSON, so the
answer needs no extra tool here (Anthropic and Gemini offer a ``final_answer`` tool).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import httpx2
import openai
from pydantic import SecretStr

from agentparty.models.sdk_config import ConnectionPoolConfig
from agentparty.models.step_errors import ContentPolicyViolation, ModelUnavailable, ProviderUnavailable, StepError
from agentparty.models.tools import ToolCall
from agentparty.runtime.provider_auth import Credential, ProviderAuth, call_with_auth
from agentparty.runtime.secrets import as_secret, register, reveal

from .base import Completion, CompletionRequest, TextCallback, classify_status, confidence_of, structured_output
from .conversation import conversation, synthetic_call_id
from .http_pool import sdk_http_client
from .openai_messages import StreamedToolCalls, openai_messages, openai_tools, parse_tool_calls

PLACEHOLDER_API_KEY = "not-needed"
"""Sent to an OpenAI-compatible server when no key is given: the SDK refuses to start without one."""

_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    httpx2.TransportError,
    httpx.TransportError,
    ssl.SSLError,
    anyio.EndOfStream,
    OSError,
)
"""Dropped connections the SDK can let through unwrapped while a stream is read."""


class OpenAIProvider:
    """OpenAI (or an OpenAI-compatible server) behind ``openai.AsyncOpenAI``."""

    name = "openai"

    def __init__(
        self,
        api_key: SecretStr | str | None,
        base_url: str | None = None,
        timeout: float = 60.0,
        auth: ProviderAuth | None = None,
        pool: ConnectionPoolConfig | None = None,
    ) -> None:
        self._api_key = as_secret(api_key)
        self._pool = pool
        """``communication.connectionPool``: the SDK client's HTTP pool limits (``providers/http_pool.py``)."""
        self._auth = auth
        """Configured authentication: each call takes its credential from it (``Authorization: Bearer``)."""
        self._base_url = base_url
        self._timeout = timeout
        self._client: openai.AsyncOpenAI | None = None
        host = (urlsplit(base_url).hostname or "") if base_url else "api.openai.com"
        # OpenAI itself deprecated ``max_tokens`` (its reasoning models reject it);
        # compatible servers often know only ``max_tokens``.
        self._max_tokens_field = "max_completion_tokens" if host.endswith("openai.com") else "max_tokens"

    def _sdk(self, model: str) -> openai.AsyncOpenAI:
        """The SDK client, made on first use so a missing key fails the call (and only it)."""
        if self._client is None:
            # A custom server never gets the OPENAI_API_KEY meant for OpenAI itself; with ``auth`` each call sends its own.
            custom = self._base_url or self._auth is not None
            key = reveal(self._api_key) or (PLACEHOLDER_API_KEY if custom else os.environ.get("OPENAI_API_KEY"))
            register(key or "")
            if not key:
                raise ModelUnavailable(
                    f"{self.name}/{model}: no API key configured (pass api_key or set OPENAI_API_KEY)"
                )
            self._client = openai.AsyncOpenAI(
                api_key=key,
                base_url=self._base_url,
                max_retries=0,
                timeout=self._timeout,
                http_client=sdk_http_client(openai.DefaultAsyncHttpxClient, self._pool, self._timeout),
            )
        return self._client

    async def complete(self, request: CompletionRequest, on_text: TextCallback | None = None) -> Completion:
        if self._auth is None:
            return await self._complete(request, on_text, None)
        return await call_with_auth(self._auth, lambda credential: self._complete(request, on_text, credential))

    async def _complete(
        self, request: CompletionRequest, on_text: TextCallback | None, credential: Credential | None
    ) -> Completion:
        client = self._sdk(request.model)
        params = self._params(request)
        if credential is not None:
            params["extra_headers"] = {"Authorization": f"Bearer {credential.secret.get_secret_value()}"}
        read_calls: Callable[[Callable[[int], str], str, str], tuple[ToolCall, ...]]
        logprobs: list[float] = []
        try:
            if request.stream:
                text, model, finish_reason, usage, streamed_calls = await self._stream(
                    client, params, on_text, logprobs
                )
                read_calls = streamed_calls.calls
            else:
                response = await client.chat.completions.create(**params)
                if not response.choices:
                    raise ProviderUnavailable(f"{self.name}/{request.model}: the response has no choices")
                choice = response.choices[0]
                if choice.message.refusal:
                    raise ContentPolicyViolation(f"{self.name}/{request.model} refused: {choice.message.refusal}")
                text, model, finish_reason, usage = (
                    choice.message.content or "",
                    response.model,
                    choice.finish_reason,
                    response.usage,
                )
                read_calls = partial(parse_tool_calls, choice.message.tool_calls)
                if choice.logprobs is not None:
                    logprobs += [token.logprob for token in choice.logprobs.content or []]
        except StepError:
            raise
        except openai.APIError as exc:
            raise self._error(exc, request.model) from exc
        except _TRANSPORT_ERRORS as exc:
            raise ProviderUnavailable(f"{self.name}/{request.model}: connection failed: {exc!r}") from exc

        if finish_reason == "content_filter":
            raise ContentPolicyViolation(f"{self.name}/{request.model}: the answer was stopped by the content filter")
        tool_calls = read_calls(partial(synthetic_call_id, request.messages), self.name, request.model)
        return Completion(
            text=text,
            # A turn that calls tools is not the answer: only the final one must match the schema.
            output=text if tool_calls else structured_output(text, request.output_schema, self.name, request.model),
            input_tokens=usage.prompt_tokens if usage is not None else 0,
            output_tokens=usage.completion_tokens if usage is not None else 0,
            model=model or request.model,
            provider=self.name,
            finish_reason=finish_reason,
            simulated=False,
            streamed=request.stream,
            tool_calls=tool_calls,
            confidence=confidence_of(logprobs),
        )

    def _params(self, request: CompletionRequest) -> dict[str, Any]:
        """The Chat Completions call's keywords (no tool fields at all when no tools are offered)."""
        system, turns = conversation(request.messages)
        params: dict[str, Any] = {
            "model": request.model,
            "messages": openai_messages(system, turns),
            self._max_tokens_field: request.max_tokens,
            "timeout": min(self._timeout, request.timeout),
        }
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.top_p is not None:
            params["top_p"] = request.top_p
        if request.seed is not None:
            params["seed"] = request.seed
        if request.logprobs:
            params["logprobs"] = True
        if request.tools:
            params["tools"] = openai_tools(request.tools)
        if request.output_schema is not None:
            # Not ``strict``: strict mode accepts only a subset of JSON Schema; the
            # answer is validated against the full schema by ``structured_output``.
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": request.output_schema},
            }
        return params

    async def _stream(
        self, client: openai.AsyncOpenAI, params: dict[str, Any], on_text: TextCallback | None, logprobs: list[float]
    ) -> tuple[str, str | None, str | None, Any, StreamedToolCalls]:
        """Stream content deltas to ``on_text`` and gather tool-call deltas (and token log-probabilities into
        ``logprobs``); usage comes in the final, choice-less chunk."""
        stream = await client.chat.completions.create(**params, stream=True, stream_options={"include_usage": True})
        parts: list[str] = []
        tool_calls = StreamedToolCalls()
        model: str | None = None
        finish_reason: str | None = None
        usage: Any = None
        async with stream:
            async for chunk in stream:
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = chunk.usage
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                if choice.delta is not None and choice.delta.refusal:
                    raise ContentPolicyViolation(f"{self.name}/{params['model']} refused: {choice.delta.refusal}")
                delta = choice.delta.content if choice.delta is not None else None
                if delta:
                    parts.append(delta)
                    if on_text is not None:
                        on_text(delta)
                if choice.delta is not None:
                    tool_calls.add(choice.delta.tool_calls)
                if choice.logprobs is not None:
                    logprobs += [token.logprob for token in choice.logprobs.content or []]
                if choice.finish_reason:
                    finish_reason = choice.finish_reason
        return "".join(parts), model, finish_reason, usage, tool_calls

    def _error(self, exc: openai.APIError, model: str) -> StepError:
        """The engine error for an SDK error: HTTP status first, then what an in-stream error says."""
        if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
            return ProviderUnavailable(f"{self.name}/{model}: {exc.message}")
        detail = _detail(exc)
        if isinstance(exc, openai.APIStatusError):
            return classify_status(self.name, model, exc.status_code, detail, exc.response.headers)
        # An error event inside a 200 stream has no status: infer one from its type/code.
        kind = f"{exc.type or ''} {exc.code or ''}".lower()
        status = 429 if "rate_limit" in kind else 400 if "invalid_request" in kind else 503
        return classify_status(self.name, model, status, detail)

    async def aclose(self) -> None:
        """Close the SDK's HTTP client (its connection pool)."""
        if self._client is not None:
            await self._client.close()
            self._client = None


def _detail(exc: openai.APIError) -> str:
    """The provider's own message plus its error type/code (the content-policy markers live there)."""
    body = exc.body
    message = exc.message
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            message = error["message"]
    tags = [t for t in (exc.type, exc.code) if t]
    return f"{message} ({', '.join(tags)})" if tags else message
