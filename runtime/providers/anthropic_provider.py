"""Anthropic Messages API over the official ``anthropic`` SDK.

Structured output uses a tool whose input is the answer, its ``input_schema`` the
step's output schema. Without other tools it is one forced tool (``respond``,
``tool_choice: tool``). With tools, a loop cannot keep forcing one tool, so the
final-answer mechanism is an extra tool named ``final_answer`` with ``tool_choice:
any``: each turn the model calls real tools or gives the answer through it
(``anthropic_messages.py`` writes the format and reads the answer). The SDK never
retries here (``max_retries=0``); see ``base.py``.
"""

from __future__ import annotations

import ssl
from typing import Any

import anthropic
import anyio
import httpx
import httpx2
from anthropic.types import Message
from pydantic import SecretStr

from agentparty.models.sdk_config import ConnectionPoolConfig
from agentparty.models.step_errors import (
    ContentPolicyViolation,
    InvalidModelOutput,
    ModelUnavailable,
    ProviderUnavailable,
    StepError,
)
from agentparty.runtime.provider_auth import Credential, ProviderAuth, call_with_auth
from agentparty.runtime.secrets import as_secret, reveal

from .anthropic_messages import anthropic_messages, read_content, tool_params
from .base import Completion, CompletionRequest, TextCallback, classify_status, structured_output
from .conversation import AnswerTool, check_tool_names, conversation
from .http_pool import sdk_http_client

PLACEHOLDER_API_KEY = "not-needed"
"""Sent to an Anthropic-compatible server (a proxy) when no key is given."""

_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    httpx2.TransportError,
    httpx.TransportError,
    ssl.SSLError,
    anyio.EndOfStream,
    OSError,
)
"""The SDK's stream reader lets dropped connections and read timeouts through unwrapped."""

_ERROR_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
"""An in-stream ``error`` event arrives inside a 200 response: its type says what the status would have been."""


