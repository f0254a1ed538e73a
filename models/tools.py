"""Tools an agent can call: how they are declared, what the model is offered, what it asks, what comes back.

Declared on a template version (every agent of that version gets them: a
published version never changes its tools) and on a step (``configuration.tools``,
``configuration.mcpServers``). A Python tool is a ``module:function`` whose type
hints and docstring make its argument schema; an MCP server is a command (stdio)
or an ``https`` URL (streamable HTTP; ``http`` only on loopback) whose tools are
listed from the server. The loop's limits (turns, tool calls) come from the step,
else the template, else the runtime default.

A model asks for tools with :class:`ToolCall`; each call ends as a
:class:`ToolResult` the model reads on its next turn (an error it can correct, a
refusal, or the result, truncated past its size cap with a note saying so).
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from ._base import CamelModel, NonEmptyStr

TOOL_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
"""What every provider accepts as a function name (OpenAI: ``^[a-zA-Z0-9_-]{1,64}$``)."""
FUNCTION_REF = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$")  # ASCII: the same in JSON Schema
DEFAULT_TOOL_TIMEOUT_S = 30.0
DEFAULT_RESULT_CHARS = 16_000
DEFAULT_MAX_TURNS = 8
DEFAULT_MAX_TOOL_CALLS = 16
DEFAULT_PARALLEL_TOOL_CALLS = 4
FINAL_ANSWER_TOOL = "final_answer"
"""The tool a model calls to give a structured answer where the provider cannot mix tools and a JSON mode."""

ToolName = Annotated[str, Field(pattern=TOOL_NAME_PATTERN)]


class PythonTool(CamelModel):
    """A Python function the agent may call."""

    function: Annotated[str, WithJsonSchema({"type": "string", "pattern": FUNCTION_REF.pattern})]
    """``package.module:function``; found on the definition's folder and ``sys.path``, like handlers."""
    name: ToolName | None = None
    """What the model calls it; the function's name when omitted."""
    needs_approval: bool = False
    """Each call waits for a human (``ApprovalDecision``, through the Prefect UI or ``POST /approvals/…``)."""
    timeout: Annotated[float, Field(gt=0.0, le=3600.0)] = DEFAULT_TOOL_TIMEOUT_S
    """Seconds. A sync function that runs over is abandoned in its thread (Python cannot kill a thread)."""
    max_result_chars: Annotated[int, Field(gt=0)] = DEFAULT_RESULT_CHARS
    """Longer results are truncated, with a note saying how much was left out."""

    @field_validator("function")
    @classmethod
    def _reference(cls, value: str) -> str:
        if not FUNCTION_REF.fullmatch(value):
            raise ValueError(f"{value!r} is not 'package.module:function'")
        return value

    @property
    def module(self) -> str:
        return self.function.split(":", 1)[0]

    @property
    def tool_name(self) -> str:
        return self.name or self.function.split(":", 1)[1]


MCP_URL_PATTERN = (
    r"^(https://[A-Za-z0-9.-]+|http://(localhost|127\.0\.0\.1|\[::1\]))"
    r"(:[0-9]{1,5})?([/?#][!-~]*)?$"
)
"""What :func:`check_mcp_url` accepts, as a pattern: ``https`` to a host, or ``http`` to a loopback address."""

_TRANSPORT_GIVEN: list[dict[str, Any]] = [
    {"required": ["command"], "properties": {"command": {"type": "array"}}},
    {"required": ["url"], "properties": {"url": {"type": "string"}}},
]
_MCP_SERVER_RULES: dict[str, Any] = {
    "not": {"allOf": _TRANSPORT_GIVEN},
    "anyOf": [
        *_TRANSPORT_GIVEN,
        {"properties": {name: {"maxProperties": 0} for name in ("env", "headers", "headerEnv")}},
    ],
}


