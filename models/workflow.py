"""Seed 002's WorkflowDefinition and its parts, with the step format of DESIGN.md §3.

Structural rules (types, required fields, per-field formats) are ordinary
pydantic validation with natural error locations. Rules that span the whole
definition (references resolve, ids unique, no cycles, error handling present)
live in :mod:`agentparty.models.workflow_graph` and run as the definition's
final validator; every problem found there is reported, each with its own field
path (see :mod:`agentparty.models.errors`).
"""

from __future__ import annotations

import fnmatch

import re
from datetime import datetime, timezone
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, PrivateAttr, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ._base import CamelModel, Fraction, NonEmptyStr, PositiveStrictInt, Priority
from .context import context_of
from .graph import FormationMethod, SemVer

if TYPE_CHECKING:
    from .workflow_graph import WorkflowGraph

STEP_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
WORKFLOW_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
INPUT_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
HANDLER_PATTERN = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")

StepId = Annotated[str, Field(pattern=STEP_ID_PATTERN, description="Letters, digits, '_' and '-', starting with a letter.")]


def _json_schema(value: dict[str, Any]) -> dict[str, Any]:
    # Imported here: jsonschema is only needed when a definition carries schemas.
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(value)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        raise ValueError(f"not a valid JSON Schema{' at ' + where if where else ''}: {exc.message}") from None
    return value


JsonSchema = Annotated[dict[str, Any], AfterValidator(_json_schema)]
"""A JSON Schema (draft 2020-12) fragment such as ``{type: integer, default: 1}``."""


class BackoffStrategy(StrEnum):
    EXPONENTIAL = "exponential"
    LINEAR = "linear"
    FIXED = "fixed"


class FallbackAction(StrEnum):
    ABORT = "abort"
    RETRY = "retry"
    HUMAN_INTERVENTION = "human_intervention"


class RetryPolicy(CamelModel):
    """Per-step retries; overrides the workflow's ``errorHandling`` for that step."""

    max_attempts: Annotated[int, Field(ge=1, le=100)]
    """Total attempts, the first included (``maxAttempts: 1`` means no retry)."""
    base_delay: Annotated[float, Field(ge=0.0)] = 1.0
    """Seconds before the first retry."""
    max_delay: Annotated[float, Field(ge=0.0)] = 60.0
    """Upper bound on any single delay, in seconds."""
    jitter: bool = True
    backoff_strategy: BackoffStrategy | None = None
    """Extension: how delays grow; defaults to the workflow's ``errorHandling.backoffStrategy``."""

    @model_validator(mode="after")
    def _delays_ordered(self) -> RetryPolicy:
        if self.max_delay < self.base_delay:
            raise ValueError(f"maxDelay ({self.max_delay:g}) must not be below baseDelay ({self.base_delay:g})")
        return self


class CircuitBreakerConfig(CamelModel):
    failure_threshold: PositiveStrictInt
    """Consecutive failures that open the circuit."""
    recovery_timeout: Annotated[float, Field(gt=0.0)]
    """Seconds an open circuit rejects calls before admitting trial calls."""
    half_open_max_calls: PositiveStrictInt = 1


class ErrorHandlingStrategy(CamelModel):
    retry_attempts: Annotated[int, Field(ge=0, le=100)]
    """Retries after the first attempt (``retryAttempts: 2`` means up to 3 attempts)."""
    backoff_strategy: BackoffStrategy
    fallback_action: FallbackAction | None = None
    circuit_breaker: CircuitBreakerConfig | None = None
    base_delay: Annotated[float, Field(ge=0.0)] = 1.0
    """Extension: seconds before the first retry."""
    max_delay: Annotated[float, Field(ge=0.0)] = 60.0
    """Extension: cap on any single retry delay, seconds."""
    jitter: bool = True
    """Extension: spread retry delays randomly so concurrent retries do not stampede."""
    human_intervention_timeout: Annotated[float, Field(gt=0.0)] = 3600.0
    """Extension: seconds an operator has to answer a human-intervention pause before the run aborts."""

    @model_validator(mode="after")
    def _delays_ordered(self) -> ErrorHandlingStrategy:
        if self.max_delay < self.base_delay:
            raise ValueError(f"maxDelay ({self.max_delay:g}) must not be below baseDelay ({self.base_delay:g})")
        return self


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
                "task_kind", "a task step needs exactly one of 'agent' (an agent step) or 'handler' (a Python step), not both"
            )
        if self.agent is None and self.handler is None and self.capability is None:
            raise PydanticCustomError(
                "task_kind",
                "a task step needs 'agent' (an agent step), 'handler' (a Python step), or 'capability' alone "
                "(an agent step the team recommender staffs)",
            )
        if self.handler is not None:
            extras = [n for n in ("version", "prompt", "capability", "model", "output_schema", "token_budget") if getattr(self, n) is not None]
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


