"""MCP tools against real MCP servers: the example docs server and an awkward test server, over stdio and HTTP.

Each server is a real process speaking the protocol through the official SDK:
stdio servers are started by the client under test, HTTP servers by the fixtures
below on free loopback ports. What only a server can know (how many times it
started, which header it received) it writes to files named in its environment,
so the checks do not rely on the client's own account. No network beyond loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mcp.types as mcp_types
import psutil
import pytest
from support.workflow_docs import EXAMPLES, REPO_ROOT

from agentparty.models.tools import McpServer, PythonTool, ToolSpec
from agentparty.runtime.local_service import free_port
from agentparty.runtime.mcp_tools import McpConnection, McpPool, McpServerError, result_text
from agentparty.runtime.secrets import REDACTED
from agentparty.tasks.handlers import load_handler
from agentparty.tasks.tools import ToolContext, function_tool, rendered

TEST_SERVER = REPO_ROOT / "tests" / "support" / "mcp_test_server.py"
DOCS = McpServer(name="docs", command=["python", "mcp_docs_server.py"])
QUERY = "graph neural networks link prediction"
search = load_handler("docsearch:search", [EXAMPLES])
"""The corpus search both the Python tool and the example MCP server call (``examples/docsearch.py``)."""


class HttpServer:
    """An MCP server process serving streamable HTTP on a free loopback port, until the fixture ends."""

    def __init__(self, script: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(script), "--http", str(self.port)],
                cwd=script.parent,
                env={**os.environ, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_it_answers(log)

    def _wait_until_it_answers(self, log: Path, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the MCP server exited with {self.process.returncode}: {log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"the MCP server did not listen within {timeout:g} s: {log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def docs_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    server = HttpServer(EXAMPLES / "mcp_docs_server.py", tmp_path_factory.mktemp("docs-http") / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def awkward_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HttpServer, Path]]:
    """The test server over HTTP, and the file where it records the request headers it was asked about."""
    folder = tmp_path_factory.mktemp("awkward-http")
    headers = folder / "headers.txt"
    server = HttpServer(TEST_SERVER, folder / "server.log", {"MCP_TEST_HEADERS": str(headers)})
    yield server, headers
    server.stop()


def awkward(starts: Path | None = None, env: dict[str, str] | None = None, **options: Any) -> McpServer:
    """The test server over stdio; ``starts`` is where it writes its pid each time it starts."""
    recorded = {"MCP_TEST_STARTS": str(starts)} if starts else {}
    return McpServer(name="awkward", command=["python", str(TEST_SERVER)], env={**recorded, **(env or {})}, **options)


def python_tool(query: str, limit: int) -> tuple[ToolSpec, str]:
    """The Python tool ``handlers:search_docs`` as the model is offered it, and its answer to the same query."""
    tool = function_tool(PythonTool(function="handlers:search_docs"), [EXAMPLES])
    context = ToolContext(run_key="r", step_id="s", slot="s", turn=1, call_id="p", idempotency_key="k")
    return tool.spec, asyncio.run(tool.call("p", {"query": query, "limit": limit}, context)).content


async def search_through(server: McpServer, cwd: Path | None = None) -> tuple[list[ToolSpec], str]:
    async with McpPool() as pool:
        source = await pool.connect(server, cwd)
        tools = await source.list_tools()
        result = await source.call("c1", "search_docs", {"query": QUERY, "limit": 2})
    assert not result.is_error, result.content
    return tools, result.content


def check_docs_answers(tools: list[ToolSpec], content: str) -> None:
    """The MCP tool is the Python tool offered another way: the same description, arguments and answer."""
    [tool] = tools
    python_spec, python_content = python_tool(QUERY, 2)
    assert (tool.name, tool.source) == ("search_docs", "mcp")
    assert tool.description == python_spec.description
    assert tool.parameters["type"] == "object" and tool.parameters["required"] == ["query"]
    properties = tool.parameters["properties"]
    assert {name: (p["type"], p.get("default"), p["description"]) for name, p in properties.items()} == {
        name: (p["type"], p.get("default"), p["description"])
        for name, p in python_spec.parameters["properties"].items()
    }
    assert json.loads(content) == search(QUERY, 2) != []
    assert content == python_content


def test_the_example_server_answers_over_stdio_like_the_python_tool() -> None:
    check_docs_answers(*asyncio.run(search_through(DOCS, EXAMPLES)))


def test_the_example_server_answers_over_streamable_http_like_the_python_tool(docs_http: HttpServer) -> None:
    check_docs_answers(*asyncio.run(search_through(McpServer(name="docs", url=docs_http.url))))


def test_tool_failures_timeouts_and_big_results_come_back_as_results() -> None:
    async def scenario() -> dict[str, Any]:
        connection = McpConnection(awkward(timeout=5.0, max_result_chars=1000))
        try:
            await connection.open()
            started = time.monotonic()
            slow = await connection.call("c1", "sleep", {"seconds": 10}, timeout=0.5)
            slow_took = time.monotonic() - started
            return {
                "failed": await connection.call("c2", "fail", {"message": "no such order"}),
                "crashed": await connection.call("c3", "crash", {}),
                "unknown": await connection.call("c4", "no_such_tool", {}),
                "invalid": await connection.call("c5", "big", {"chars": "many"}),
                "slow": slow,
                "slow_took": slow_took,
                "after": await connection.call("c6", "sleep", {"seconds": 0}),
                "big": await connection.call("c7", "big", {"chars": 200}, max_result_chars=50),
                "small": await connection.call("c8", "big", {"chars": 50}, max_result_chars=50),
            }
        finally:
            await connection.aclose()

    results = asyncio.run(scenario())
    assert results["failed"].is_error and "no such order" in results["failed"].content
    assert results["crashed"].is_error and "crash" in results["crashed"].content
    assert results["unknown"].is_error and "no_such_tool" in results["unknown"].content
    assert results["invalid"].is_error and "chars" in results["invalid"].content
    assert results["slow"].is_error and results["slow"].content == "timed out after 0.5 s"
    assert results["slow_took"] < 3
    assert not results["after"].is_error and results["after"].content == "slept 0 s"
    big = results["big"]
    assert big.truncated and not big.is_error
    assert big == rendered("c7", "big", "x" * 200, 50)
    assert big.content == "x" * 50 + "\n[truncated: 150 more characters not shown]"
    assert not results["small"].truncated and results["small"].content == "x" * 50


def test_results_without_text_are_described() -> None:
    async def scenario() -> tuple[str, str]:
        connection = McpConnection(awkward())
        try:
            structured = await connection.call("c1", "structured", {})
            picture = await connection.call("c2", "picture", {})
        finally:
            await connection.aclose()
        return structured.content, picture.content

    structured, picture = asyncio.run(scenario())
    assert json.loads(structured) == {"answer": 42}
    assert picture == "a pixel\n[image/png, 70 bytes]"


def test_rendering_of_every_content_block() -> None:
    result = mcp_types.CallToolResult(
        content=[
            mcp_types.TextContent(text="first"),
            mcp_types.AudioContent(data="AAAA", mime_type="audio/wav"),
            mcp_types.ResourceLink(uri="file:///a.txt", name="a", mime_type="text/plain"),
            mcp_types.EmbeddedResource(resource=mcp_types.TextResourceContents(uri="file:///b.md", text="# B")),
            mcp_types.EmbeddedResource(resource=mcp_types.BlobResourceContents(uri="file:///c.bin", blob="AAAAAA==")),
            mcp_types.TextContent(text="last"),
        ],
        structured_content={"shown": False},
    )
    assert result_text(result) == (
        "first\n[audio/wav, 3 bytes]\n[resource link file:///a.txt, text/plain]\n[resource file:///b.md]\n# B\n"
        "[resource file:///c.bin, binary, 4 bytes]\nlast"
    )
    assert result_text(mcp_types.CallToolResult(content=[])) == ""


def test_header_env_values_are_sent_and_never_shown(
    awkward_http: tuple[HttpServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    http, recorded = awkward_http
    token = "tok-" + secrets.token_hex(16)
    monkeypatch.setenv("AGENTPARTY_TEST_MCP_TOKEN", token)
    server = McpServer(
        name="awkward",
        url=http.url,
        headers={"X-Plain": "visible"},
        header_env={"X-Api-Token": "AGENTPARTY_TEST_MCP_TOKEN"},
    )

    async def scenario() -> list[str]:
        async with McpPool() as pool:
            source = await pool.connect(server)
            echoed = await source.call("c1", "record_header", {"name": "X-Api-Token"})
            plain = await source.call("c2", "record_header", {"name": "X-Plain"})
            failed = await source.call("c3", "fail", {"message": f"token {token} rejected"})
            assert failed.is_error
            dead = McpServer(name="gone", url=f"http://127.0.0.1:{free_port()}/mcp", header_env=server.header_env)
            with pytest.raises(McpServerError) as refused:
                await pool.connect(dead)
        return [echoed.content, plain.content, failed.content, str(refused.value)]

    echoed, plain, failed, refused = asyncio.run(scenario())
    assert recorded.read_text().splitlines()[-2:] == [token, "visible"]  # what the server received
    assert echoed == f"X-Api-Token: {REDACTED}"
    assert plain == "X-Plain: visible"
    assert failed == f"Error executing tool fail: token {REDACTED} rejected"
    assert "'gone'" in refused and "ConnectError" in refused
    assert all(token not in text for text in (echoed, failed, refused))


def test_a_missing_secret_is_named_when_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTPARTY_TEST_MCP_ABSENT", raising=False)
    server = awkward(env={"API_KEY": "${AGENTPARTY_TEST_MCP_ABSENT}"})

    async def scenario() -> None:
        async with McpPool() as pool:
            await pool.connect(server)

    with pytest.raises(McpServerError, match=r"'awkward'.*AGENTPARTY_TEST_MCP_ABSENT \(env API_KEY\) is not set"):
        asyncio.run(scenario())


def test_the_pool_shares_one_stdio_process_per_run_and_ends_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    starts = tmp_path / "starts.txt"
    monkeypatch.setenv("AGENTPARTY_TEST_MCP_STARTS", str(starts))  # passed through as ${...}, read when connecting
    env = {"MCP_TEST_STARTS": "${AGENTPARTY_TEST_MCP_STARTS}"}

    async def scenario() -> tuple[list[str], float]:
        pool = McpPool()
        first = await pool.connect(awkward(env=env), tmp_path)  # one step
        second = await pool.connect(awkward(env=env, tools=["whoami", "sleep"], timeout=3.0), tmp_path)  # another
        answers = [(await first.call("c1", "whoami", {})).content]
        parallel = [second.call(f"p{n}", "sleep", {"seconds": 1.0}) for n in range(3)]
        started = time.monotonic()
        assert all(not result.is_error for result in await asyncio.gather(*parallel))
        parallel_took = time.monotonic() - started
        answers.append((await second.call("c2", "whoami", {})).content)
        refused = await second.call("c3", "big", {"chars": 1})
        assert refused.is_error and "not offered" in refused.content
        assert [tool.name for tool in await second.list_tools()] == ["sleep", "whoami"]
        assert pool.open_connections == 1
        await pool.aclose()
        await pool.aclose()  # twice is fine
        with pytest.raises(McpServerError, match="closed"):
            await pool.connect(awkward(env=env))
        return answers, parallel_took

    answers, parallel_took = asyncio.run(scenario())
    [pid] = starts.read_text().split()
    assert [answer.split()[0] for answer in answers] == [pid, pid]
    assert parallel_took < 2.5, "three 1 s calls on one session should run side by side, not one after another"
    assert not psutil.pid_exists(int(pid)), "the stdio server outlived the pool"


def test_the_pool_shares_one_http_session(awkward_http: tuple[HttpServer, Path]) -> None:
    http, _ = awkward_http
    server = McpServer(name="awkward", url=http.url)

    async def scenario() -> list[str]:
        async with McpPool() as pool:
            sources = [await pool.connect(server), await pool.connect(server.model_copy(update={"timeout": 9.0}))]
            return [(await source.call(f"c{n}", "whoami", {})).content for n, source in enumerate(sources)]

    first, second = asyncio.run(scenario())
    assert first == second and first.split()[1] != "-"


def test_a_broken_connection_gives_error_results_and_is_replaced_at_next_use(tmp_path: Path) -> None:
    starts = tmp_path / "starts.txt"

    async def scenario() -> str:
        async with McpPool(close_timeout=5.0) as pool:
            source = await pool.connect(awkward(starts))
            pid = int((await source.call("c1", "whoami", {})).content.split()[0])
            psutil.Process(pid).kill()
            broken = await source.call("c2", "whoami", {})
            assert broken.is_error and "'awkward'" in broken.content, broken.content
            again = await pool.connect(awkward(starts))
            answer = await again.call("c3", "whoami", {})
            assert not answer.is_error
            return answer.content

    answer = asyncio.run(scenario())
    first, second = starts.read_text().split()
    assert answer.split()[0] == second != first


def test_closing_is_bounded_when_a_server_will_not_exit() -> None:
    async def scenario() -> tuple[float, bool]:
        pool = McpPool(close_timeout=1.0)
        source = await pool.connect(awkward())
        pid = int((await source.call("c1", "whoami", {})).content.split()[0])
        assert (await source.call("c2", "linger", {})).content == "lingering"
        started = time.monotonic()
        await pool.aclose()
        took = time.monotonic() - started
        # The transport's shielded shutdown goes on (stdin closed, 2 s, SIGTERM ignored, 2 s, SIGKILL) while the
        # loop runs: the stuck server does not outlive it.
        deadline = time.monotonic() + 8
        while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            if time.monotonic() > deadline:
                psutil.Process(pid).kill()
                return took, False
            await asyncio.sleep(0.1)
        return took, True

    took, ended = asyncio.run(scenario())
    assert took < 1.0 + 2.0 + 0.5, f"closing took {took:.1f} s"
    assert ended, "the stuck stdio server was left running"


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"name": "ghost", "command": ["agentparty-no-such-mcp-server"]}, "No such file or directory"),
        ({"name": "mute", "command": ["python", "-c", "pass"]}, "Connection closed"),
        ({"name": "nobody", "url": "http://127.0.0.1:{free_port}/mcp"}, "ConnectError"),
    ],
    ids=["missing-command", "exits-at-once", "nothing-listens"],
)
def test_a_server_that_cannot_be_reached_is_named_in_a_clear_error(config: dict[str, Any], reason: str) -> None:
    if "url" in config:
        config = {**config, "url": config["url"].format(free_port=free_port())}
    server = McpServer.model_validate(config)

    async def scenario() -> None:
        async with McpPool(connect_timeout=10.0) as pool:
            await pool.connect(server)

    started = time.monotonic()
    with pytest.raises(McpServerError) as raised:
        asyncio.run(scenario())
    message = str(raised.value)
    assert f"MCP server {server.name!r}" in message and reason in message, message
    assert time.monotonic() - started < 8


def test_a_call_to_a_server_that_cannot_be_reached_is_an_error_result() -> None:
    async def scenario() -> Any:
        connection = McpConnection(McpServer(name="ghost", command=["agentparty-no-such-mcp-server"]))
        result = await connection.call("c1", "anything", {})
        await connection.aclose()
        return result

    result = asyncio.run(scenario())
    assert result.is_error and "'ghost'" in result.content and "No such file" in result.content
