"""An MCP server with the awkward tools an MCP client must survive, for tests/integration/mcp.

Tools that raise, sleep, return too much, return no text, return an image,
refuse to exit, and report what the server saw (its pid, its session, a request
header). It records what only the server can know in files the test names
through the environment:

- ``MCP_TEST_STARTS``: one line with the pid per process start;
- ``MCP_TEST_HEADERS``: one line per ``record_header`` call, the header's value as received.

Run over stdio (``python mcp_test_server.py``) or streamable HTTP (``--http PORT``, on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import signal
import threading
from pathlib import Path

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ImageContent, TextContent

server = MCPServer("awkward", log_level="ERROR")
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def _append(variable: str, line: str) -> None:
    path = os.environ.get(variable)
    if path:
        with Path(path).open("a", encoding="utf-8") as file:
            file.write(line + "\n")


@server.tool()
def fail(message: str) -> str:
    """Raise a tool error whose message the client sees."""
    raise ToolError(message)


@server.tool()
def crash() -> str:
    """Raise an unexpected exception (the SDK keeps its text on the server)."""
    raise RuntimeError("an unexpected failure")


@server.tool()
async def sleep(seconds: float) -> str:
    """Answer after ``seconds``."""
    await asyncio.sleep(seconds)
    return f"slept {seconds:g} s"


@server.tool()
def big(chars: int) -> str:
    """Return ``chars`` characters of text."""
    return "x" * chars


@server.tool()
def structured() -> CallToolResult:
    """Return structured content and no text block."""
    return CallToolResult(content=[], structured_content={"answer": 42})


@server.tool()
def picture() -> CallToolResult:
    """Return a caption and a one-pixel PNG."""
    image = ImageContent(data=base64.b64encode(PIXEL).decode(), mime_type="image/png")
    return CallToolResult(content=[TextContent(text="a pixel"), image])


@server.tool()
def whoami(ctx: Context) -> str:
    """This process and this session: ``pid session-id`` (the session id is the HTTP one, ``-`` over stdio)."""
    headers = ctx.headers or {}
    return f"{os.getpid()} {headers.get('mcp-session-id', '-')}"


@server.tool()
async def linger() -> str:
    """Make this process outlive its stdin: ignore SIGTERM, keep a thread that never ends (async: main thread)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=threading.Event().wait, daemon=False).start()
    return "lingering"


@server.tool()
def record_header(name: str, ctx: Context) -> str:
    """Record the value of request header ``name`` (server side), and echo it."""
    value = (ctx.headers or {}).get(name.lower(), "")
    _append("MCP_TEST_HEADERS", value)
    return f"{name}: {value}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, metavar="PORT")
    port = parser.parse_args().http
    _append("MCP_TEST_STARTS", str(os.getpid()))
    if port is None:
        server.run()
    else:
        server.run("streamable-http", host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
