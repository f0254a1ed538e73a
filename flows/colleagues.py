"""Who a step's agent may hand a sub-question to (``ask_agent``, ``tasks/delegation.py``).

The step's ``delegates`` (template names, or ad-hoc agents' names), then, with
``delegateToTeam``, the run's team: the agents its other agent steps name and,
when the team recommender staffed the run, every member it recommended (named
by handle, ``template@version``). A step that asks for neither gives its agent
no ``ask_agent`` tool. The asked agents get the same list (each leaves itself
out), so they may ask on, within the runtime's delegation limits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentparty.models import TaskStep, WorkflowDefinition
from agentparty.models.engagements import Colleague

if TYPE_CHECKING:
    from agentparty.flows.staffing import Staffing  # its module loads the recommender (torch): only when staffing


def step_colleagues(step: TaskStep, definition: WorkflowDefinition, staffing: Staffing | None) -> tuple[Colleague, ...]:
    """The agents ``step``'s agent may ask, in the order offered (one per name)."""
    config = step.configuration
    found: dict[str, Colleague] = {name: Colleague(name=name, agent=name) for name in config.delegates}
    if config.delegate_to_team:
        for colleague in (*_named_in_steps(definition), *_recommended(staffing)):
            found.setdefault(colleague.name, colleague)
    return tuple(found.values())


def _named_in_steps(definition: WorkflowDefinition) -> list[Colleague]:
    return [
        Colleague(
            name=s.configuration.agent,
            agent=s.configuration.agent,
            version=s.configuration.version,
            model=s.configuration.model,
        )
        for s in definition.all_steps()
        if isinstance(s, TaskStep) and s.configuration.agent is not None
    ]


def _recommended(staffing: Staffing | None) -> list[Colleague]:
    if staffing is None:
        return []
    found = []
    for member in staffing.recommendation.members:
        if member.handle is None:
            continue
        name, _, version = member.handle.partition("@")
        found.append(
            Colleague(name=member.handle, agent=name, version=version or None, model=None if version else member.model)
        )
    return found