InlineStep = Annotated[Union[InlineTaskStep, InlineSubgraphStep], Field(discriminator="type")]


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


AnyWorkflowStep = Annotated[Union[TaskStep, DecisionStep, ParallelStep, SubgraphStep], Field(discriminator="type")]
STEP_TYPES: tuple[str, ...] = ("task", "decision", "parallel", "subgraph")


# --- Triggers ------------------------------------------------------------------------


class ManualTriggerConfig(CamelModel):
    parameters: dict[str, Any] = Field(default_factory=dict)
    """Default run inputs offered in the Prefect UI's run form."""


class ScheduleTriggerConfig(CamelModel):
    """Exactly one of ``cron``, ``interval`` (seconds) or ``rrule``."""

    cron: str | None = None
    interval: Annotated[float, Field(gt=0.0)] | None = None
    rrule: str | None = None
    timezone: str = "UTC"
    parameters: dict[str, Any] = Field(default_factory=dict)
    """Run inputs for the scheduled runs."""
    active: bool = True

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            from cronsim import CronSim, CronSimError

            try:
                CronSim(value, datetime.now(timezone.utc))
            except CronSimError as exc:
                raise ValueError(f"invalid cron expression {value!r}: {exc}") from None
        return value

    @field_validator("rrule")
    @classmethod
    def _rrule(cls, value: str | None) -> str | None:
        if value is not None:
            from dateutil.rrule import rrulestr

            try:
                rrulestr(value)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"invalid rrule {value!r}: {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}; use an IANA name such as 'Europe/Berlin'") from None
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> ScheduleTriggerConfig:
        given = [name for name in ("cron", "interval", "rrule") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a schedule needs exactly one of 'cron', 'interval' or 'rrule'; got {', '.join(given) or 'none'}"
            )
        return self


class KafkaBridgeConfig(CamelModel):
    """Turn Kafka messages into Prefect events that this trigger then matches."""

    topic: NonEmptyStr
    filter: dict[str, Any] = Field(default_factory=dict)
    """Payload fields that must equal these values (dotted paths allowed)."""


KAFKA_EVENT_PREFIX = "agentparty.kafka."
"""Kafka-bridged messages arrive as Prefect events named ``agentparty.kafka.<topic>``."""


class EventTriggerConfig(CamelModel):
    kafka: KafkaBridgeConfig | None = None
    """Bridge a Kafka topic: its messages that pass ``filter`` arrive as events ``agentparty.kafka.<topic>``."""
    expect: list[NonEmptyStr] = Field(default_factory=list, validate_default=True)
    """Prefect event names (``agentparty.agent.state_transition``; ``*`` wildcards allowed); with ``kafka``
    it may be left out (it is then the bridge's ``agentparty.kafka.<topic>``)."""
    match: dict[str, str | list[str]] = Field(default_factory=dict)
    """Labels the event's resource must have (``prefect.resource.id``: ``agentparty.agent.*``)."""
    match_related: dict[str, str | list[str]] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    """Run inputs, templated from the event: ``"{{ event.resource.id }}"``."""
    threshold: PositiveStrictInt = 1
    within: Annotated[float, Field(ge=0.0)] = 0.0
    """Seconds over which ``threshold`` events must arrive."""

    @field_validator("expect")
    @classmethod
    def _expectations(cls, expect: list[str], info: ValidationInfo) -> list[str]:
        kafka: KafkaBridgeConfig | None = info.data.get("kafka")
        if kafka is None:
            if not expect:
                raise ValueError("needs at least 1 item: the Prefect events to react to (or add a 'kafka' bridge)")
            return expect
        bridged = f"{KAFKA_EVENT_PREFIX}{kafka.topic}"
        stray = [name for name in expect if not fnmatch.fnmatchcase(bridged, name)]
        if stray:
            raise ValueError(
                f"{', '.join(map(repr, stray))} would never match the bridged events; "
                f"messages from Kafka topic {kafka.topic!r} arrive as {bridged!r}"
            )
        return expect or [bridged]


