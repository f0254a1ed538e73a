"""Whom a step's agent may ask (``flows/colleagues.py``): its ``delegates``, then with ``delegateToTeam`` the run's
team, the agents other steps name and the members the team recommender chose."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from agentparty.flows.colleagues import step_colleagues
from agentparty.models import TaskStep, WorkflowDefinition
from agentparty.models.engagements import Colleague


def definition(**draft: Any) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(
        {
            "id": "team",
            "name": "Team",
            "formationMethod": "recommended",
            "steps": [
                {"id": "plan", "type": "task", "configuration": {"agent": "planner", "model": "gpt-4o"}},
                {"id": "check", "type": "task", "configuration": {"agent": "critic", "version": "1.2.0"}},
                {"id": "draft", "type": "task", "configuration": {"agent": "writer", **draft}},
                {"id": "facts", "type": "task", "configuration": {"capability": "data_analysis"}},
            ],
            "triggers": [{"type": "manual"}],
            "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
        }
    )


def draft_of(doc: WorkflowDefinition) -> TaskStep:
    step = doc.steps[2]
    assert isinstance(step, TaskStep)
    return step


STAFFING: Any = SimpleNamespace(
    recommendation=SimpleNamespace(
        members=[
            SimpleNamespace(handle="analyst@2.0.0", model="simulated"),
            SimpleNamespace(handle="scout", model="gpt-4o-mini"),
            SimpleNamespace(handle=None, model="simulated"),  # not runnable: never offered
        ]
    )
)


def test_a_step_without_delegates_asks_nobody() -> None:
    doc = definition()
    assert step_colleagues(draft_of(doc), doc, STAFFING) == ()


def test_delegates_then_the_team_one_per_name() -> None:
    doc = definition(delegates=["critic", "oracle"], delegateToTeam=True)
    assert step_colleagues(draft_of(doc), doc, STAFFING) == (
        Colleague("critic", "critic"),  # named on the step first: the template's latest version
        Colleague("oracle", "oracle"),
        Colleague("planner", "planner", model="gpt-4o"),
        Colleague("writer", "writer"),  # the asking agent leaves itself out when it asks (colleagues_for)
        Colleague("analyst@2.0.0", "analyst", version="2.0.0"),
        Colleague("scout", "scout", model="gpt-4o-mini"),
    )
    assert [c.name for c in step_colleagues(draft_of(doc), doc, None)] == ["critic", "oracle", "planner", "writer"]
