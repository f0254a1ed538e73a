"""Seed 000's FastAPI request/response models and WebSocket messages.

The seed's examples are kept as ``json_schema_extra`` examples and are accepted
verbatim (the tests feed them in unchanged).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, NonNegativeInt, StrictBool, model_validator

from ._base import Fraction, NonEmptyStr, SeedModel, UtcDatetime, utc_now
from .capabilities import CapabilityDefinition
from .governance import GovernanceRules
from .graph import ModelParameters
from .live_stream import AgentActivity, StreamEvent
from .memory import MemoryConfig
from .tools import AgentTooling, McpServer, ToolReference

CREATE_AGENT_TEMPLATE_EXAMPLE: dict[str, Any] = {
    "name": "Research Assistant",
    "description": "Specialized in data analysis and insight extraction",
    "model": "gpt-4",
    "parameters": {"temperature": 0.3, "max_tokens": 2000},
    "personality": "analytical, detail-oriented, thorough",
    "capabilities": ["data_analysis", "report_generation"],
    "is_auto_generated": False,
    "approval_required": True,
    "governance_rules": {
        "transitions": {
            "initialized_to_running": {"approval": "automatic"},
            "running_to_completed": {"approval": "automatic"},
            "running_to_paused": {"approval": "human", "timeout": 3600},
        }
    },
}

AGENT_STATE_RESPONSE_EXAMPLE: dict[str, Any] = {
    "agent_id": "a1b2c3d4-e5f6-7890-abcd-1234567890ab",
    "name": "Research Bot Alpha",
    "current_state": "running",
    "state_timestamp": "2025-03-12T18:25:43.511Z",
    "previous_state": "initialized",
    "time_in_state": 1205,
    "capabilities": [
        {"name": "data_analysis", "proficiency": 0.85},
        {"name": "report_generation", "proficiency": 0.72},
    ],
    "team_id": "team123",
    "task_id": "task456",
    "token_usage": 1230,
    "token_budget": 10000,
}

CapabilityName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


class CreateAgentTemplateRequest(SeedModel):
    model_config = ConfigDict(json_schema_extra={"examples": [CREATE_AGENT_TEMPLATE_EXAMPLE]})

    name: NonEmptyStr
    description: str
    model: NonEmptyStr
    parameters: ModelParameters
    personality: str
    capabilities: list[CapabilityName]
    is_auto_generated: StrictBool = False
    approval_required: StrictBool = True
    governance_rules: GovernanceRules = Field(default_factory=GovernanceRules)
    tools: list[ToolReference] = Field(default_factory=list)
    """Python tools every agent of this template may call (part of the version: a published one never changes)."""
    mcp_servers: list[McpServer] = Field(default_factory=list)
    """MCP servers whose tools every agent of this template may call."""
    permissions: list[NonEmptyStr] = Field(default_factory=list)
    """``tools:NAME`` allows a tool (only the listed ones, once any is listed), ``!tools:NAME`` denies one;
    copied onto each agent's ``ExecutionContext.permissions``."""
    max_turns: Annotated[int, Field(gt=0, le=100)] | None = None
    """Model turns an agent's loop may take (a step's own setting wins; the runtime default when unset)."""
    max_tool_calls: Annotated[int, Field(gt=0, le=1000)] | None = None
    """Tool calls over an agent's loop (a step's own setting wins; the runtime default when unset)."""
    prompt_template: NonEmptyStr | None = None
    """The name of a prompt template of the server's runtime configuration (``agentRuntime.promptTemplates``) to
    use as the system prompt; a name the server does not define is refused."""
    memory: MemoryConfig | None = None
    """A memory the version's agent keeps across runs (``remember``/``recall`` tools); none when absent."""
    capability_definitions: list[CapabilityDefinition] = Field(default_factory=list)
    """Extension: this template's own definitions of some of its ``capabilities`` (description, category, token
    cost, compatibility, required model), written to their graph nodes over the capability registry's, field by
    field (``models/capabilities.py``). Each names one of ``capabilities``, once."""

    @model_validator(mode="after")
    def _definitions_of_own_capabilities(self) -> CreateAgentTemplateRequest:
        seen: set[str] = set()
        for index, definition in enumerate(self.capability_definitions):
            if definition.name not in self.capabilities:
                raise ValueError(
                    f"capability_definitions[{index}].name: {definition.name!r} is not one of the template's "
                    f"capabilities ({', '.join(self.capabilities) or 'none'})"
                )
            if definition.name in seen:
                raise ValueError(f"capability_definitions[{index}].name: {definition.name!r} is defined twice")
            seen.add(definition.name)
        return self

    @property
    def tooling(self) -> AgentTooling:
        return AgentTooling(
            tools=self.tools,
            mcp_servers=self.mcp_servers,
            permissions=self.permissions,
            max_turns=self.max_turns,
            max_tool_calls=self.max_tool_calls,
        )