class McpServer(CamelModel):
    """An MCP server whose tools the agent may call: a command over stdio, or a URL over streamable HTTP.

    With neither, it names a server of the SDK configuration (``mcpServers``) instead.
    """

    # The JSON Schema states the validator's rules, so a client (or schemathesis) sees what is refused.
    model_config = ConfigDict(json_schema_extra=_MCP_SERVER_RULES)

    name: ToolName
    """Also the prefix of its tools' names as the model sees them (``name__tool``) when two servers clash."""
    command: Annotated[list[NonEmptyStr], Field(min_length=1)] | None = None
    """Executable and arguments (stdio)."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment of the command: ``NAME: value``, or ``NAME: ${ENV_VAR}`` to pass a secret through."""
    url: Annotated[str, WithJsonSchema({"type": "string", "pattern": MCP_URL_PATTERN})] | None = None
    """Streamable HTTP endpoint: ``https://…``, or ``http://`` on a loopback address only."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Plain headers (nothing secret: they are stored and shown)."""
    header_env: dict[str, str] = Field(default_factory=dict)
    """Header name → the environment variable that holds its value (tokens): read when connecting, never stored."""
    tools: list[NonEmptyStr] | None = None
    """Offer only these of the server's tools (all when omitted)."""
    needs_approval: list[NonEmptyStr] = Field(default_factory=list)
    """Tools of this server whose calls wait for a human; ``["*"]`` for all."""
    timeout: Annotated[float, Field(gt=0.0, le=3600.0)] = DEFAULT_TOOL_TIMEOUT_S
    max_result_chars: Annotated[int, Field(gt=0)] = DEFAULT_RESULT_CHARS

    @model_validator(mode="after")
    def _one_transport(self) -> McpServer:
        if self.command is not None and self.url is not None:
            raise ValueError("an MCP server is a command (stdio) or a url (streamable HTTP), not both")
        if self.url is not None:
            check_mcp_url(self.url)
        if self.command is None and self.url is None and (self.env or self.headers or self.header_env):
            raise ValueError("a reference to a configured MCP server (name only) takes no env or headers")
        return self

    @property
    def is_reference(self) -> bool:
        return self.command is None and self.url is None

    def approval_needed(self, tool: str) -> bool:
        return "*" in self.needs_approval or tool in self.needs_approval


def check_mcp_url(url: str) -> None:
    """``https``, or ``http`` on loopback: an MCP endpoint sees the agent's arguments, so plain HTTP may not leave the
    machine. Exactly :data:`MCP_URL_PATTERN`, which the JSON Schema states; the checks before it give the reason."""
    if re.fullmatch(MCP_URL_PATTERN, url):
        return
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # an unbalanced "[" and the like: not a URL at all
        host = None
    if host and parts.scheme == "http" and not _loopback(host):
        raise ValueError(f"url {url!r}: plain http only to a loopback address; use https")
    raise ValueError(f"url {url!r} is not an https URL (or http to localhost, 127.0.0.1 or [::1]) in printable ASCII")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _reference_written(value: Any) -> Any:
    """A string must be ``package.module:function``: one error saying so (not one per member of the union)."""
    if isinstance(value, str) and not FUNCTION_REF.fullmatch(value):
        raise ValueError(f"{value!r} is not 'package.module:function'")
    return value


FunctionReference = Annotated[str, Field(pattern=FUNCTION_REF.pattern, description="package.module:function")]
ToolReference = Annotated[
    FunctionReference | PythonTool, Field(union_mode="left_to_right"), BeforeValidator(_reference_written)
]
"""``module:function``, or a :class:`PythonTool` with options."""


def python_tool(reference: str | PythonTool) -> PythonTool:
    return PythonTool(function=reference) if isinstance(reference, str) else reference


class ToolSpec(BaseModel):
    """A tool as the model is offered it (the same for every provider; each adapter writes its own format)."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    parameters: dict[str, Any]
    """JSON Schema of the arguments (an object)."""
    source: Literal["python", "mcp", "output"] = "python"


class ToolCall(BaseModel):
    """What a model asked for: call ``name`` with ``arguments``; ``id`` pairs it with its result."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    signature: str | None = None
    """An opaque token the provider wants back with the call when the conversation is replayed (Gemini's thought
    signature, base64): kept on the call, so a resumed run's checkpointed turns replay it too."""


