"""Tools from MCP servers: one session per server and run, opened at first use, closed when the run ends.

An agent step's ``mcpServers`` (:class:`~agentparty.models.tools.McpServer`) are
commands to start (stdio) or URLs to reach (streamable HTTP), spoken to through
the official ``mcp`` SDK. :class:`McpPool` holds the connections of one workflow
run: every step of the run that names the same server (its name and transport)
shares one session, so a server process starts once per run, not once per step
or per call, and :meth:`McpPool.aclose` ends them all at the run's end. A step
reaches a server through :meth:`McpPool.connect`, which gives it an
:class:`McpToolSource`: its own config's view (tool filter, limits) of the
shared session.

Why a background task per connection: the SDK's transports and ``ClientSession``
are anyio context managers whose task groups and cancel scopes must be exited by
the very task that entered them, yet an agent's tool calls come from many tasks
(each step, each parallel call) and the run's end from yet another. So each
:class:`McpConnection` runs one asyncio task that owns the ``async with`` blocks:
it starts or reaches the server, initialises the session once, then waits for
its close event. Requests from any task of the same event loop go through the
session's memory streams, which anyio allows across tasks. Closing sets the
event and waits for that task to unwind, bounded by ``close_timeout``; one that
overruns is cancelled through anyio, never ``task.cancel()``, so the stdio
transport's shielded, bounded shutdown (stdin closed, SIGTERM, SIGKILL) still
ends the server while the run's end moves on.

Failures never escape a call: a tool error (``isError``), a timeout, a broken
connection or a protocol error each become an error :class:`ToolResult` that the
model reads and may act on. Listing is different: a server that cannot be
started, reached or listed is a configuration problem, raised at first use as
:class:`McpServerError` naming the server and why. Secrets (``env`` values
written ``${VAR}``, ``headerEnv`` values) are read from the environment when
connecting, registered with :mod:`agentparty.runtime.secrets`, and redacted from
every error and result.

The session uses the ``initialize`` handshake, which every MCP server speaks
(older SDKs included), rather than the 2026 ``server/discover`` probe.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

import anyio
import httpx2
import mcp.types as mcp_types
import pydantic_core
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from agentparty.models.tools import McpServer, ToolResult, ToolSpec, check_mcp_url, truncated_text
from agentparty.runtime.secrets import redact, register

__all__ = ["McpConnection", "McpPool", "McpServerError", "McpToolSource", "offered", "result_text", "server_key"]

logger = logging.getLogger("agentparty.mcp")

DEFAULT_CONNECT_TIMEOUT_S: Final = 30.0
"""Seconds to start or reach a server and finish the handshake, and to list its tools."""
DEFAULT_CLOSE_TIMEOUT_S: Final = 10.0
"""Seconds a connection may take to close before its task is cancelled: more than the stdio transport's own
bounded shutdown (stdin closed, 2 s, SIGTERM, 2 s, SIGKILL, 2 s), so that a stuck server is still killed."""
_CANCEL_GRACE_S: Final = 2.0
_MAX_TOOL_PAGES: Final = 100
"""A server whose tool listing never ends cannot hang a step."""
_HTTP_TIMEOUT: Final = httpx2.Timeout(30.0, read=300.0)
"""The SDK's own defaults: the read timeout is long because a server may hold an event stream open."""
_ENV_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_CLIENT_INFO: Final = mcp_types.Implementation(name="agentparty", version="0.1.0")

ServerKey = tuple[str, ...]


class McpServerError(RuntimeError):
    """An MCP server cannot be used: it could not be started, reached or listed (the message names it and why)."""


def server_key(server: McpServer, cwd: Path | None = None) -> ServerKey:
    """What makes two configs one connection: the name and the transport (not the tool filter or the limits)."""
    if server.command is not None:
        env = (f"{name}={value}" for name, value in sorted(server.env.items()))
        return (server.name, "stdio", str(cwd or ""), shlex.join(server.command), *env)
    headers = (f"{name}: {value}" for name, value in sorted(server.headers.items()))
    header_env = (f"{name}: ${{{var}}}" for name, var in sorted(server.header_env.items()))
    return (server.name, "http", server.url or "", *headers, *header_env)


