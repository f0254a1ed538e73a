"""The tools one agent step may call: its template's and its step's, Python and MCP, with their permissions.

Built once per engagement attempt from the template version and the step
(:func:`build_toolbox`). The template's permission list decides which tools are
offered at all (a denied tool is never shown to the model, and a call to it
anyway is refused without calling it); a tool that needs approval pauses the run
for a human before each call (the same ``ApprovalDecision`` as lifecycle
transitions), and a rejection goes back to the model as a refused call.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agentparty.models.step_errors import StepValidationError
from agentparty.models.tools import McpServer, PythonTool, ToolResult, ToolSpec, python_tool, tool_allowed
from agentparty.runtime.secrets import redact
from agentparty.tasks.tools import FunctionTool, ToolContext, function_tool

APPROVAL_ARGUMENTS_CHARS = 2000
"""How much of a call's arguments a human approving it sees (redacted of every registered key)."""


class McpSource(Protocol):
    """One connected MCP server (``runtime.mcp_tools``): its tools, and a way to call them."""

    async def list_tools(self) -> list[ToolSpec]: ...

    async def call(
        self, call_id: str, name: str, arguments: dict[str, Any], timeout: float, max_result_chars: int
    ) -> ToolResult: ...


class McpConnector(Protocol):
    """Where MCP connections come from (the run's pool, which reuses and closes them)."""

    async def connect(self, server: McpServer, cwd: Path | None) -> McpSource: ...


class BoundTool(Protocol):
    @property
    def spec(self) -> ToolSpec: ...

    @property
    def name(self) -> str: ...

    @property
    def needs_approval(self) -> bool: ...

    @property
    def server_name(self) -> str | None:
        """The MCP server the tool comes from; None for a Python tool."""
        ...

    def idempotency_key(self, arguments: dict[str, Any]) -> str | None: ...

    async def call(self, call_id: str, arguments: dict[str, Any], context: ToolContext) -> ToolResult: ...


@dataclass(frozen=True)
class PythonBoundTool:
    tool: FunctionTool

    @property
    def spec(self) -> ToolSpec:
        return self.tool.spec

    @property
    def name(self) -> str:
        return self.tool.name

    @property
    def needs_approval(self) -> bool:
        return self.tool.config.needs_approval

    @property
    def server_name(self) -> str | None:
        return None

    def idempotency_key(self, arguments: dict[str, Any]) -> str | None:
        return self.tool.idempotency_key(arguments)

    async def call(self, call_id: str, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        return await self.tool.call(call_id, arguments, context)


@dataclass(frozen=True)
class McpBoundTool:
    source: McpSource
    server: McpServer
    spec: ToolSpec
    remote_name: str
    """The tool's name on its server (the model may see it prefixed when two servers clash)."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def needs_approval(self) -> bool:
        return self.server.approval_needed(self.remote_name)

    @property
    def server_name(self) -> str | None:
        return self.server.name

    def idempotency_key(self, arguments: dict[str, Any]) -> str | None:
        return None

    async def call(self, call_id: str, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        result = await self.source.call(
            call_id, self.remote_name, arguments, self.server.timeout, self.server.max_result_chars
        )
        return result.model_copy(update={"name": self.name}) if result.name != self.name else result


@dataclass
class Toolbox:
    tools: dict[str, BoundTool] = field(default_factory=dict)
    denied: frozenset[str] = frozenset()
    """Tools the permissions leave out: never offered, refused if asked for anyway."""

    def specs(self) -> tuple[ToolSpec, ...]:
        return tuple(tool.spec for tool in self.tools.values())

    def __bool__(self) -> bool:
        return bool(self.tools)

    def get(self, name: str) -> BoundTool | None:
        return self.tools.get(name)

    def add(self, tool: BoundTool) -> None:
        if tool.name in self.tools:
            raise StepValidationError(f"two tools are called {tool.name!r}; give one of them another name")
        self.tools[tool.name] = tool


async def build_toolbox(
    references: Sequence[str | PythonTool],
    servers: Sequence[McpServer],
    permissions: Sequence[str],
    *,
    search_dirs: Sequence[Path],
    connector: McpConnector | None,
    configured_servers: dict[str, McpServer],
    builtins: Sequence[BoundTool] = (),
) -> Toolbox:
    """The step's tools, listed (MCP servers connected through ``connector``) and filtered by ``permissions``.

    ``builtins`` are the engine's own tools for this agent (memory, delegation: ``AgentExtension.tools``), offered
    first and filtered by the same permissions.
    """
    toolbox = Toolbox()
    denied: set[str] = set()
    for builtin in builtins:
        if tool_allowed(list(permissions), builtin.name):
            toolbox.add(builtin)
        else:
            denied.add(builtin.name)
    for reference in references:
        tool = PythonBoundTool(function_tool(python_tool(reference), search_dirs))
        if tool_allowed(list(permissions), tool.name):
            toolbox.add(tool)
        else:
            denied.add(tool.name)
    for declared in servers:
        server = _resolved(declared, configured_servers)
        if connector is None:
            raise StepValidationError(f"MCP server {server.name!r}: no MCP connections outside a workflow run")
        source = await connector.connect(server, search_dirs[0] if search_dirs else None)
        for spec in await source.list_tools():
            if server.tools is not None and spec.name not in server.tools:
                continue
            name = spec.name if spec.name not in toolbox.tools else f"{server.name}__{spec.name}"
            if not tool_allowed(list(permissions), name):
                denied.add(name)
                continue
            toolbox.add(
                McpBoundTool(source, server, spec.model_copy(update={"name": name, "source": "mcp"}), spec.name)
            )
    toolbox.denied = frozenset(denied)
    return toolbox


def _resolved(declared: McpServer, configured: dict[str, McpServer]) -> McpServer:
    if not declared.is_reference:
        return declared
    found = configured.get(declared.name)
    if found is None:
        known = ", ".join(sorted(configured)) or "none"
        raise StepValidationError(
            f"MCP server {declared.name!r} is not configured (mcpServers in the SDK configuration: {known})"
        )
    return found.model_copy(
        update={k: v for k, v in declared.model_dump(exclude_unset=True).items() if k not in ("name", "command", "url")}
    )


def shown_arguments(arguments: dict[str, Any], limit: int = APPROVAL_ARGUMENTS_CHARS) -> str:
    """A call's arguments as a human (an approver, a log, the run's result) may see them: JSON, redacted, shortened."""
    text = redact(json.dumps(arguments, sort_keys=True, default=str))
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"