class WebhookTriggerConfig(CamelModel):
    secret_name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    """Environment variable holding the HMAC secret; never the secret itself."""
    max_body_bytes: PositiveStrictInt = 1_048_576
    tolerance_seconds: PositiveStrictInt = 300
    """How old a signed timestamp may be before the request counts as stale."""
    wait_for_run_seconds: Annotated[float, Field(ge=0, le=30)] = 2.0
    """How long the 202 waits for the flow run to exist, so that it can name it. The delivery is stored before
    that wait, and its run is created either way; 0 acknowledges as soon as it is stored (bursty senders)."""


class _Trigger(CamelModel):
    type: str


class ManualTrigger(_Trigger):
    type: Literal["manual"] = "manual"
    configuration: ManualTriggerConfig = Field(default_factory=ManualTriggerConfig)


class ScheduleTrigger(_Trigger):
    type: Literal["schedule"] = "schedule"
    configuration: ScheduleTriggerConfig


class EventTrigger(_Trigger):
    type: Literal["event"] = "event"
    configuration: EventTriggerConfig


class WebhookTrigger(_Trigger):
    type: Literal["webhook"] = "webhook"
    configuration: WebhookTriggerConfig = Field(default_factory=WebhookTriggerConfig)


WorkflowTrigger = Annotated[
    Union[ManualTrigger, ScheduleTrigger, EventTrigger, WebhookTrigger], Field(discriminator="type")
]
TRIGGER_TYPES: tuple[str, ...] = ("manual", "schedule", "event", "webhook")


# --- The definition ------------------------------------------------------------------