def _where(server: McpServer) -> str:
    if server.command is not None:
        return f"command {shlex.join(server.command)!r}"
    return f"url {redact(server.url or '')!r}"


def _reason(exc: BaseException) -> str:
    """One line per underlying failure: task groups wrap the transport's errors in exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(dict.fromkeys(_reason(inner) for inner in exc.exceptions))
    if isinstance(exc, McpServerError):
        return str(exc)
    if isinstance(exc, TimeoutError) and not str(exc):
        return "timed out"
    return redact(f"{type(exc).__name__}: {exc}".rstrip(": "))


def _server_stderr() -> TextIO:
    """Where a stdio server's stderr goes: ours, when it is a real file (a replaced ``sys.stderr`` may not be)."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.__stderr__ or sys.stderr
    return sys.stderr


class McpConnection:
    """One open MCP session with one server, served by a background task; usable from any task of one event loop."""

    def __init__(
        self,
        server: McpServer,
        *,
        cwd: Path | None = None,
        environ: Mapping[str, str] | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT_S,
    ) -> None:
        """``cwd``: the stdio server's working directory (the definition's folder); ``environ``: where ``${VAR}``
        and ``headerEnv`` values are read when connecting (the process environment by default: secrets pass
        through from the worker, never stored)."""
        if server.is_reference:
            raise McpServerError(f"MCP server {server.name!r} is a reference: resolve it to a command or url first")
        self.server = server
        self._cwd = cwd
        self._environ = environ if environ is not None else os.environ
        self._connect_timeout = connect_timeout
        self._close_timeout = close_timeout
        self._task: asyncio.Task[None] | None = None
        self._session: ClientSession | None = None
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()
        self._failure: str | None = None
        self._closed = False
        self._broken = False
        self._scope = anyio.CancelScope()
        """The background task's scope: cancelled (never the task itself) when closing overruns its time."""

    @property
    def label(self) -> str:
        """How messages name the server: ``MCP server 'docs' (command 'python server.py')``."""
        return f"MCP server {self.server.name!r} ({_where(self.server)})"

    @property
    def ended(self) -> bool:
        """Closed, failed to open, or broken: this connection serves no more calls."""
        return self._closed or self._broken or (self._task is not None and self._task.done())

    async def open(self) -> None:
        """Start the background task on first use and wait until the session is initialised (or failed)."""
        if self._closed or self._broken:
            raise McpServerError(f"{self.label}: the connection {'broke' if self._broken else 'is closed'}")
        if self._task is None:
            self._task = asyncio.create_task(self._serve(), name=f"mcp-{self.server.name}")
        await self._ready.wait()
        if self._session is None:
            raise McpServerError(f"{self.label} could not be used: {self._failure or 'the connection ended'}")

    async def _serve(self) -> None:
        """The connection's own task: enters the transport and the session, and exits them, in this one task."""
        try:
            with self._scope:
                await self._run_session()
        except Exception as exc:  # recorded for open() and for the calls that find the connection gone
            self._failure = _reason(exc)
            if self._session is not None and not self._closing.is_set():
                logger.warning("%s: the connection broke: %s", self.label, self._failure)
        finally:
            self._session = None
            self._ready.set()

    async def _run_session(self) -> None:
        """Enter the transport and the session, initialise, serve until closing; exit both (in this task)."""
        async with AsyncExitStack() as stack:
            if self.server.command is not None:
                parameters = self._stdio_parameters()
                read, write = await stack.enter_async_context(stdio_client(parameters, errlog=_server_stderr()))
            else:
                url = self.server.url or ""
                check_mcp_url(url)
                http = await stack.enter_async_context(
                    httpx2.AsyncClient(headers=self._http_headers(), timeout=_HTTP_TIMEOUT)
                )
                read, write = await stack.enter_async_context(streamable_http_client(url, http_client=http))
            session = await stack.enter_async_context(ClientSession(read, write, client_info=_CLIENT_INFO))
            try:
                with anyio.fail_after(self._connect_timeout):
                    await session.initialize()
            except TimeoutError:
                raise McpServerError(f"no answer to the handshake within {self._connect_timeout:g} s") from None
            self._session = session
            self._ready.set()
            await self._closing.wait()

    def _resolved(self, value: str, what: str) -> str:
        """``${VAR}`` → the variable's value (registered as a secret); anything else as written."""
        match = _ENV_REFERENCE.match(value)
        if match is None:
            return value
        return self._secret(match.group(1), what)

    def _secret(self, variable: str, what: str) -> str:
        value = self._environ.get(variable)
        if not value:
            raise McpServerError(f"environment variable {variable} ({what}) is not set")
        register(value)
        return value

    def _stdio_parameters(self) -> StdioServerParameters:
        command = list(self.server.command or [])
        # "python" is the interpreter running the engine, so a server next to the definition sees our packages.
        executable = sys.executable if command[0] == "python" else command[0]
        env = {name: self._resolved(value, f"env {name}") for name, value in self.server.env.items()}
        return StdioServerParameters(command=executable, args=command[1:], env=env, cwd=self._cwd)

    def _http_headers(self) -> dict[str, str]:
        secrets = {name: self._secret(variable, f"header {name}") for name, variable in self.server.header_env.items()}
        return {**self.server.headers, **secrets}

    async def _opened(self) -> ClientSession:
        await self.open()
        session = self._session
        if session is None:  # broke between the handshake and now
            raise McpServerError(f"{self.label}: the connection ended: {self._failure or 'closed'}")
        return session

    async def server_tools(self) -> list[ToolSpec]:
        """Every tool the server lists, all pages, as the model would be offered them (no filter)."""
        session = await self._opened()
        tools: list[mcp_types.Tool] = []
        cursor: str | None = None
        try:
            with anyio.fail_after(self._connect_timeout):
                for _ in range(_MAX_TOOL_PAGES):
                    params = mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None
                    page = await session.list_tools(params=params)
                    tools.extend(page.tools)
                    cursor = page.next_cursor
                    if not cursor:
                        break
        except Exception as exc:  # a broken session, a protocol error or a timeout: the server cannot be offered
            self._note_closed(exc)
            raise McpServerError(f"{self.label}: listing its tools failed: {_reason(exc)}") from None
        return [_spec(tool) for tool in tools]

    async def list_tools(self) -> list[ToolSpec]:
        """The tools to offer the model: the server's, only those named by the config's ``tools`` when set."""
        return offered(self.server, await self.server_tools())

    async def call(
        self,
        call_id: str,
        name: str,
        arguments: Mapping[str, Any],
        timeout: float | None = None,
        max_result_chars: int | None = None,
    ) -> ToolResult:
        """Call one tool; every failure (tool error, timeout, broken connection, protocol error) is an error result.

        ``timeout`` and ``max_result_chars`` default to the config's. Results are redacted of every registered
        secret (a server that echoes a token must not hand it to the model) and truncated like Python tools'.
        """
        seconds = self.server.timeout if timeout is None else timeout
        max_chars = self.server.max_result_chars if max_result_chars is None else max_result_chars

        def failed(message: str) -> ToolResult:
            return _truncated(call_id, name, redact(message), max_chars, is_error=True)

        try:
            session = await self._opened()
            with anyio.fail_after(seconds):
                result = await session.call_tool(name, dict(arguments))
        except TimeoutError:
            return failed(f"timed out after {seconds:g} s")
        except McpServerError as exc:
            return failed(str(exc))
        except MCPError as exc:  # a JSON-RPC error: unknown tool, invalid arguments, or the connection closed
            self._note_closed(exc)
            return failed(f"{self.label}: {exc.message}")
        except Exception as exc:  # anything else the SDK raises: the model sees it, the run goes on
            return failed(f"{self.label}: {_reason(exc)}")
        return _truncated(call_id, name, redact(result_text(result)), max_chars, is_error=result.is_error)

    def _note_closed(self, exc: BaseException) -> None:
        """A request answered "connection closed": the server went away (a stdio server that exits ends its
        stream without an error the background task could see), so end the task and let the pool replace it."""
        if isinstance(exc, MCPError) and exc.code == mcp_types.CONNECTION_CLOSED and not self._broken:
            self._broken = True
            self._failure = self._failure or "the server closed the connection"
            logger.warning("%s: %s", self.label, self._failure)
            self._closing.set()

    async def aclose(self) -> None:
        """End the session and the server (stdio) or the HTTP session; bounded, and safe to call twice."""
        self._closed = True
        task = self._task
        if task is None or task.done():
            return
        self._closing.set()
        done, _ = await asyncio.wait({task}, timeout=self._close_timeout)
        if done:
            return
        # An anyio cancel, not task.cancel(): the stdio transport shields its shutdown (stdin closed, then SIGTERM,
        # then SIGKILL, each wait bounded) from the former only, so the server process is still ended.
        self._scope.cancel()
        done, _ = await asyncio.wait({task}, timeout=_CANCEL_GRACE_S)
        if not done:
            waited = self._close_timeout + _CANCEL_GRACE_S
            logger.warning("%s did not close within %g s; it goes on closing in the background", self.label, waited)


