"""Anthropic Messages API over the official ``anthropic`` SDK.

Structured output uses one forced tool whose input is the answer: the model must
call it, and the tool's ``input_schema`` is the step's output schema. The SDK
never retries here (``max_retries=0``); see ``base.py``.
"""

from __future__ import annotations

import json
import ssl
from typing import Any

import anthropic
import anyio
import httpx
import httpx2
from anthropic.types import Message
from pydantic import SecretStr

from agentparty.models.step_errors import ContentPolicyViolation, ModelUnavailable, ProviderUnavailable, StepError
from agentparty.runtime.secrets import as_secret, reveal

from .base import Completion, CompletionRequest, TextCallback, chat_turns, classify_status, structured_output

PLACEHOLDER_API_KEY = "not-needed"
"""Sent to an Anthropic-compatible server (a proxy) when no key is given."""

TOOL_NAME = "respond"
_WRAPPED = "output"
"""Tool inputs must be objects: another schema is wrapped as the property ``output``."""

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

    def __init__(self, api_key: SecretStr | str | None, base_url: str | None = None, timeout: float = 60.0) -> None:
        self._api_key = as_secret(api_key)
        self._base_url = base_url
        self._timeout = timeout
        self._client: anthropic.AsyncAnthropic | None = None

    def _sdk(self, model: str) -> anthropic.AsyncAnthropic:
        """The SDK client, made on first use so a missing key fails the call (and only it)."""
        if self._client is None:
            # A custom server never gets the ANTHROPIC_API_KEY meant for Anthropic itself;
            # with no key and no base_url the SDK looks up its environment and profiles.
            key = reveal(self._api_key) or (PLACEHOLDER_API_KEY if self._base_url else None)
            try:
                self._client = anthropic.AsyncAnthropic(
                    api_key=key, base_url=self._base_url, max_retries=0, timeout=self._timeout
                )
            except anthropic.CredentialsError as exc:
                raise ModelUnavailable(
                    f"{self.name}/{model}: no API key configured (pass api_key or set ANTHROPIC_API_KEY): {exc}"
                ) from exc
        return self._client

    async def complete(self, request: CompletionRequest, on_text: TextCallback | None = None) -> Completion:
        client = self._sdk(request.model)
        params, wrapped = self._params(request)
        streamed = request.stream and request.output_schema is None
        message = await self._send(client, params, request.model, streamed, on_text)
        if message.stop_reason == "refusal":
            raise ContentPolicyViolation(f"{self.name}/{request.model}: the model refused (stop_reason=refusal)")
        text = _answer_text(message, request.output_schema is not None, wrapped)
        return Completion(
            text=text,
            output=structured_output(text, request.output_schema, self.name, request.model),
            input_tokens=message.usage.input_tokens,
            output_tokens=message.usage.output_tokens,
            model=message.model or request.model,
            provider=self.name,
            finish_reason=message.stop_reason,
            simulated=False,
            streamed=streamed,
        )

    def _params(self, request: CompletionRequest) -> tuple[dict[str, Any], bool]:
        """The Messages API call's keywords, and whether the output schema was wrapped as ``output``."""
        system, turns = chat_turns(request.messages)
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": [{"role": role, "content": text} for role, text in turns],
            "timeout": min(self._timeout, request.timeout),
        }
        if system:
            params["system"] = system
        sampling = _sampling(request)
        if sampling:
            params["extra_body"] = sampling
        wrapped = False
        if request.output_schema is not None:
            schema = request.output_schema
            wrapped = schema.get("type") != "object"
            if wrapped:
                schema = {"type": "object", "properties": {_WRAPPED: schema}, "required": [_WRAPPED]}
            params["tools"] = [
                {
                    "name": TOOL_NAME,
                    "description": "Give your answer as this tool's input, exactly matching its schema.",
                    "input_schema": schema,
                }
            ]
            params["tool_choice"] = {"type": "tool", "name": TOOL_NAME}
        return params, wrapped

    async def _send(
        self,
        client: anthropic.AsyncAnthropic,
        params: dict[str, Any],
        model: str,
        streamed: bool,
        on_text: TextCallback | None,
    ) -> Message:
        """One call to the API, its failures translated to the step errors the engine classifies."""
        message: Message
        try:
            if streamed:
                async with client.messages.stream(**params) as stream:
                    async for delta in stream.text_stream:
                        if on_text is not None:
                            on_text(delta)
                    message = await stream.get_final_message()
            else:
                message = await client.messages.create(**params)
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
        return message

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


def _answer_text(message: Message, structured: bool, wrapped: bool) -> str:
    """The answer: the text blocks, or for structured output the forced tool's input as JSON."""
    text = "".join(block.text for block in message.content if block.type == "text")
    if structured:
        tool_input: object = next(
            (block.input for block in message.content if block.type == "tool_use" and block.name == TOOL_NAME), None
        )
        if tool_input is not None:
            if wrapped and isinstance(tool_input, dict) and _WRAPPED in tool_input:
                tool_input = tool_input[_WRAPPED]
            return json.dumps(tool_input)
        # Without the tool call, the text is validated as is (and usually fails).
    return text