class ToolResult(BaseModel):
    """How a call ended, as the model reads it on its next turn."""

    model_config = ConfigDict(frozen=True)

    call_id: str
    name: str
    content: str
    is_error: bool = False
    """The tool raised, timed out, got arguments that do not validate, or is unknown: the model may correct it."""
    refused: bool = False
    """A human rejected the call, or the template's permissions deny the tool: it was never called."""
    truncated: bool = False


class ToolCallRecord(BaseModel):
    """One tool call as the run's result, events and graph report it (arguments and result shortened, redacted)."""

    call_id: str
    name: str
    """The tool as the model called it."""
    source: Literal["python", "mcp"] = "python"
    server: str | None = None
    """The MCP server it came from (its name); None for a Python tool."""
    arguments: str
    """JSON of the arguments, shortened to a few hundred characters (keys and secrets redacted)."""
    ok: bool
    refused: bool = False
    truncated: bool = False
    result: str = ""
    """The start of the result (or the error) the model read."""
    duration_ms: float = 0.0
    cached: bool = False
    """Taken from the call's checkpoint (a resumed run), not called again."""


class TurnRecord(BaseModel):
    """One model turn of an agent step's loop: who answered, its tokens, and the tool calls it asked for."""

    turn: int
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    cached: bool = False
    """Taken from the turn's checkpoint (a resumed run): the model was not asked again."""
    final: bool = False
    """The turn that gave the answer."""


def truncated_text(text: str, max_chars: int) -> tuple[str, bool]:
    """``text`` cut at ``max_chars`` with a note saying how much the model does not see; and whether it was cut.

    One rendering for every tool result (Python or MCP), so the model reads truncation the same way everywhere.
    """
    if len(text) <= max_chars:
        return text, False
    return f"{text[:max_chars]}\n[truncated: {len(text) - max_chars} more characters not shown]", True


def tool_allowed(permissions: list[str], tool: str) -> bool:
    """The template's permission list (``resource:action``) on one tool: a ``!tools:NAME`` denies it; once any
    ``tools:…`` entry allows something, only what is listed (or ``tools:*``) is allowed; with none, all are."""
    if f"!tools:{tool}" in permissions or "!tools:*" in permissions:
        return False
    allows = [p for p in permissions if p.startswith("tools:")]
    return not allows or "tools:*" in allows or f"tools:{tool}" in allows


class AgentTooling(CamelModel):
    """What a template version gives every agent of it to act with: tools, MCP servers, permissions, loop limits.

    Part of the version, like its model and prompt: a published version never changes its tools.
    """

    tools: list[ToolReference] = Field(default_factory=list)
    mcp_servers: list[McpServer] = Field(default_factory=list)
    permissions: list[NonEmptyStr] = Field(default_factory=list)
    """``resource:action`` entries copied onto each agent's ``ExecutionContext.permissions``; for tools see
    :func:`tool_allowed`."""
    max_turns: Annotated[int, Field(gt=0, le=100)] | None = None
    max_tool_calls: Annotated[int, Field(gt=0, le=1000)] | None = None

    def __bool__(self) -> bool:
        return bool(self.tools or self.mcp_servers)


