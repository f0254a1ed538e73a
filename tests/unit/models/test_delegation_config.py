"""The step's ``delegates`` and ``delegateToTeam``, and the runtime's delegation limits: refused at load with the
field and the reason, or taken as written."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from agentparty.models import DEFAULT_MODEL_REGISTRY, ValidationContext, WorkflowDefinition, field_errors
from agentparty.models.config import AgentRuntimeConfig

CONTEXT = ValidationContext(model_registry=DEFAULT_MODEL_REGISTRY)


def workflow(configuration: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "asks",
        "name": "Asks",
        "steps": [{"id": "draft", "type": "task", "configuration": configuration}],
        "triggers": [{"type": "manual"}],
        "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
    }


def errors_of(model: type[BaseModel], data: Any, context: ValidationContext | None = CONTEXT) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data, context=context)
    return [(e.path, e.message) for e in field_errors(caught.value)]


def test_delegates_are_taken_as_written() -> None:
    definition = WorkflowDefinition.model_validate(
        workflow({"agent": "writer", "delegates": ["researcher", "critic"], "delegateToTeam": True}), context=CONTEXT
    )
    config = definition.steps[0].configuration
    assert config.delegates == ["researcher", "critic"] and config.delegate_to_team  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("configuration", "path", "reason"),
    [
        (
            {"agent": "writer", "delegates": ["critic", "critic"]},
            "steps[0].configuration.delegates",
            "critic named more than once",
        ),
        (
            {"agent": "writer", "delegates": ["critic", " "]},
            "steps[0].configuration.delegates[1]",
            "at least 1 character",
        ),
        ({"agent": "writer", "delegates": ["writer"]}, "steps[0].configuration", "'writer' is this step's own agent"),
        (
            {"handler": "handlers:noop", "delegates": ["critic"]},
            "steps[0].configuration",
            "delegates apply only to agent",
        ),
        ({"handler": "handlers:noop", "delegateToTeam": True}, "steps[0].configuration", "delegate_to_team apply only"),
    ],
)
def test_a_delegates_list_that_cannot_work_is_refused(configuration: dict[str, Any], path: str, reason: str) -> None:
    errors = errors_of(WorkflowDefinition, workflow(configuration))
    assert any(p == path and reason in message for p, message in errors), errors


def test_delegating_on_a_model_without_functions_is_refused() -> None:
    registry = DEFAULT_MODEL_REGISTRY.model_copy(deep=True)
    registry.available_models["gpt-4"].capabilities.supports_functions = False
    doc = workflow({"agent": "writer", "model": "gpt-4", "delegates": ["critic"]})
    errors = errors_of(WorkflowDefinition, doc, ValidationContext(model_registry=registry))
    assert any("model 'gpt-4' does not support functions" in message for _, message in errors), errors


@pytest.mark.parametrize(
    ("field", "value"), [("maxDelegationDepth", -1), ("maxDelegationDepth", 6), ("maxDelegations", 33)]
)
def test_delegation_limits_are_bounded(field: str, value: int) -> None:
    errors = errors_of(AgentRuntimeConfig, {field: value}, None)
    assert errors and errors[0][0] in (field, "max_delegation_depth", "max_delegations"), errors
    assert AgentRuntimeConfig().max_delegation_depth == 2 and AgentRuntimeConfig().max_delegations == 4
