"""Staffing a run's agent steps that name only a capability, with the team recommender.

When a definition's ``formationMethod`` is ``recommended`` or ``auto``, steps
with a ``capability`` and no ``agent`` get their agent from
:class:`~agentparty.gnn.recommend.Recommender` (the champion GNN, or the best
baseline when none is trained yet) before the run starts: one team for the
run's task, covering the capabilities of those steps within the team's token
budget. Each step then goes to the recommended member that covers its
capability (else the most suitable member).

Only agents a step can put to work are candidates (they carry a ``handle``:
``template@version`` or an ad-hoc agent's name). The staffing is kept in the
state database keyed by the run (``runtime/run_documents.py``), so a resumed run
keeps its team even though the graph has changed since, on whichever host it
resumes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agentparty.gnn.pipeline import load_recommender
from agentparty.gnn.recommend import TeamRecommendation, team_size_for
from agentparty.models import WorkflowDefinition
from agentparty.models.graph import FormationMethod, Task
from agentparty.runtime.run_documents import RunDocuments


class StaffedStep(BaseModel):
    step_id: str
    agent_id: str
    agent: str
    """What the step request names: the template name, or the ad-hoc agent's name."""
    version: str | None = None
    model: str | None = None
    """The ad-hoc agent's model (template agents use their version's)."""
    role: str


class Staffing(BaseModel):
    run_key: str
    formation_method: FormationMethod
    recommendation: TeamRecommendation
    steps: dict[str, StaffedStep]

    def roles(self) -> dict[str, str]:
        """agent id → role, for the TeamAssembled event (several steps of one agent: their roles joined)."""
        roles: dict[str, list[str]] = {}
        for step in self.steps.values():
            names = roles.setdefault(step.agent_id, [])
            if step.role not in names:
                names.append(step.role)
        return {agent: ", ".join(names) for agent, names in roles.items()}


class StaffingError(RuntimeError):
    """No team could be recommended for the run's unstaffed steps."""


def staff_run(definition: WorkflowDefinition, run_key: str, task_id: str, store: Any, home: Path) -> Staffing:
    """The run's staffing: the one kept for this run key, else a new recommendation (then kept)."""
    kept = RunDocuments(home, "teams")
    known = kept.read(run_key)
    if known is not None:
        return Staffing.model_validate_json(known)

    steps = definition.unstaffed_steps()
    capabilities = sorted({s.configuration.capability for s in steps if s.configuration.capability})
    task = Task(
        id=task_id,
        title=definition.name,
        description=definition.description or definition.name,
        priority=definition.priority,
        complexity=definition.complexity,
        required_capabilities=capabilities,
        token_budget=definition.team_token_budget or definition.token_budget or 0,
    )
    recommender = load_recommender(store, home)
    size = definition.team_size or team_size_for(len(capabilities), len(recommender.snapshot.agents))
    recommendation = recommender.recommend(task, size=size, runnable_only=True)
    if not recommendation.members:
        raise StaffingError(
            f"the team recommender found no agent for {', '.join(capabilities)} within the token budget "
            f"{task.token_budget or 'unlimited'} ({recommendation.note})"
        )
    staffed: dict[str, StaffedStep] = {}
    for step in steps:
        capability = step.configuration.capability or ""
        covering = [m for m in recommendation.members if capability in m.covers]
        member = covering[0] if covering else max(recommendation.members, key=lambda m: m.suitability_rank)
        assert member.handle is not None  # runnable_only
        name, _, version = member.handle.partition("@")
        staffed[step.id] = StaffedStep(
            step_id=step.id,
            agent_id=member.agent_id,
            agent=name,
            version=version or None,
            model=None if version else member.model,
            role=capability or step.id,
        )
    staffing = Staffing(
        run_key=run_key, formation_method=definition.formation_method, recommendation=recommendation, steps=staffed
    )
    # two hosts staffing the same run key at once keep one team: the first written
    return Staffing.model_validate_json(kept.write_once(run_key, staffing.model_dump_json(indent=2)))


def staffing_markdown(staffing: Staffing) -> str:
    """The recommendation as a Prefect artifact: who, for which step, and why."""
    rec = staffing.recommendation
    lines = [
        f"# Team ({staffing.formation_method.value})",
        f"{rec.note}. Method **{rec.method}**, coverage {rec.coverage:.0%}, ~{rec.estimated_tokens:,} tokens"
        + (f" of {rec.token_budget:,}" if rec.token_budget else "")
        + ".",
        "",
        "| step | agent | why |",
        "|---|---|---|",
    ]
    members = {m.agent_id: m for m in rec.members}
    for step in staffing.steps.values():
        member = members[step.agent_id]
        lines.append(f"| {step.step_id} | {member.handle} | {member.explanation} |")
    if rec.uncovered:
        lines.append(f"\nUncovered: {', '.join(rec.uncovered)}")
    return "\n".join(lines) + "\n\n```json\n" + json.dumps(rec.model_dump(), indent=2) + "\n```"
