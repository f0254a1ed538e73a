"""Seed 002's AgentInstance and its parts: model configuration, runtime state, context, metrics, limits."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from ._base import (
    CamelModel,
    NonEmptyStr,
    NonNegativeInt,
    PositiveStrictInt,
    UtcDatetime,
    first_non_json_value,
    utc_now,
)
from ._keys import api_key_problem
from .context import context_of
from .graph import ModelParameters, UuidStr, new_id
from .messages import AnyMessage
from .model_registry import ModelCapabilities
from .states import AgentRuntimeStatus

REALTIME_RESPONSE_TIME_MS = 200.0
"""Seed 002: ``performance.responseTime < 200ms for real-time compliance``.

This is a runtime objective, not a schema rule: a recorded metric above it is
valid data (it happened), and monitoring compares live metrics against it
(``MonitoringConfig.performanceThresholds.maxResponseTime`` defaults to it).
"""


class ModelConfiguration(CamelModel):
    provider: Literal["openai", "anthropic", "google", "simulated"]
    model: NonEmptyStr
    version: str = "latest"
    api_key: SecretStr | None = None
    parameters: ModelParameters = Field(default_factory=ModelParameters)
    capabilities: ModelCapabilities

    @field_validator("model")
    @classmethod
    def _registered(cls, value: str, info: ValidationInfo) -> str:
        registry = context_of(info).model_registry
        if registry is not None and not registry.is_registered(value):
            raise ValueError(registry.unregistered_message(value))
        return value

    @model_validator(mode="after")
    def _api_key_format(self) -> ModelConfiguration:
        if self.api_key is not None:
            problem = api_key_problem(self.provider, self.api_key.get_secret_value())
            if problem:
                raise ValueError(f"apiKey {problem}")
        return self


class WorkflowState(CamelModel):
    """Where an agent is in a workflow run (seed 002 names it, without fields)."""

    workflow_id: NonEmptyStr
    run_id: NonEmptyStr
    current_step: str | None = None
    status: Literal["pending", "running", "paused", "completed", "failed"] = "running"
    started_at: UtcDatetime = Field(default_factory=utc_now)


class AgentRuntimeState(CamelModel):
    """Seed 002's ``AgentState`` (see :mod:`agentparty.models.states` for the name mapping)."""

    messages: list[AnyMessage] = Field(default_factory=list)
    current_workflow: WorkflowState | None = None
    memory: dict[str, Any] = Field(default_factory=dict)
    status: AgentRuntimeStatus = AgentRuntimeStatus.CREATED

    @field_validator("memory")
    @classmethod
    def _serializable(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Seed 002: "state must be serializable for persistence".
        bad = first_non_json_value(value)
        if bad:
            raise ValueError(f"memory is not serializable for persistence: {bad} cannot be stored as JSON")
        return value


class ResourceLimits(CamelModel):
    max_memory: PositiveStrictInt = 512
    """Megabytes."""
    max_cpu: Annotated[float, Field(gt=0.0)] = 1.0
    """CPU cores."""
    max_connections: PositiveStrictInt = 10
    max_tokens_per_minute: PositiveStrictInt = 100_000


class ExecutionContext(CamelModel):
    session_id: NonEmptyStr = Field(default_factory=new_id)
    user_id: str | None = None
    permissions: list[str] = Field(default_factory=list)
    """``resource:action`` strings, e.g. ``workflows:read``."""
    resource_limits: ResourceLimits = Field(default_factory=ResourceLimits)
    timeout: Annotated[float, Field(gt=0.0)] = 300.0
    """Seconds."""


class PerformanceMetrics(CamelModel):
    response_time: Annotated[float, Field(ge=0.0)] = 0.0
    """Mean response time in milliseconds."""
    tokens_used: NonNegativeInt = 0
    requests_completed: NonNegativeInt = 0
    error_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    uptime: Annotated[float, Field(ge=0.0)] = 0.0
    """Seconds since the agent started."""

    def meets_realtime_objective(self, threshold_ms: float = REALTIME_RESPONSE_TIME_MS) -> bool:
        return self.response_time < threshold_ms


class AgentInstance(CamelModel):
    id: UuidStr = Field(default_factory=new_id)
    model: ModelConfiguration
    state: AgentRuntimeState = Field(default_factory=AgentRuntimeState)
    context: ExecutionContext = Field(default_factory=ExecutionContext)
    performance: PerformanceMetrics = Field(default_factory=PerformanceMetrics)
    created_at: UtcDatetime = Field(default_factory=utc_now)
    last_activity: UtcDatetime = Field(default_factory=utc_now)


def ensure_unique_ids(agents: Iterable[AgentInstance], field: str = "agents") -> None:
    """Seed 002: agent ids are unique. Checked wherever instances are gathered (a roster, a team).

    Raises ValueError naming the duplicate's position and the first use.
    """
    first: dict[str, int] = {}
    for index, agent in enumerate(agents):
        if agent.id in first:
            raise ValueError(f"{field}[{index}].id: duplicate agent id {agent.id!r} (also {field}[{first[agent.id]}])")
        first[agent.id] = index