class AnthropicProvider:
    """Claude models behind ``anthropic.AsyncAnthropic``."""

    name = "anthropic"

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
        """Configured authentication: each call takes its credential from it (``x-api-key`` or a bearer token)."""
        self._base_url = base_url
        self._timeout = timeout
        self._client: anthropic.AsyncAnthropic | None = None

    def _sdk(self, model: str) -> anthropic.AsyncAnthropic:
        """The SDK client, made on first use so a missing key fails the call (and only it)."""
        if self._client is None:
            # A custom server never gets the ANTHROPIC_API_KEY meant for Anthropic itself;
            # with no key and no base_url the SDK looks up its environment and profiles.
            key = reveal(self._api_key) or (PLACEHOLDER_API_KEY if self._base_url or self._auth else None)
            try:
                self._client = anthropic.AsyncAnthropic(
                    api_key=key,
                    base_url=self._base_url,
                    max_retries=0,
                    timeout=self._timeout,
                    http_client=sdk_http_client(anthropic.DefaultAsyncHttpxClient, self._pool, self._timeout),
                )
            except anthropic.CredentialsError as exc:
                raise ModelUnavailable(
                    f"{self.name}/{model}: no API key configured (pass api_key or set ANTHROPIC_API_KEY): {exc}"
                ) from exc
        return self._client

    async def complete(self, request: CompletionRequest, on_text: TextCallback | None = None) -> Completion:
        if self._auth is None:
            return await self._complete(request, on_text, None)
        return await call_with_auth(self._auth, lambda credential: self._complete(request, on_text, credential))

    async def _complete(
        self, request: CompletionRequest, on_text: TextCallback | None, credential: Credential | None
    ) -> Completion:
        client = self._sdk(request.model)
        params, answer_tool = self._params(request)
        if credential is not None:
            params["extra_headers"] = _auth_headers(credential)
        # A forced tool's input is not text worth streaming: a structured answer without tools is one plain call.
        streamed = request.stream and (request.output_schema is None or bool(request.tools))
        message, streamed_inputs = await self._send(client, params, request.model, streamed, on_text)
        if message.stop_reason == "refusal":
            raise ContentPolicyViolation(f"{self.name}/{request.model}: the model refused (stop_reason=refusal)")
        text, tool_calls = read_content(message, answer_tool, streamed_inputs, self.name, request.model)
        return Completion(
            text=text,
            output=text if tool_calls else structured_output(text, request.output_schema, self.name, request.model),
            input_tokens=message.usage.input_tokens,
            output_tokens=message.usage.output_tokens,
            model=message.model or request.model,
            provider=self.name,
            finish_reason=message.stop_reason,
            simulated=False,
            streamed=streamed,
            tool_calls=tool_calls,
        )

    def _params(self, request: CompletionRequest) -> tuple[dict[str, Any], AnswerTool | None]:
        """The Messages API call's keywords, and the tool a structured answer comes through (if any)."""
        check_tool_names(request.tools, request.output_schema)
        system, turns = conversation(request.messages)
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": anthropic_messages(turns),
            "timeout": min(self._timeout, request.timeout),
        }
        if system:
            params["system"] = system
        sampling = _sampling(request)
        if sampling:
            params["extra_body"] = sampling
        tools, answer_tool = tool_params(request.tools, request.output_schema)
        params.update(tools)
        return params, answer_tool

    async def _send(
        self,
        client: anthropic.AsyncAnthropic,
        params: dict[str, Any],
        model: str,
        streamed: bool,
        on_text: TextCallback | None,
    ) -> tuple[Message, dict[int, str] | None]:
        """One call to the API, its failures translated to the step errors the engine classifies; for a stream,
        also each ``tool_use`` block's raw input JSON by block index."""
        try:
            if streamed:
                return await self._stream(client, params, model, on_text)
            return await client.messages.create(**params), None
        except StepError:
            raise
        except anthropic.APIStatusError as exc:
            raise self._status_error(exc, model) from exc
        except anthropic.APIConnectionError as exc:  # includes APITimeoutError
            raise ProviderUnavailable(f"{self.name}/{model}: {exc.message}") from exc
        except anthropic.APIError as exc:
            raise ProviderUnavailable(f"{self.name}/{model}: {exc.message}") from exc
        except anthropic.CredentialsError as exc:
            raise ModelUnavailable(f"{self.name}/{model}: no API key configured: {exc}") from exc
        except TypeError as exc:
            if "authentication method" in str(exc):
                raise ModelUnavailable(
                    f"{self.name}/{model}: no API key configured (pass api_key or set ANTHROPIC_API_KEY)"
                ) from exc
            raise
        except _TRANSPORT_ERRORS as exc:
            raise ProviderUnavailable(f"{self.name}/{model}: connection failed: {exc!r}") from exc

    async def _stream(
        self, client: anthropic.AsyncAnthropic, params: dict[str, Any], model: str, on_text: TextCallback | None
    ) -> tuple[Message, dict[int, str]]:
        """Text deltas to ``on_text``; each tool's input fragments (``input_json_delta``) gathered by block."""
        fragments: dict[int, list[str]] = {}
        tool = ""
        try:
            async with client.messages.stream(**params) as stream:
                async for event in stream:
                    if event.type == "text":
                        if on_text is not None:
                            on_text(event.text)
                    elif event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                        fragments.setdefault(event.index, []).append(event.delta.partial_json)
                    elif event.type == "content_block_start" and event.content_block.type == "tool_use":
                        fragments.setdefault(event.index, [])
                        tool = event.content_block.name
                message = await stream.get_final_message()
        except ValueError as exc:
            # The SDK's own (lenient) parse of the fragments failed: the model wrote arguments that are not JSON.
            if "tool parameter JSON" not in str(exc):
                raise
            raise InvalidModelOutput(
                f"{self.name}/{model} called tool {tool!r} with arguments that are not valid JSON: {exc}"
            ) from None
        return message, {index: "".join(parts) for index, parts in fragments.items()}

    def _status_error(self, exc: anthropic.APIStatusError, model: str) -> StepError:
        status = exc.status_code
        kind = exc.type or ""
        if status < 400:
            status = _ERROR_TYPE_STATUS.get(kind, 503)
        message = exc.api_message or exc.message
        detail = f"{message} ({kind})" if kind else message
        return classify_status(self.name, model, status, detail, exc.response.headers)

    async def aclose(self) -> None:
        """Close the SDK's HTTP client (its connection pool)."""
        if self._client is not None:
            await self._client.close()
            self._client = None


def _auth_headers(credential: Credential) -> dict[str, str]:
    """``Authorization: Bearer`` for a key, a gateway's token or an OAuth2 token alike, as the SDK sends a key."""
    return {"Authorization": f"Bearer {credential.secret.get_secret_value()}"}


def _sampling(request: CompletionRequest) -> dict[str, float]:
    """Sampling keywords for ``extra_body``.

    The SDK (1.0+) dropped the sampling keywords; the API still takes them,
    but newer models reject temperature and top_p together: temperature wins.
    """
    if request.temperature is not None:
        return {"temperature": request.temperature}
    if request.top_p is not None:
        return {"top_p": request.top_p}
    return {}