def _spec(tool: mcp_types.Tool) -> ToolSpec:
    description = tool.description or tool.title or tool.name
    return ToolSpec(name=tool.name, description=description, parameters=tool.input_schema, source="mcp")


def offered(server: McpServer, tools: Sequence[ToolSpec]) -> list[ToolSpec]:
    """``tools`` less those the config leaves out; a tool the config names that the server lacks is an error."""
    if server.tools is None:
        return list(tools)
    names = {tool.name for tool in tools}
    missing = [name for name in server.tools if name not in names]
    if missing:
        raise McpServerError(
            f"MCP server {server.name!r} has no tool {', '.join(map(repr, missing))} (it has: {', '.join(sorted(names))})"
        )
    return [tool for tool in tools if tool.name in server.tools]


def result_text(result: mcp_types.CallToolResult) -> str:
    """A tool's result as the text the model reads: its text blocks, other blocks described in a line.

    ``structuredContent`` is shown (as JSON) only when there is no text: a server that returns both sends the
    same data twice, and the text is what it meant the model to read.
    """
    parts = [_block_text(block) for block in result.content]
    has_text = any(isinstance(block, mcp_types.TextContent) for block in result.content)
    if not has_text and result.structured_content is not None:
        parts.insert(0, pydantic_core.to_json(result.structured_content, fallback=str).decode())
    return "\n".join(parts)


