"""A local HTTP server that speaks the OpenAI, Anthropic and Google Gemini wire formats.

The provider adapters are tested through the real SDKs, so the only fake is the
far end of the socket. ``WireServer`` records every request and answers each
call from a script queue (default: success), which lets a test drive any status,
header, body, delay or mid-stream failure and then check exactly what the SDK
sent, and how many times.

Endpoints (JSON, or server-sent events when the request asks to stream):

* OpenAI ``POST /v1/chat/completions`` (``stream: true``: ``data:`` chunks, a
  final usage chunk when ``stream_options.include_usage``, ``data: [DONE]``);
* Anthropic ``POST /v1/messages`` (``stream: true``: ``message_start`` ...
  ``message_stop`` events; a forced tool is answered with a ``tool_use`` block);
* Google ``POST /{version}/models/{model}:generateContent`` and
  ``:streamGenerateContent?alt=sse`` (any version: google-genai 3.x calls ``v1``).

Errors use each provider's own error JSON. Answers are deterministic so tests
can assert exact values:

* unstructured text is ``"echo: <last user message>"``;
* structured answers are a value generated from the requested JSON schema;
* input tokens = whitespace-separated words in all prompt text (system prompt
  included), output tokens = words in the answer text (for an Anthropic tool
  answer, in ``json.dumps`` of its input).

Tool calls: ``Script(tool_calls=[{"name": ..., "arguments": {...}}, ...])`` answers
with those calls (several in one turn if listed), in each dialect's real format,
plain or streamed (OpenAI ``tool_calls`` deltas by index, Anthropic ``tool_use``
blocks with ``input_json_delta`` fragments, Gemini ``functionCall`` parts). A
request that offers ``final_answer`` and forces some tool (Anthropic
``tool_choice: any``, Gemini mode ``ANY``) is answered, unless scripted otherwise,
by a ``final_answer`` call whose input is generated from its schema. What the SDK
sent is in :class:`Recorded`: ``tools`` (the tool specs), ``tool_results`` and
``tool_calls_sent`` (the earlier turn's calls), in the dialect's own shape.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

Dialect = Literal["openai", "anthropic", "google"]

_UNSET: Any = object()


def google_declarations(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The function declarations of every tool of a Gemini request."""
    return [decl for tool in body.get("tools") or [] for decl in tool.get("functionDeclarations") or []]


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Lower-cased header names."""
    json: Any
    dialect: Dialect | None = None

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The tool specs as sent (Gemini: the function declarations of every tool)."""
        body = self.json if isinstance(self.json, dict) else {}
        return google_declarations(body) if self.dialect == "google" else list(body.get("tools") or [])

    @property
    def tool_results(self) -> list[dict[str, Any]]:
        """The tool results as sent: OpenAI ``tool`` messages, Anthropic ``tool_result`` blocks, Gemini
        ``functionResponse`` objects."""
        if self.dialect == "openai":
            return [m for m in self._turns() if m.get("role") == "tool"]
        if self.dialect == "anthropic":
            return self._blocks("user", "tool_result")
        return [p["functionResponse"] for p in self._parts("user") if "functionResponse" in p]

    @property
    def tool_calls_sent(self) -> list[dict[str, Any]]:
        """The calls of earlier model turns as sent: OpenAI ``tool_calls`` entries, Anthropic ``tool_use`` blocks,
        Gemini ``functionCall`` parts (whole, with their ``thoughtSignature``)."""
        if self.dialect == "openai":
            return [c for m in self._turns() if m.get("role") == "assistant" for c in m.get("tool_calls") or []]
        if self.dialect == "anthropic":
            return self._blocks("assistant", "tool_use")
        return [p for p in self._parts("model") if "functionCall" in p]

    def _turns(self) -> list[dict[str, Any]]:
        body = self.json if isinstance(self.json, dict) else {}
        return list(body.get("contents" if self.dialect == "google" else "messages") or [])

    def _blocks(self, role: str, kind: str) -> list[dict[str, Any]]:
        return [
            block
            for m in self._turns()
            if m.get("role") == role and isinstance(m.get("content"), list)
            for block in m["content"]
            if block.get("type") == kind
        ]

    def _parts(self, role: str) -> list[dict[str, Any]]:
        return [p for c in self._turns() if c.get("role", "user") == role for p in c.get("parts") or []]


