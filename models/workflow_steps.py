"""The steps of a workflow definition (DESIGN.md §3): task, decision, parallel and subgraph.

Each kind is a model of its own, told apart by ``type`` (:data:`AnyWorkflowStep`),
with a ``configuration`` of its own; a ``parallel`` step with ``forEach`` carries
its per-item step inline. The checks here are those one step can make about
itself (a handler path's form, a registered model, a subgraph target that
exists); whatever spans steps (references, dependencies, cycles) is
:mod:`agentparty.models.workflow_graph`'s.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ._base import CamelModel, NonEmptyStr, PositiveStrictInt
from .context import context_of
from .error_handling import RetryPolicy
from .graph import SemVer
from .tools import McpServer, ToolReference

STEP_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
INPUT_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
HANDLER_PATTERN = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")

StepId = Annotated[
    str, Field(pattern=STEP_ID_PATTERN, description="Letters, digits, '_' and '-', starting with a letter.")
]


def _json_schema(value: dict[str, Any]) -> dict[str, Any]:
    # Imported here: jsonschema is only needed when a definition carries schemas.

    try:
        Draft202012Validator.check_schema(value)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        raise ValueError(f"not a valid JSON Schema{' at ' + where if where else ''}: {exc.message}") from None
    return value


JsonSchema = Annotated[dict[str, Any], AfterValidator(_json_schema)]
"""A JSON Schema (draft 2020-12) fragment such as ``{type: integer, default: 1}``."""


# --- Step configurations -------------------------------------------------------------


class StepConfiguration(CamelModel):
    depends_on: list[StepId] = Field(default_factory=list)
    """Steps that must finish first, in addition to those referenced."""


class TaskConfiguration(StepConfiguration):
    """Either an agent step (``agent`` …) or a plain Python step (``handler``)."""

    agent: NonEmptyStr | None = None
    """Agent template name (or an ad-hoc agent's name). Omitted, with a ``capability``, the workflow's
    ``formationMethod`` (recommended / auto) lets the team recommender choose the agent."""
    version: SemVer | None = None
    """Template version; the latest published one when omitted."""
    prompt: str | None = None
    capability: str | None = None
    model: NonEmptyStr | None = None
    """Model to use instead of the template's (must be registered)."""
    output_schema: JsonSchema | None = None
    """JSON Schema the agent's structured output must satisfy."""
    token_budget: PositiveStrictInt | None = None
    """Tokens this step's agent may use in one run (``AgentRuntimeConfig.default_token_budget`` otherwise)."""
    handler: str | None = None
    """``package.module:function``, called with the step's resolved inputs as keyword arguments."""
    tools: list[ToolReference] = Field(default_factory=list)
    """Python tools this step's agent may call, beside its template's (``module:function`` or with options)."""
    mcp_servers: list[McpServer] = Field(default_factory=list)
    """MCP servers whose tools this step's agent may call, beside its template's."""
    max_turns: Annotated[int, Field(gt=0, le=100)] | None = None
    """Model turns the agent's loop may take (the template's, else the runtime default, when unset)."""
    max_tool_calls: Annotated[int, Field(gt=0, le=1000)] | None = None
    """Tool calls over the whole loop (the template's, else the runtime default, when unset)."""
    delegates: list[NonEmptyStr] = Field(default_factory=list, json_schema_extra={"uniqueItems": True})
    """Agent templates (or ad-hoc agents' names) this step's agent may hand a sub-question to with the built-in
    ``ask_agent`` tool; each answers in an engagement of its own."""
    delegate_to_team: bool = False
    """Also offer ``ask_agent`` to the run's team: the agents its other agent steps name and, in a recommended or
    auto run, the members the team recommender chose."""

    @field_validator("delegates")
    @classmethod
    def _distinct_delegates(cls, value: list[str]) -> list[str]:
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repeated)} named more than once")
        return value

    @field_validator("handler")
    @classmethod
    def _handler_path(cls, value: str | None) -> str | None:
        if value is not None and not HANDLER_PATTERN.match(value):
            raise ValueError(f"{value!r} is not 'package.module:function'")
        return value

    @field_validator("model")
    @classmethod
    def _registered(cls, value: str | None, info: ValidationInfo) -> str | None:
        registry = context_of(info).model_registry
        if value is not None and registry is not None and not registry.is_registered(value):
            raise ValueError(registry.unregistered_message(value))
        return value

    @model_validator(mode="after")
    def _agent_xor_handler(self) -> TaskConfiguration:
        if self.agent is not None and self.handler is not None:
            raise PydanticCustomError(
                "task_kind",
                "a task step needs exactly one of 'agent' (an agent step) or 'handler' (a Python step), not both",
            )
        if self.agent is None and self.handler is None and self.capability is None:
            raise PydanticCustomError(
                "task_kind",
                "a task step needs 'agent' (an agent step), 'handler' (a Python step), or 'capability' alone "
                "(an agent step the team recommender staffs)",
            )
        if self.agent is not None and self.agent in self.delegates:
            raise ValueError(f"delegates: {self.agent!r} is this step's own agent; name other agents to ask")
        if self.handler is not None:
            agent_only = (
                "version",
                "prompt",
                "capability",
                "model",
                "output_schema",
                "token_budget",
                "max_turns",
                "max_tool_calls",
            )
            extras = [n for n in agent_only if getattr(self, n) is not None]
            extras += [n for n in ("tools", "mcp_servers", "delegates", "delegate_to_team") if getattr(self, n)]
            if extras:
                raise ValueError(f"{', '.join(extras)} apply only to agent steps, not to a handler step")
        return self

    @property
    def is_agent(self) -> bool:
        return self.handler is None

    @property
    def is_unstaffed(self) -> bool:
        """An agent step naming no agent: the team recommender picks one for its capability."""
        return self.handler is None and self.agent is None