class WorkflowDefinition(CamelModel):
    """A workflow as users write it (YAML, JSON or Python)."""

    id: Annotated[str, Field(pattern=WORKFLOW_ID_PATTERN)]
    name: NonEmptyStr
    description: str = ""
    version: NonEmptyStr = "1"
    """Extension: part of the key that lets a resumed run skip completed steps."""
    inputs: dict[Annotated[str, Field(pattern=INPUT_NAME_PATTERN)], JsonSchema] = Field(default_factory=dict)
    """Extension (DESIGN.md §3): run inputs, name → JSON Schema fragment."""
    steps: Annotated[list[AnyWorkflowStep], Field(min_length=1)]
    triggers: list[WorkflowTrigger]
    error_handling: ErrorHandlingStrategy | None = None
    token_budget: PositiveStrictInt | None = None
    """Extension: tokens all agent calls of one run may use (the task budget of seed 000)."""
    team_token_budget: PositiveStrictInt | None = None
    """Extension: tokens the run's team may use together (seed 000 ``Team.token_budget``)."""
    priority: Priority = 3
    """Extension: the run's Task priority in the graph (1 lowest … 5 highest; a GNN task feature)."""
    complexity: Fraction = 0.5
    """Extension: the run's Task complexity in [0, 1] (a GNN task feature)."""
    formation_method: FormationMethod = FormationMethod.MANUAL
    """Extension (seed 000 ``Team.formation_method``): ``manual`` when every agent step names its agent;
    ``recommended`` or ``auto`` let the team recommender staff agent steps that name only a capability
    (``recommended``: proposed by the recommender and accepted as is; ``auto``: assembled with no person
    involved; both recorded as such on the Team and the TeamAssembled event)."""
    team_size: Annotated[int, Field(ge=1, le=20)] | None = None
    """Extension: most agents the recommender may put in the team (default: staffed capabilities + 1, 2 to 5)."""
    _analysis: WorkflowGraph | None = PrivateAttr(default=None)
    _input_validators: dict[str, Any] | None = PrivateAttr(default=None)
    parallel: bool = True
    """When false, steps run one at a time in definition order (dependencies still respected)."""
    max_concurrency: PositiveStrictInt | None = None
    """Extension: bound on steps running at once within one run."""
    tags: list[NonEmptyStr] = Field(default_factory=list)

    @field_validator("triggers")
    @classmethod
    def _at_least_one_trigger(cls, value: list[Any]) -> list[Any]:
        if not value:
            raise PydanticCustomError(
                "no_trigger", "at least one trigger must be defined (for example: type manual, schedule, event or webhook)"
            )
        if sum(1 for t in value if t.type == "webhook") > 1:
            raise ValueError("at most one webhook trigger per workflow (the endpoint is per workflow)")
        return value

    @model_validator(mode="after")
    def _unstaffed_steps_need_a_recommender(self) -> WorkflowDefinition:
        unstaffed = [s.id for s in self.unstaffed_steps()]
        if unstaffed and self.formation_method is FormationMethod.MANUAL:
            raise PydanticCustomError(
                "formation_method",
                "steps {steps} name no agent: set formationMethod to 'recommended' or 'auto' for the team recommender "
                "to staff them, or give each an 'agent'",
                {"steps": ", ".join(repr(s) for s in unstaffed)},
            )
        return self

    @model_validator(mode="after")
    def _whole_definition(self, info: ValidationInfo) -> WorkflowDefinition:
        from .workflow_graph import analyze_definition

        graph, problems = analyze_definition(self, context_of(info))
        self._analysis = graph
        if problems:
            raise PydanticCustomError(
                "workflow_invalid",
                "{summary}",
                {
                    "summary": "; ".join(f"{p.path}: {p.message}" if p.path else p.message for p in problems),
                    "problems": [p.as_dict() for p in problems],
                },
            )
        return self

    def analysis(self) -> WorkflowGraph:
        """The dependency graph found while validating, so compiling does not analyse twice.

        Definitions are treated as immutable once validated: after editing a
        nested step in place, validate the definition again.
        """
        if self._analysis is None:
            from .workflow_graph import analyze_definition

            self._analysis = analyze_definition(self)[0]
        return self._analysis

    def step(self, step_id: str) -> WorkflowStep:
        for step in self.all_steps():
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def all_steps(self) -> list[WorkflowStep]:
        """Top-level steps and inline forEach steps."""
        found: list[WorkflowStep] = []
        for step in self.steps:
            found.append(step)
            if isinstance(step, ParallelStep) and step.configuration.step is not None:
                found.append(step.configuration.step)
        return found

    def inputs_json_schema(self) -> dict[str, Any]:
        """The run inputs as one JSON Schema object: a deployment's parameter form in the Prefect UI."""
        return {
            "title": "Inputs",
            "type": "object",
            "description": f"Run inputs of workflow {self.id!r}",
            "properties": {name: {"title": name, **schema} for name, schema in self.inputs.items()},
            "required": [name for name, schema in self.inputs.items() if "default" not in schema],
            "additionalProperties": False,
        }

    def unstaffed_steps(self) -> list[TaskStep]:
        """Agent steps that name only a capability: the team recommender staffs them before a run."""
        return [s for s in self.all_steps() if isinstance(s, TaskStep) and s.configuration.is_unstaffed]

    def resolve_run_inputs(self, values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Apply defaults and check run inputs against ``inputs``; returns (inputs, problems)."""
        if self._input_validators is None:  # built once: a webhook checks every delivery's inputs
            from jsonschema import Draft202012Validator

            self._input_validators = {name: Draft202012Validator(schema) for name, schema in self.inputs.items()}
        problems = [f"inputs.{name}: unknown input (declared: {', '.join(sorted(self.inputs)) or 'none'})" for name in values if name not in self.inputs]
        resolved: dict[str, Any] = {}
        for name, schema in self.inputs.items():
            if name in values:
                value = values[name]
            elif "default" in schema:
                value = schema["default"]
            else:
                problems.append(f"inputs.{name}: required input is missing")
                continue
            for error in self._input_validators[name].iter_errors(value):
                where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
                problems.append(f"inputs.{name}{where}: {error.message}")
            resolved[name] = value
        return resolved, problems

    def is_non_trivial(self) -> bool:
        """More than one step, or any agent step: such workflows must say how errors are handled."""
        return len(self.steps) > 1 or any(
            isinstance(s, TaskStep) and s.configuration.is_agent for s in self.all_steps()
        )
