"""Google Gemini (Gemini Developer API) over the official ``google-genai`` SDK.

Retries are off: ``HttpRetryOptions(attempts=1)``. Leaving ``retry_options``
unset is not enough, since the SDK's aiohttp transport then retries a refused
connection once on its own after sleeping 1-10 s. See ``base.py`` for why the
adapters never retry.

Tools are function declarations, and the SDK's automatic function calling is off
(the engine runs tools itself). A final answer with both tools and an output
schema comes through an extra function named ``final_answer`` (its parameters the
output schema) with function calling mode ``ANY``, instead of the JSON mode
(``response_json_schema``) used without tools (``google_messages.py``).
"""

from __future__ import annotations

import json
import math
import os
import ssl
from collections.abc import Mapping
from typing import Any

import httpx
import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from pydantic import SecretStr

from agentparty.models.sdk_config import ConnectionPoolConfig
from agentparty.models.step_errors import ContentPolicyViolation, ModelUnavailable, ProviderUnavailable, StepError
from agentparty.runtime.provider_auth import Credential, ProviderAuth, call_with_auth
from agentparty.runtime.secrets import as_secret, register, reveal

from .base import Completion, CompletionRequest, TextCallback, classify_status, structured_output
from .conversation import AnswerTool, check_tool_names, conversation
from .google_messages import ThoughtSignatures, configure_tools, google_contents, read_calls
from .http_pool import google_http_client

try:  # google-genai's async transport when installed (it falls back to httpx)
    import aiohttp

    _AIOHTTP_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError,)
except ImportError:  # pragma: no cover - depends on the environment
    _AIOHTTP_ERRORS = ()

PLACEHOLDER_API_KEY = "not-needed"
"""Sent to a Gemini-compatible server (a proxy) when no key is given: the SDK refuses to start without one."""

_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    *_AIOHTTP_ERRORS,
    httpx2.TransportError,
    httpx.TransportError,
    ssl.SSLError,
    TimeoutError,
    OSError,
)
"""Timeouts, refused and dropped connections of either transport (aiohttp's timeout is a TimeoutError)."""

BLOCKED_FINISH_REASONS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "MODEL_ARMOR",
    }
)
"""Finish reasons that mean a filter stopped the answer."""