class CapabilityProficiency(SeedModel):
    name: NonEmptyStr
    proficiency: Fraction


class AgentStateResponse(SeedModel):
    model_config = ConfigDict(json_schema_extra={"examples": [AGENT_STATE_RESPONSE_EXAMPLE]})

    agent_id: NonEmptyStr
    name: NonEmptyStr
    current_state: NonEmptyStr
    state_timestamp: UtcDatetime
    previous_state: str | None = None
    time_in_state: NonNegativeInt
    """Seconds."""
    capabilities: list[CapabilityProficiency]
    team_id: str | None = None
    task_id: str | None = None
    token_usage: NonNegativeInt
    token_budget: NonNegativeInt


AnimationType = Literal["idle", "pulse", "spin", "shake", "fade", "glow", "none"]


class AgentUpdatePayload(SeedModel):
    agent_id: NonEmptyStr
    previous_state: str | None = None
    new_state: NonEmptyStr
    svg: str
    """Inline SVG picturing the agent in its new state."""
    animation_type: AnimationType
    token_usage: NonNegativeInt
    message: str | None = None
    # Extension (live streaming, models/live_stream.py): what the agent does within its state, as it happens.
    streaming: bool = False
    """True for a live update from the run's stream (not durable; a client may miss some); False for one built
    from a lifecycle event or for the current state sent on connect."""
    activity: AgentActivity | None = None
    """What the agent is doing within its state: ``thinking``, ``using a tool``, ``waiting for approval``; None: idle."""
    stream_event: StreamEvent | None = None
    """A live update's kind: ``turn_started``, ``text``, ``turn_finished``, ``tool_started``,
    ``waiting_for_approval``, ``tool_finished``."""
    delta: str | None = None
    """``text``: the fragment of the answer the model just streamed."""
    step_id: str | None = None
    turn: Annotated[int, Field(ge=1)] | None = None
    tool: str | None = None


class TeamMemberView(SeedModel):
    agent_id: NonEmptyStr
    name: str
    role: str
    state: str


class TeamConnection(SeedModel):
    source: NonEmptyStr
    target: NonEmptyStr
    strength: Fraction
    """Collaboration success score of the pair."""


class TeamUpdatePayload(SeedModel):
    team_id: NonEmptyStr
    status: NonEmptyStr
    members: list[TeamMemberView]
    connections: list[TeamConnection]
    task_progress: Fraction
    message: str | None = None


class WSMessage(SeedModel):
    message_type: str
    timestamp: UtcDatetime = Field(default_factory=utc_now)
    payload: Any


class AgentUpdateMessage(WSMessage):
    message_type: Literal["agent_update"] = "agent_update"
    payload: AgentUpdatePayload


class TeamUpdateMessage(WSMessage):
    message_type: Literal["team_update"] = "team_update"
    payload: TeamUpdatePayload


WebSocketMessage = Annotated[AgentUpdateMessage | TeamUpdateMessage, Field(discriminator="message_type")]