class DecisionConfiguration(StepConfiguration):
    condition: NonEmptyStr
    """Expression over ``inputs`` and ``steps``, e.g. ``steps.score.outputs.value > 0.5``."""
    then: list[StepId] = Field(default_factory=list)
    else_: list[StepId] = Field(default_factory=list, alias="else")

    @model_validator(mode="after")
    def _has_a_branch(self) -> DecisionConfiguration:
        if not self.then and not self.else_:
            raise ValueError("a decision needs at least one step in 'then' or 'else'")
        return self


class SubgraphConfiguration(StepConfiguration):
    workflow: NonEmptyStr
    """Another definition: a file path (relative to this one) or a registered workflow id."""
    inputs: dict[str, Any] = Field(default_factory=dict)
    """The sub-workflow's run inputs; may contain references."""


class WorkflowStep(CamelModel):
    """Fields every step has. Concrete steps are :data:`AnyWorkflowStep`."""

    type: str
    id: StepId
    name: str = ""
    """Display name; the id when omitted."""
    configuration: StepConfiguration
    inputs: dict[str, Any] = Field(default_factory=dict)
    """Named inputs, values may contain references; a handler receives them as keyword arguments."""
    outputs: dict[Annotated[str, Field(pattern=INPUT_NAME_PATTERN)], JsonSchema] = Field(default_factory=dict)
    """Named outputs this step produces (name → JSON Schema); only declared outputs may be referenced."""
    timeout: Annotated[float, Field(gt=0.0)] | None = None
    """Seconds."""
    retry_policy: RetryPolicy | None = None

    implicit_outputs: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _default_name(self) -> WorkflowStep:
        if not self.name:
            object.__setattr__(self, "name", self.id)
        return self

    def declared_outputs(self) -> frozenset[str]:
        return frozenset(self.outputs) | self.implicit_outputs