@dataclass
class Script:
    """How to answer one call; every field left at its default gives a normal success."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = _UNSET
    """Sent verbatim as JSON (overrides everything below)."""
    raw: str | None = None
    """Sent verbatim as text (e.g. a malformed body)."""
    error: str | None = None
    """Error message for a status >= 400, wrapped in the dialect's error JSON."""
    error_type: str | None = None
    """The dialect's error type/code/status string; a status-derived default when unset."""
    text: str | None = None
    """The answer text (for a structured Anthropic request: a text block instead of the forced tool)."""
    output: Any = _UNSET
    """The structured answer (JSON text for OpenAI/Google, the tool input for Anthropic)."""
    finish_reason: str | None = None
    """The dialect's finish/stop reason, e.g. ``content_filter``, ``refusal``, ``SAFETY``."""
    model: str | None = None
    """The model id the response reports (default: the requested one)."""
    delay: float = 0.0
    """Seconds to wait before answering (to trip client timeouts)."""
    stream_error: int | None = None
    """In a streamed answer: after the first chunk, send an in-stream error with this HTTP-like status."""
    tool_calls: list[dict[str, Any]] | None = None
    """Answer with these tool calls (after ``text``, if set): each ``{"name", "arguments"}`` plus optional ``id``
    and (Gemini) ``signature``, a base64 ``thoughtSignature``. ``arguments`` is a dict, or a string sent verbatim
    as the JSON text (malformed on purpose); Gemini sends no call id unless one is given."""


# ---------------------------------------------------------------------------
# Schema sampling


def sample_from_schema(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """A simple value satisfying ``schema`` (objects, arrays, scalars, enums, const, $ref, any/oneOf).

    Deliberately not the simulated provider's sampler: this server stands in for
    an external provider, so it must not share the engine code the tests check.
    """
    root = schema if root is None else root
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"unsupported $ref {ref!r}")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        return sample_from_schema(target, root)
    if "const" in schema:
        return copy.deepcopy(schema["const"])
    if "enum" in schema:
        return copy.deepcopy(schema["enum"][0])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return sample_from_schema(schema[key][0], root)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(part)
        return sample_from_schema(merged, root)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        properties: dict[str, Any] = schema.get("properties", {})
        return {name: sample_from_schema(sub, root) for name, sub in properties.items()}
    if kind == "array":
        items = schema.get("items", {"type": "string"})
        return [sample_from_schema(items, root) for _ in range(max(1, int(schema.get("minItems", 1))))]
    if kind == "string":
        value = "sample"
        min_length = int(schema.get("minLength", 0))
        return value + "x" * max(0, min_length - len(value))
    if kind == "integer":
        if "minimum" in schema:
            return int(schema["minimum"])
        if "exclusiveMinimum" in schema:
            return int(schema["exclusiveMinimum"]) + 1
        return 1
    if kind == "number":
        if "minimum" in schema:
            return float(schema["minimum"])
        if "exclusiveMinimum" in schema:
            return float(schema["exclusiveMinimum"]) + 0.5
        return 1.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    raise ValueError(f"unsupported schema type {kind!r}")


# ---------------------------------------------------------------------------
# Shared helpers


def words(text: str) -> int:
    return len(text.split())


def pieces(text: str) -> list[str]:
    """Split an answer into stream deltas that join back to it exactly."""
    found = re.findall(r"\S+\s*|\s+", text)
    return found or [""]