class ToolPolicy(CamelModel):
    """Which code a template may bring: tool modules, MCP commands and MCP URLs on an allowlist.

    Templates arrive over ``POST /templates``, and a tool reference or an MCP command is code that workers run, so
    a template naming anything off the list is refused when it is created (and its agents refuse it at run time if
    the list has since shrunk). Workflow definitions are code on disk, like their handlers, and are not checked.
    Set in the SDK configuration (``tools:``) and in the settings (``AGENTPARTY_TOOL_MODULES`` …); both add up.
    """

    allowed_modules: list[NonEmptyStr] = Field(default_factory=list)
    """Modules whose functions may be tools: ``pkg.module`` exactly, or ``pkg.*`` for a package and everything in it."""
    allowed_commands: list[NonEmptyStr] = Field(default_factory=list)
    """MCP commands, as shell words: a command is allowed when its words begin with an entry's
    (``npx -y @modelcontextprotocol/server-filesystem`` allows that server whatever folder it is given)."""
    allowed_urls: list[NonEmptyStr] = Field(default_factory=list)
    """MCP endpoints: a URL is allowed when it equals an entry or continues it past a ``/``."""
    mcp_servers: list[McpServer] = Field(default_factory=list)
    """Servers configured here, which templates and steps name (``{name: docs}``); allowed by being configured."""

    @field_validator("allowed_commands")
    @classmethod
    def _shell_words(cls, value: list[str]) -> list[str]:
        for entry in value:
            shlex.split(entry)  # an unbalanced quote is a load error, not a silent mismatch later
        return value

    @field_validator("mcp_servers")
    @classmethod
    def _servers_are_defined(cls, value: list[McpServer]) -> list[McpServer]:
        names = [s.name for s in value]
        for server in value:
            if server.is_reference:
                raise ValueError(f"MCP server {server.name!r}: give a command or a url (here it is defined, not named)")
            if names.count(server.name) > 1:
                raise ValueError(f"two MCP servers are called {server.name!r}")
        return value

    def merged(self, other: ToolPolicy) -> ToolPolicy:
        return ToolPolicy(
            allowed_modules=[*self.allowed_modules, *other.allowed_modules],
            allowed_commands=[*self.allowed_commands, *other.allowed_commands],
            allowed_urls=[*self.allowed_urls, *other.allowed_urls],
            mcp_servers=[*self.mcp_servers, *[s for s in other.mcp_servers if s.name not in self.configured]],
        )

    @property
    def configured(self) -> dict[str, McpServer]:
        return {server.name: server for server in self.mcp_servers}

    def module_allowed(self, module: str) -> bool:
        for entry in self.allowed_modules:
            if entry == module or (entry.endswith(".*") and (module + ".").startswith(entry[:-1])):
                return True
        return False

    def command_allowed(self, command: list[str]) -> bool:
        return any(command[: len(words)] == words for words in map(shlex.split, self.allowed_commands) if words)

    def url_allowed(self, url: str) -> bool:
        return any(url == entry or url.startswith(entry.rstrip("/") + "/") for entry in self.allowed_urls)

    def refusals(self, tooling: AgentTooling) -> list[tuple[tuple[str | int, ...], str]]:
        """What in ``tooling`` is off the allowlist: (where, why) for each, empty when all of it may run."""
        found: list[tuple[tuple[str | int, ...], str]] = []
        for index, reference in enumerate(tooling.tools):
            module = python_tool(reference).module
            if not self.module_allowed(module):
                found.append(
                    (
                        ("tools", index),
                        f"tool module {module!r} is not on the allowlist (tools.allowedModules in the "
                        "SDK configuration, or AGENTPARTY_TOOL_MODULES)",
                    )
                )
        for index, server in enumerate(tooling.mcp_servers):
            where: tuple[str | int, ...] = ("mcp_servers", index)
            if server.is_reference:
                if server.name not in self.configured:
                    known = ", ".join(sorted(self.configured)) or "none"
                    found.append((where, f"MCP server {server.name!r} is not configured (configured: {known})"))
            elif server.command is not None and not self.command_allowed(list(server.command)):
                found.append(
                    (
                        (*where, "command"),
                        f"MCP command {shlex.join(server.command)!r} is not on the allowlist "
                        "(tools.allowedCommands, or AGENTPARTY_MCP_COMMANDS)",
                    )
                )
            elif server.url is not None and not self.url_allowed(server.url):
                found.append(
                    (
                        (*where, "url"),
                        f"MCP url {server.url!r} is not on the allowlist (tools.allowedUrls, or AGENTPARTY_MCP_URLS)",
                    )
                )
        return found