def _block_text(block: mcp_types.ContentBlock) -> str:
    if isinstance(block, mcp_types.TextContent):
        return block.text
    if isinstance(block, mcp_types.ImageContent | mcp_types.AudioContent):
        return f"[{block.mime_type}, {_decoded_size(block.data)} bytes]"
    if isinstance(block, mcp_types.ResourceLink):
        return f"[resource link {block.uri}{', ' + block.mime_type if block.mime_type else ''}]"
    if isinstance(block, mcp_types.EmbeddedResource):
        resource = block.resource
        if isinstance(resource, mcp_types.TextResourceContents):
            return f"[resource {resource.uri}]\n{resource.text}"
        return f"[resource {resource.uri}, {resource.mime_type or 'binary'}, {_decoded_size(resource.blob)} bytes]"
    return f"[{getattr(block, 'type', 'unknown')} content]"


def _decoded_size(data: str) -> int:
    """Bytes that base64 ``data`` holds, without decoding it (an image may be megabytes)."""
    return len("".join(data.split()).rstrip("=")) * 3 // 4


def _truncated(call_id: str, name: str, text: str, max_chars: int, *, is_error: bool = False) -> ToolResult:
    """What ``tasks.tools.rendered`` makes of a string: the same cap, the same note (``truncated_text``)."""
    text, truncated = truncated_text(text, max_chars)
    return ToolResult(call_id=call_id, name=name, content=text, is_error=is_error, truncated=truncated)