class GoogleProvider:
    """Gemini models behind ``google.genai.Client`` (its ``aio`` side)."""

    name = "google"

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
        """Configured authentication: each call takes its credential from it (``x-goog-api-key`` or a bearer)."""
        self._base_url = base_url
        self._timeout = timeout
        self._client: genai.Client | None = None
        self._http: httpx2.AsyncClient | None = None
        """Ours when a pool is configured: the SDK does not close a client it was handed."""
        self._signatures = ThoughtSignatures()

    def _sdk(self, model: str) -> genai.Client:
        """The SDK client, made on first use so a missing key fails the call (and only it)."""
        if self._client is None:
            # A custom server never gets the GOOGLE_API_KEY meant for Google itself.
            env_key = os.environ.get("GOOGLE_API_KEY") or os.environ.get("GEMINI_API_KEY")
            key = reveal(self._api_key) or (PLACEHOLDER_API_KEY if self._base_url or self._auth else env_key)
            register(key or "")
            if not key:
                raise ModelUnavailable(
                    f"{self.name}/{model}: no API key configured (pass api_key or set GOOGLE_API_KEY)"
                )
            self._http = google_http_client(self._pool, self._timeout)
            options = types.HttpOptions(
                base_url=self._base_url,
                timeout=_milliseconds(self._timeout),
                retry_options=types.HttpRetryOptions(attempts=1),
                httpx_async_client=self._http,
            )
            self._client = genai.Client(api_key=key, vertexai=False, http_options=options)
        return self._client

    async def complete(self, request: CompletionRequest, on_text: TextCallback | None = None) -> Completion:
        if self._auth is None:
            return await self._complete(request, on_text, None)
        return await call_with_auth(self._auth, lambda credential: self._complete(request, on_text, credential))

    async def _complete(
        self, request: CompletionRequest, on_text: TextCallback | None, credential: Credential | None
    ) -> Completion:
        client = self._sdk(request.model)
        contents, config, answer_tool = self._request(request)
        if credential is not None and config.http_options is not None:
            secret = credential.secret.get_secret_value()
            bearer = credential.scheme == "bearer"
            config.http_options.headers = (
                {"Authorization": f"Bearer {secret}"} if bearer else {"x-goog-api-key": secret}
            )
        try:
            text, call_parts, finish_reason, model, usage = await self._generate(
                client, request, contents, config, on_text
            )
        except StepError:
            raise
        except genai_errors.APIError as exc:
            raise self._api_error(exc, request.model) from exc
        except (genai_errors.UnknownApiResponseError, json.JSONDecodeError) as exc:
            # The SDK's aiohttp path lets a non-JSON error body labelled JSON escape as a JSONDecodeError.
            raise ProviderUnavailable(f"{self.name}/{request.model}: unreadable response: {exc}") from exc
        except _TRANSPORT_ERRORS as exc:
            raise ProviderUnavailable(f"{self.name}/{request.model}: connection failed or timed out: {exc!r}") from exc

        if finish_reason in BLOCKED_FINISH_REASONS:
            raise ContentPolicyViolation(
                f"{self.name}/{request.model}: the answer was blocked (finishReason={finish_reason})"
            )
        where = (self.name, request.model)
        answer, tool_calls = read_calls(call_parts, answer_tool, request.messages, self._signatures, where)
        if answer is not None:
            text = answer
        # Thinking tokens are billed as output, so they count against budgets too.
        output_tokens = (
            ((usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)) if usage is not None else 0
        )
        return Completion(
            text=text,
            output=text if tool_calls else structured_output(text, request.output_schema, self.name, request.model),
            input_tokens=(usage.prompt_token_count or 0) if usage is not None else 0,
            output_tokens=output_tokens,
            model=model or request.model,
            provider=self.name,
            finish_reason=finish_reason,
            simulated=False,
            streamed=request.stream,
            tool_calls=tool_calls,
        )

    def _request(
        self, request: CompletionRequest
    ) -> tuple[list[types.Content], types.GenerateContentConfig, AnswerTool | None]:
        """The contents and config of a call, and the tool a structured answer comes through (if any)."""
        check_tool_names(request.tools, request.output_schema)
        system, turns = conversation(request.messages)
        config = types.GenerateContentConfig(
            system_instruction=system or None,
            max_output_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            seed=request.seed,
            http_options=types.HttpOptions(timeout=_milliseconds(min(self._timeout, request.timeout))),
        )
        answer_tool = configure_tools(config, request.tools, request.output_schema)
        return google_contents(turns, self._signatures), config, answer_tool

    async def _generate(
        self,
        client: genai.Client,
        request: CompletionRequest,
        contents: list[types.Content],
        config: types.GenerateContentConfig,
        on_text: TextCallback | None,
    ) -> tuple[str, list[types.Part], str | None, str | None, types.GenerateContentResponseUsageMetadata | None]:
        """One call (streamed or not): the text, the function-call parts, the finish reason, the model, the usage."""
        parts: list[str] = []
        call_parts: list[types.Part] = []
        finish_reason: str | None = None
        model: str | None = None
        usage: types.GenerateContentResponseUsageMetadata | None = None
        if request.stream:
            stream = await client.aio.models.generate_content_stream(
                model=request.model, contents=contents, config=config
            )
            async for chunk in stream:
                delta, finish_reason = self._read(chunk, request.model, finish_reason, call_parts)
                model = chunk.model_version or model
                usage = chunk.usage_metadata or usage
                if delta:
                    parts.append(delta)
                    if on_text is not None:
                        on_text(delta)
        else:
            response = await client.aio.models.generate_content(model=request.model, contents=contents, config=config)
            delta, finish_reason = self._read(response, request.model, None, call_parts)
            parts.append(delta)
            model, usage = response.model_version, response.usage_metadata
        return "".join(parts), call_parts, finish_reason, model, usage

    def _read(
        self,
        response: types.GenerateContentResponse,
        model: str,
        finish_reason: str | None,
        call_parts: list[types.Part],
    ) -> tuple[str, str | None]:
        """The answer text in one response (or stream chunk) and the finish reason so far; its function-call parts
        are added to ``call_parts``. A blocked prompt raises."""
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            reason = _enum_name(feedback.block_reason)
            raise ContentPolicyViolation(
                f"{self.name}/{model}: the prompt was blocked ({reason}) {feedback.block_reason_message or ''}".rstrip()
            )
        if not response.candidates:
            return "", finish_reason
        candidate = response.candidates[0]
        if candidate.finish_reason is not None:
            finish_reason = _enum_name(candidate.finish_reason)
        content = candidate.content
        if content is None:
            return "", finish_reason
        call_parts += [part for part in content.parts or [] if part.function_call is not None]
        return "".join(part.text for part in (content.parts or []) if part.text and not part.thought), finish_reason

    def _api_error(self, exc: genai_errors.APIError, model: str) -> StepError:
        status = exc.code if isinstance(exc.code, int) else 500
        message = exc.message or str(exc)
        detail = f"{message} ({exc.status})" if exc.status else message
        headers = _headers(getattr(exc.response, "headers", None))
        if "retry-after" not in headers and (delay := _retry_info_delay(exc.details)) is not None:
            headers["retry-after"] = delay
        return classify_status(self.name, model, status, detail, headers)

    async def aclose(self) -> None:
        """Close the SDK's async HTTP sessions (and the sync client, in case anything used it)."""
        if self._client is not None:
            await self._client.aio.aclose()
            self._client.close()
            self._client = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def _milliseconds(seconds: float) -> int:
    """HttpOptions.timeout is whole milliseconds."""
    return max(1, math.ceil(seconds * 1000))


def _enum_name(value: Any) -> str:
    return str(getattr(value, "value", value))


def _headers(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    items = raw.items() if isinstance(raw, Mapping) or hasattr(raw, "items") else []
    return {str(k).lower(): str(v) for k, v in items}


def _retry_info_delay(details: Any) -> str | None:
    """Seconds from a ``google.rpc.RetryInfo`` error detail (``"retryDelay": "30s"``): Gemini's Retry-After."""
    error = details.get("error", details) if isinstance(details, dict) else None
    for item in (error or {}).get("details", []) if isinstance(error, dict) else []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = str(item.get("retryDelay", ""))
            if delay.endswith("s"):
                try:
                    return str(float(delay[:-1]))
                except ValueError:
                    return None
    return None