class TaskStep(WorkflowStep):
    type: Literal["task"] = "task"
    configuration: TaskConfiguration

    @model_validator(mode="after")
    def _tools_need_functions(self, info: ValidationInfo) -> TaskStep:
        """A model that cannot call functions is never given tools: refused at load, naming the step and model."""
        config = self.configuration
        registry = context_of(info).model_registry
        tooled = config.tools or config.mcp_servers or config.delegates or config.delegate_to_team  # ask_agent: a tool
        if not tooled or not config.model or registry is None:
            return self
        info_of_model = registry.available_models.get(config.model)
        if info_of_model is not None and not info_of_model.capabilities.supports_functions:
            raise PydanticCustomError(
                "model_without_functions",
                "step '{step}': model '{model}' does not support functions (supportsFunctions: false in the "
                "model registry), so it cannot be given the step's tools; pick a model that does, or drop them",
                {"step": self.id, "model": config.model},
            )
        return self

    def declared_outputs(self) -> frozenset[str]:
        schema = self.configuration.output_schema or {}
        properties = schema.get("properties") if schema.get("type", "object") == "object" else None
        return super().declared_outputs() | frozenset(properties or ())


class DecisionStep(WorkflowStep):
    type: Literal["decision"] = "decision"
    configuration: DecisionConfiguration
    implicit_outputs: ClassVar[frozenset[str]] = frozenset({"result", "branch"})
    """``result`` is the condition's truth value, ``branch`` is "then" or "else"."""


class SubgraphStep(WorkflowStep):
    type: Literal["subgraph"] = "subgraph"
    configuration: SubgraphConfiguration

    @field_validator("configuration")
    @classmethod
    def _target_exists(cls, value: SubgraphConfiguration, info: ValidationInfo) -> SubgraphConfiguration:
        exists = context_of(info).workflow_exists
        if exists is not None and not exists(value.workflow):
            raise PydanticCustomError(
                "subgraph_target",
                "subgraph target '{target}' not found: neither a workflow file next to this one nor a known workflow id",
                {"target": value.workflow},
            )
        return value


class InlineTaskStep(TaskStep):
    """The per-item step of a forEach; its id defaults to ``<parallel id>-item``."""

    id: StepId = ""


class InlineSubgraphStep(SubgraphStep):
    """A sub-workflow run once per forEach item; its id defaults to ``<parallel id>-item``."""

    id: StepId = ""


InlineStep = Annotated[InlineTaskStep | InlineSubgraphStep, Field(discriminator="type")]


class ParallelConfiguration(StepConfiguration):
    """Either ``steps`` (children that run concurrently) or ``forEach`` + ``step`` (a fan-out)."""

    steps: list[StepId] = Field(default_factory=list)
    for_each: str | list[Any] | None = None
    """A reference to a list (``${steps.x.outputs.items}``) or a literal list."""
    step: InlineStep | None = None
    """The step run once per item; ``${item}`` is the current element."""
    max_concurrency: PositiveStrictInt | None = None
    fail_fast: bool = True
    """Stop starting new items once one has failed."""

    @model_validator(mode="after")
    def _one_shape(self) -> ParallelConfiguration:
        fan_out = self.for_each is not None or self.step is not None
        if self.steps and fan_out:
            raise ValueError("use either 'steps' or 'forEach' with 'step', not both")
        if not self.steps and not fan_out:
            raise ValueError("a parallel step needs 'steps' (child step ids) or 'forEach' with 'step'")
        if fan_out and (self.for_each is None or self.step is None):
            missing = "step" if self.step is None else "forEach"
            raise ValueError(f"'forEach' and 'step' go together: {missing!r} is missing")
        return self


class ParallelStep(WorkflowStep):
    type: Literal["parallel"] = "parallel"
    configuration: ParallelConfiguration

    @model_validator(mode="after")
    def _inline_step_id(self) -> ParallelStep:
        inline = self.configuration.step
        if inline is not None and not inline.id:
            object.__setattr__(inline, "id", f"{self.id}-item")
            if not inline.name:
                object.__setattr__(inline, "name", inline.id)
        return self


AnyWorkflowStep = Annotated[TaskStep | DecisionStep | ParallelStep | SubgraphStep, Field(discriminator="type")]
STEP_TYPES: tuple[str, ...] = ("task", "decision", "parallel", "subgraph")