@dataclass(frozen=True)
class McpToolSource:
    """One step's view of a shared connection: the run's session, with this config's tool filter and limits."""

    connection: McpConnection
    server: McpServer

    async def list_tools(self) -> list[ToolSpec]:
        """The server's tools that this config offers (its ``tools``, all when unset); raises McpServerError."""
        return offered(self.server, await self.connection.server_tools())

    async def call(
        self,
        call_id: str,
        name: str,
        arguments: Mapping[str, Any],
        timeout: float | None = None,
        max_result_chars: int | None = None,
    ) -> ToolResult:
        """Like :meth:`McpConnection.call`, with this config's limits by default; a tool it does not offer is
        refused as an error result without calling the server."""
        max_chars = self.server.max_result_chars if max_result_chars is None else max_result_chars
        if self.server.tools is not None and name not in self.server.tools:
            message = f"tool {name!r} is not offered by MCP server {self.server.name!r}"
            return _truncated(call_id, name, message, max_chars, is_error=True)
        seconds = self.server.timeout if timeout is None else timeout
        return await self.connection.call(call_id, name, arguments, seconds, max_chars)


class McpPool:
    """The MCP connections of one workflow run: opened at first use, shared by its steps, closed at its end.

    Keyed by :func:`server_key` (name and transport): steps that name the same server with different tool filters
    or limits share one session, each through its own :class:`McpToolSource`. A connection that failed to open or
    broke is replaced at its next use. The pool belongs to the event loop it is first used on (its connections'
    tasks live there).
    """

    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT_S,
    ) -> None:
        self._environ = environ
        self._connect_timeout = connect_timeout
        self._close_timeout = close_timeout
        self._connections: dict[ServerKey, McpConnection] = {}
        self._replaced: list[McpConnection] = []
        """Connections that broke and were replaced: still closed with the rest, so no task or process outlives the run."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def __aenter__(self) -> McpPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def connect(self, server: McpServer, cwd: Path | None = None) -> McpToolSource:
        """The run's open connection to ``server``, opened now at its first use; McpServerError names the server
        and why when it cannot be started or reached. ``cwd``: a stdio server's working directory."""
        if self._closed:
            raise McpServerError(f"MCP server {server.name!r}: the run's MCP connections are closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise McpServerError("an McpPool serves the event loop it was first used on; this is another one")
        key = server_key(server, cwd)
        connection = self._connections.get(key)
        if connection is None or connection.ended:
            if connection is not None:
                self._replaced.append(connection)
            connection = McpConnection(
                server,
                cwd=cwd,
                environ=self._environ,
                connect_timeout=self._connect_timeout,
                close_timeout=self._close_timeout,
            )
            self._connections[key] = connection
        await connection.open()
        return McpToolSource(connection, server)

    @property
    def open_connections(self) -> int:
        """Connections that serve calls now (not failed, broken or closed)."""
        return sum(1 for connection in self._connections.values() if not connection.ended)

    async def aclose(self) -> None:
        """Close every connection at once, each bounded by ``close_timeout``; a second call does nothing."""
        self._closed = True
        connections = [*self._connections.values(), *self._replaced]
        self._connections.clear()
        self._replaced.clear()
        if connections:
            await asyncio.gather(*(connection.aclose() for connection in connections))