def _text_of(content: Any) -> str:
    """Text from a message content that is a string or a list of text parts/blocks."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part["text"]) for part in content if isinstance(part, dict) and "text" in part)
    return ""


def _sse(data: Any, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


_OPENAI_ERROR = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
}
_OPENAI_CODE = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}
_ANTHROPIC_ERROR = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


_GOOGLE_SCHEMA_FIELDS = ("parametersJsonSchema", "parameters_json_schema", "parameters")


def error_body(dialect: Dialect, status: int, message: str, error_type: str | None = None) -> dict[str, Any]:
    """The provider's real error JSON shape for ``status``."""
    if dialect == "openai":
        kind = error_type or _OPENAI_ERROR.get(status, "server_error" if status >= 500 else "invalid_request_error")
        return {
            "error": {"message": message, "type": kind, "param": None, "code": _OPENAI_CODE.get(status, error_type)}
        }
    if dialect == "anthropic":
        kind = error_type or _ANTHROPIC_ERROR.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_wire"}
    kind = error_type or _GOOGLE_STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    return {"error": {"code": status, "message": message, "status": kind}}


@dataclass
class _Call:
    """One tool call the model 'makes'."""

    id: str | None
    name: str
    arguments: str
    """The arguments' JSON text, as the model writes it (verbatim when scripted as a string)."""
    signature: str | None = None
    """Gemini's ``thoughtSignature`` (base64)."""

    def arguments_value(self) -> Any:
        """The arguments as JSON, for the formats that carry an object; malformed text is sent as a string."""
        try:
            return json.loads(self.arguments)
        except json.JSONDecodeError:
            return self.arguments


@dataclass
class _Answer:
    """What the model 'says' to one request, before it is put in a dialect's envelope."""

    text: str
    input_tokens: int
    output_tokens: int
    model: str
    finish_reason: str | None
    calls: list[_Call] = field(default_factory=list)
    """Tool calls, after ``text`` (for an Anthropic forced-tool answer: the one call, and no text)."""
    logprobs: bool = False
    """OpenAI: the request asked for token log-probabilities (each token then has ln 0.8)."""


WIRE_TOKEN_LOGPROB = math.log(0.8)


def _logprobs(text: str) -> dict[str, Any]:
    """OpenAI's ``logprobs`` of a choice: one entry per word of ``text``, each with probability 0.8."""
    return {
        "content": [
            {"token": token, "logprob": WIRE_TOKEN_LOGPROB, "bytes": None, "top_logprobs": []} for token in text.split()
        ]
    }


