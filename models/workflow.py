"""Seed 002's WorkflowDefinition, with the step format of DESIGN.md §3.

Structural rules (types, required fields, per-field formats) are ordinary
pydantic validation with natural error locations. Rules that span the whole
definition (references resolve, ids unique, no cycles, error handling present)
live in :mod:`agentparty.models.workflow_graph` and run as the definition's
final validator; every problem found there is reported, each with its own field
path (see :mod:`agentparty.models.errors`).

Its parts have modules of their own: the steps (:mod:`~agentparty.models.workflow_steps`),
the triggers (:mod:`~agentparty.models.workflow_triggers`) and the error handling
(:mod:`~agentparty.models.error_handling`).
"""

from __future__ import annotations

from typing import Annotated, Any

from jsonschema import Draft202012Validator
from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ._base import CamelModel, Fraction, NonEmptyStr, PositiveStrictInt, Priority
from .context import context_of
from .error_handling import (
    BackoffStrategy,
    CircuitBreakerConfig,
    ErrorHandlingStrategy,
    FallbackAction,
    RetryPolicy,
)
from .graph import FormationMethod
from .workflow_graph import WorkflowGraph, analyze_definition
from .workflow_steps import (
    HANDLER_PATTERN,
    INPUT_NAME_PATTERN,
    STEP_ID_PATTERN,
    STEP_TYPES,
    AnyWorkflowStep,
    DecisionConfiguration,
    DecisionStep,
    InlineStep,
    InlineSubgraphStep,
    InlineTaskStep,
    JsonSchema,
    ParallelConfiguration,
    ParallelStep,
    StepConfiguration,
    StepId,
    SubgraphConfiguration,
    SubgraphStep,
    TaskConfiguration,
    TaskStep,
    WorkflowStep,
)
from .workflow_triggers import (
    KAFKA_EVENT_PREFIX,
    TRIGGER_TYPES,
    EventTrigger,
    EventTriggerConfig,
    KafkaBridgeConfig,
    ManualTrigger,
    ManualTriggerConfig,
    ScheduleTrigger,
    ScheduleTriggerConfig,
    WebhookTrigger,
    WebhookTriggerConfig,
    WorkflowTrigger,
)

# Every name this module defined before its parts moved out stays importable from here,
# for compatibility (``from agentparty.models.workflow import WebhookTrigger`` and the like).
__all__ = [
    "HANDLER_PATTERN",
    "INPUT_NAME_PATTERN",
    "KAFKA_EVENT_PREFIX",
    "STEP_ID_PATTERN",
    "STEP_TYPES",
    "TRIGGER_TYPES",
    "WORKFLOW_ID_PATTERN",
    "AnyWorkflowStep",
    "BackoffStrategy",
    "CircuitBreakerConfig",
    "DecisionConfiguration",
    "DecisionStep",
    "ErrorHandlingStrategy",
    "EventTrigger",
    "EventTriggerConfig",
    "FallbackAction",
    "InlineStep",
    "InlineSubgraphStep",
    "InlineTaskStep",
    "JsonSchema",
    "KafkaBridgeConfig",
    "ManualTrigger",
    "ManualTriggerConfig",
    "ParallelConfiguration",
    "ParallelStep",
    "RetryPolicy",
    "ScheduleTrigger",
    "ScheduleTriggerConfig",
    "StepConfiguration",
    "StepId",
    "SubgraphConfiguration",
    "SubgraphStep",
    "TaskConfiguration",
    "TaskStep",
    "WebhookTrigger",
    "WebhookTriggerConfig",
    "WorkflowDefinition",
    "WorkflowStep",
    "WorkflowTrigger",
]

WORKFLOW_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
SEALED_INPUT_SCHEMA: dict[str, Any] = {"type": "string", "pattern": "^ap1:", "description": "sealed by Agent Party"}
"""What a ``writeOnly`` (secret) input is when it reaches Prefect: sealed (``runtime/secret_inputs.py``)."""


def _parameter_schema(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """One input as a deployment's parameter: a secret one may also be its sealed form, which Prefect's
    parameter check (``enforce_parameter_schema``) must let through; the run checks the opened value."""
    if schema.get("writeOnly") is not True:
        return {"title": name, **schema}
    shown: dict[str, Any] = {key: schema[key] for key in ("description", "default") if key in schema}
    return {"title": name, "writeOnly": True, **shown, "anyOf": [schema, SEALED_INPUT_SCHEMA]}


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
                "no_trigger",
                "at least one trigger must be defined (for example: type manual, schedule, event or webhook)",
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
            "properties": {name: _parameter_schema(name, schema) for name, schema in self.inputs.items()},
            "required": [name for name, schema in self.inputs.items() if "default" not in schema],
            "additionalProperties": False,
        }

    def unstaffed_steps(self) -> list[TaskStep]:
        """Agent steps that name only a capability: the team recommender staffs them before a run."""
        return [s for s in self.all_steps() if isinstance(s, TaskStep) and s.configuration.is_unstaffed]

    def resolve_run_inputs(self, values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Apply defaults and check run inputs against ``inputs``; returns (inputs, problems)."""
        if self._input_validators is None:  # built once: a webhook checks every delivery's inputs
            self._input_validators = {name: Draft202012Validator(schema) for name, schema in self.inputs.items()}
        declared = ", ".join(sorted(self.inputs)) or "none"
        problems = [
            f"inputs.{name}: unknown input (declared: {declared})" for name in values if name not in self.inputs
        ]
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