def fragments(text: str, size: int = 7) -> list[str]:
    """Split JSON text into stream fragments that cut through tokens, as providers do."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class WireServer:
    """FastAPI + uvicorn on 127.0.0.1 (a free port) in a background thread.

    ``with WireServer() as server: ...`` or ``start()`` / ``stop()``. Script the
    next calls with :meth:`script` (a FIFO queue; an empty queue answers with
    success), read :attr:`requests`, and :meth:`reset` between tests.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: deque[Script] = deque()
        self._requests: list[Recorded] = []
        self._ids = itertools.count(1)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.authorize: Callable[[dict[str, str]], bool] | None = None
        """When set, a request whose (lower-cased) headers it refuses is recorded and answered 401, unscripted."""
        self.app = self._build_app()

    # -- lifecycle -----------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash, no API version)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WireServer:
        sock = socket.socket(
            socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP
        )  # asyncio sets TCP_NODELAY only for IPPROTO_TCP sockets
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1, access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="llm-wire", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("llm wire server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> WireServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting and recording -------------------------------------------

    def script(self, **fields: Any) -> Script:
        """Queue the answer to the next unscripted call (see :class:`Script` for the fields)."""
        entry = Script(**fields)
        with self._lock:
            self._scripts.append(entry)
        return entry

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._requests.clear()

    def _next(self, recorded: Recorded) -> Script:
        with self._lock:
            self._requests.append(recorded)
            return self._scripts.popleft() if self._scripts else Script()

    # -- the app -------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

        @app.post("/v1/chat/completions")
        async def openai_chat(request: Request) -> Response:
            return await self._handle("openai", request, None)

        @app.post("/v1/messages")
        async def anthropic_messages(request: Request) -> Response:
            return await self._handle("anthropic", request, None)

        @app.post("/{version}/models/{call}")
        async def google_generate(version: str, call: str, request: Request) -> Response:
            model, _, method = call.partition(":")
            if method not in ("generateContent", "streamGenerateContent"):
                return JSONResponse(error_body("google", 404, f"unknown method {method!r}"), status_code=404)
            return await self._handle("google", request, model)

        return app

    async def _handle(self, dialect: Dialect, request: Request, google_model: str | None) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode(errors="replace")
        recorded = Recorded(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            json=body,
            dialect=dialect,
        )
        if self.authorize is not None and not self.authorize(recorded.headers):
            with self._lock:
                self._requests.append(recorded)
            return JSONResponse(error_body(dialect, 401, "invalid or expired credentials"), status_code=401)
        script = self._next(recorded)
        if script.delay:
            await asyncio.sleep(script.delay)
        headers = dict(script.headers)
        if script.raw is not None:
            return Response(script.raw, status_code=script.status, headers=headers, media_type="application/json")
        if script.body is not _UNSET:
            return JSONResponse(script.body, status_code=script.status, headers=headers)
        if script.status >= 400:
            message = script.error or f"scripted HTTP {script.status}"
            return JSONResponse(
                error_body(dialect, script.status, message, script.error_type),
                status_code=script.status,
                headers=headers,
            )
        if not isinstance(body, dict):
            return JSONResponse(error_body(dialect, 400, "request body is not a JSON object"), status_code=400)

        if dialect == "openai":
            stream = bool(body.get("stream"))
            answer = self._openai_answer(body, script)
            if stream:
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return self._stream(self._openai_events(answer, include_usage, script), headers)
            return JSONResponse(self._openai_body(answer), status_code=script.status, headers=headers)
        if dialect == "anthropic":
            stream = bool(body.get("stream"))
            answer = self._anthropic_answer(body, script)
            if stream:
                return self._stream(self._anthropic_events(answer, script), headers)
            return JSONResponse(self._anthropic_body(answer), status_code=script.status, headers=headers)
        assert google_model is not None
        stream = request.url.path.endswith(":streamGenerateContent")
        answer = self._google_answer(body, google_model, script)
        if stream:
            return self._stream(self._google_events(answer, script), headers)
        return JSONResponse(
            self._google_body(answer, self._google_parts(answer), answer.finish_reason, answer.output_tokens),
            status_code=script.status,
            headers=headers,
        )

    @staticmethod
    def _stream(events: AsyncIterator[bytes], headers: dict[str, str]) -> StreamingResponse:
        return StreamingResponse(
            events, media_type="text/event-stream", headers={"cache-control": "no-cache", **headers}
        )

    def _structured_text(self, schema: dict[str, Any], script: Script) -> str:
        if script.text is not None:
            return script.text
        value = script.output if script.output is not _UNSET else sample_from_schema(schema)
        return json.dumps(value)

    def _scripted_calls(self, script: Script, default_id: str | None) -> list[_Call]:
        """The scripted tool calls; ``default_id`` is the id prefix of a call given none (None: no id)."""
        calls = []
        for entry in script.tool_calls or []:
            arguments = entry.get("arguments", {})
            calls.append(
                _Call(
                    id=entry.get("id") or (f"{default_id}{next(self._ids)}" if default_id else None),
                    name=str(entry["name"]),
                    arguments=arguments if isinstance(arguments, str) else json.dumps(arguments),
                    signature=entry.get("signature"),
                )
            )
        return calls

    def _forced_answer(self, schema: dict[str, Any], script: Script) -> Any:
        return script.output if script.output is not _UNSET else sample_from_schema(schema)

    @staticmethod
    def _with_calls(answer: _Answer, calls: list[_Call], text: str | None, finish_reason: str) -> _Answer:
        """``answer`` turned into a tool-call turn: the calls, the scripted text before them, tokens for both."""
        answer.text = text or ""
        answer.calls = calls
        answer.output_tokens = words(answer.text) + sum(words(call.arguments) for call in calls)
        answer.finish_reason = finish_reason
        return answer

    # -- OpenAI Chat Completions -------------------------------------------

    def _openai_answer(self, body: dict[str, Any], script: Script) -> _Answer:
        messages: list[dict[str, Any]] = body.get("messages") or []
        prompt = [_text_of(m.get("content")) for m in messages]
        last_user = next((_text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        response_format = body.get("response_format") or {}
        schema = (
            (response_format.get("json_schema") or {}).get("schema")
            if response_format.get("type") == "json_schema"
            else None
        )
        answer = self._text_answer(
            prompt,
            last_user,
            schema,
            response_format.get("type") == "json_object",
            script,
            model=script.model or str(body.get("model", "")),
            finish_reason="stop",
        )
        answer.logprobs = bool(body.get("logprobs"))
        if script.tool_calls:
            calls = self._scripted_calls(script, "call_wire_")
            return self._with_calls(answer, calls, script.text, script.finish_reason or "tool_calls")
        return answer

    def _openai_body(self, answer: _Answer) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None}
        if answer.calls:
            message["content"] = answer.text or None
            message["tool_calls"] = [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
                for call in answer.calls
            ]
        return {
            "id": f"chatcmpl-wire-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": answer.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": answer.finish_reason,
                    "logprobs": _logprobs(answer.text) if answer.logprobs else None,
                }
            ],
            "usage": {
                "prompt_tokens": answer.input_tokens,
                "completion_tokens": answer.output_tokens,
                "total_tokens": answer.input_tokens + answer.output_tokens,
            },
        }

    async def _openai_events(self, answer: _Answer, include_usage: bool, script: Script) -> AsyncIterator[bytes]:
        ident = f"chatcmpl-wire-{next(self._ids)}"
        created = int(time.time())

        def chunk(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
            data: dict[str, Any] = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": answer.model,
                "choices": choices,
            }
            if include_usage:
                data["usage"] = usage
            return _sse(data)

        def delta(content: dict[str, Any]) -> bytes:
            text = content.get("content")
            logprobs = _logprobs(text) if answer.logprobs and text else None
            return chunk([{"index": 0, "delta": content, "finish_reason": None, "logprobs": logprobs}])

        deltas = [{"content": piece} for piece in pieces(answer.text)] if answer.text or not answer.calls else []
        for index, call in enumerate(answer.calls):
            # The id, type and name come once, in the call's first delta; the arguments follow in fragments.
            head = {"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
            deltas.append({"tool_calls": [head]})
            deltas += [
                {"tool_calls": [{"index": index, "function": {"arguments": part}}]}
                for part in fragments(call.arguments)
            ]
        yield delta({"role": "assistant", "content": ""})
        for i, content in enumerate(deltas):
            yield delta(content)
            if script.stream_error is not None and i == 0:
                yield _sse(
                    error_body("openai", script.stream_error, script.error or "stream interrupted", script.error_type)
                )
                return
            await asyncio.sleep(0)
        yield chunk([{"index": 0, "delta": {}, "finish_reason": answer.finish_reason}])
        if include_usage:
            total = answer.input_tokens + answer.output_tokens
            yield chunk(
                [],
                {
                    "prompt_tokens": answer.input_tokens,
                    "completion_tokens": answer.output_tokens,
                    "total_tokens": total,
                },
            )
        yield _sse("[DONE]")

    # -- Anthropic Messages --------------------------------------------------

    def _anthropic_answer(self, body: dict[str, Any], script: Script) -> _Answer:
        messages: list[dict[str, Any]] = body.get("messages") or []
        prompt = [_text_of(body.get("system"))] + [_text_of(m.get("content")) for m in messages]
        last_user = next((_text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        choice = body.get("tool_choice") or {}
        tools = {t.get("name"): t for t in body.get("tools") or []}
        # A forced tool (``tool``), or ``any`` with the final-answer tool offered: answered through that tool.
        forced_name = choice.get("name") if choice.get("type") == "tool" else None
        if choice.get("type") == "any" and "final_answer" in tools:
            forced_name = "final_answer"
        forced = tools.get(forced_name) if forced_name else None
        answer = _Answer(
            text=script.text if script.text is not None else f"echo: {last_user}",
            input_tokens=sum(words(p) for p in prompt),
            output_tokens=0,
            model=script.model or str(body.get("model", "")),
            finish_reason=script.finish_reason or "end_turn",
        )
        answer.output_tokens = words(answer.text)
        if script.tool_calls:
            calls = self._scripted_calls(script, "toolu_wire_")
            return self._with_calls(answer, calls, script.text, script.finish_reason or "tool_use")
        if forced is not None and script.text is None:
            value = self._forced_answer(forced.get("input_schema") or {}, script)
            call = _Call(id=f"toolu_wire_{next(self._ids)}", name=forced["name"], arguments=json.dumps(value))
            self._with_calls(answer, [call], None, script.finish_reason or "tool_use")
        return answer

    def _anthropic_content(self, answer: _Answer) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = (
            [{"type": "text", "text": answer.text}] if answer.text or not answer.calls else []
        )
        content += [
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments_value()}
            for call in answer.calls
        ]
        return content

    def _anthropic_body(self, answer: _Answer, content: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {
            "id": f"msg_wire_{next(self._ids)}",
            "type": "message",
            "role": "assistant",
            "model": answer.model,
            "content": self._anthropic_content(answer) if content is None else content,
            "stop_reason": answer.finish_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens},
        }

    async def _anthropic_events(self, answer: _Answer, script: Script) -> AsyncIterator[bytes]:
        start = self._anthropic_body(answer, content=[])
        start.update(stop_reason=None, usage={"input_tokens": answer.input_tokens, "output_tokens": 1})
        yield _sse({"type": "message_start", "message": start}, "message_start")
        blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        if answer.text or not answer.calls:
            deltas = [{"type": "text_delta", "text": p} for p in pieces(answer.text)]
            blocks.append(({"type": "text", "text": ""}, deltas))
        for call in answer.calls:
            block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
            blocks.append((block, [{"type": "input_json_delta", "partial_json": p} for p in fragments(call.arguments)]))
        sent = 0
        for index, (block, deltas) in enumerate(blocks):
            yield _sse({"type": "content_block_start", "index": index, "content_block": block}, "content_block_start")
            if index == 0:
                yield _sse({"type": "ping"}, "ping")
            for delta in deltas:
                yield _sse({"type": "content_block_delta", "index": index, "delta": delta}, "content_block_delta")
                sent += 1
                if script.stream_error is not None and sent == 1:
                    message = script.error or "stream interrupted"
                    yield _sse(error_body("anthropic", script.stream_error, message, script.error_type), "error")
                    return
                await asyncio.sleep(0)
            yield _sse({"type": "content_block_stop", "index": index}, "content_block_stop")
        yield _sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": answer.finish_reason, "stop_sequence": None},
                "usage": {"output_tokens": answer.output_tokens},
            },
            "message_delta",
        )
        yield _sse({"type": "message_stop"}, "message_stop")

    # -- Google Gemini -------------------------------------------------------

    def _google_answer(self, body: dict[str, Any], model: str, script: Script) -> _Answer:
        contents: list[dict[str, Any]] = body.get("contents") or []
        system = body.get("systemInstruction") or {}
        prompt = [_text_of(system.get("parts"))] + [_text_of(c.get("parts")) for c in contents]
        last_user = next((_text_of(c.get("parts")) for c in reversed(contents) if c.get("role", "user") == "user"), "")
        config = body.get("generationConfig") or {}
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        answer = self._text_answer(
            prompt,
            last_user,
            schema,
            config.get("responseMimeType") == "application/json",
            script,
            model=script.model or model,
            finish_reason="STOP",
        )
        if script.tool_calls:
            calls = self._scripted_calls(script, None)
            return self._with_calls(answer, calls, script.text, script.finish_reason or "STOP")
        mode = ((body.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode")
        declarations = {d.get("name"): d for d in google_declarations(body)}
        forced = declarations.get("final_answer")
        if mode == "ANY" and forced is not None and script.text is None:
            # google-genai sends the proto field name (``parameters_json_schema``); proto JSON accepts either.
            schema = next((forced[k] for k in _GOOGLE_SCHEMA_FIELDS if k in forced), {})
            value = self._forced_answer(schema, script)
            call = _Call(id=None, name="final_answer", arguments=json.dumps(value))
            self._with_calls(answer, [call], None, script.finish_reason or "STOP")
        return answer

    def _text_answer(
        self,
        prompt: list[str],
        last_user: str,
        schema: Any,
        json_mode: bool,
        script: Script,
        *,
        model: str,
        finish_reason: str,
    ) -> _Answer:
        """The answer of the dialects whose reply is text (OpenAI, Google): structured, JSON mode, or an echo."""
        if schema is not None:
            text = self._structured_text(schema, script)
        elif json_mode:
            text = (
                script.text
                if script.text is not None
                else json.dumps(script.output if script.output is not _UNSET else {"echo": last_user})
            )
        else:
            text = script.text if script.text is not None else f"echo: {last_user}"
        return _Answer(
            text=text,
            input_tokens=sum(words(p) for p in prompt),
            output_tokens=words(text),
            model=model,
            finish_reason=script.finish_reason or finish_reason,
        )

    @staticmethod
    def _google_call_part(call: _Call) -> dict[str, Any]:
        function_call: dict[str, Any] = {"name": call.name, "args": call.arguments_value()}
        if call.id:
            function_call["id"] = call.id
        part: dict[str, Any] = {"functionCall": function_call}
        if call.signature:
            part["thoughtSignature"] = call.signature
        return part

    def _google_body(
        self, answer: _Answer, parts: list[dict[str, Any]], finish_reason: str | None, output_tokens: int
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish_reason is not None:
            candidate["finishReason"] = finish_reason
        return {
            "candidates": [candidate],
            "usageMetadata": {
                "promptTokenCount": answer.input_tokens,
                "candidatesTokenCount": output_tokens,
                "totalTokenCount": answer.input_tokens + output_tokens,
            },
            "modelVersion": answer.model,
            "responseId": "wire-response",
        }

    def _google_parts(self, answer: _Answer) -> list[dict[str, Any]]:
        parts = [{"text": answer.text}] if answer.text or not answer.calls else []
        return parts + [self._google_call_part(call) for call in answer.calls]

    async def _google_events(self, answer: _Answer, script: Script) -> AsyncIterator[bytes]:
        # Like Gemini: every chunk carries the running usage, the last one the finish reason; calls come whole.
        chunks: list[list[dict[str, Any]]] = (
            [[{"text": piece}] for piece in pieces(answer.text)] if answer.text or not answer.calls else []
        )
        if answer.calls:
            chunks.append([self._google_call_part(call) for call in answer.calls])
        sent = ""
        for i, parts in enumerate(chunks):
            sent += "".join(part.get("text", "") for part in parts)
            last = i == len(chunks) - 1
            tokens = answer.output_tokens if last and answer.calls else words(sent)
            yield _sse(self._google_body(answer, parts, answer.finish_reason if last else None, tokens))
            if script.stream_error is not None and i == 0:
                yield _sse(
                    error_body("google", script.stream_error, script.error or "stream interrupted", script.error_type)
                )
                return
            await asyncio.sleep(0)


def free_port() -> int:
    """A port nothing listens on (bound, then released), for connection-refused tests."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
