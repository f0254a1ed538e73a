"""A run as the team history counts it: its ids, the tally of its slots, and what it adds to the history.

Pure rules; the graph writer (``runtime/run_recorder.py``) applies an
:class:`Outcome` inside the run's closing transaction, once per team.

**After each run** (in the closing transaction, once per team: the team's
``outcome_recorded`` flag is read and set in that same transaction, so a replay
or a resumed run cannot count the task twice):

* the team's ``performance_score`` is the share of its task slots that ran and
  completed (``completed / (completed + failed)``, fan-out items counted one by one);
* every pair of distinct members gets ``WORKED_WITH`` (one relationship per pair,
  from the smaller id to the larger): ``success_score`` is the running mean of the
  teams' performance scores, ``task_count`` counts the tasks, ``last_collaboration``
  is the run's end;
* for each agent and capability its steps exercised (``n`` slots, ``k`` completed,
  ``t`` tokens): ``proficiency ← (p·(u + PRIOR) + k) / (u + PRIOR + n)`` where ``u``
  is ``usage_count`` before the run and PRIOR = 2, i.e. the template's proficiency
  counts as two earlier uses and every use pulls it toward its success rate;
  ``usage_count ← u + n``; ``token_efficiency`` (tokens per use, as seed 000
  defines it) becomes the running mean of tokens per use;
* each agent's ``reliability_score`` moves toward its success share in the run,
  ``r ← (1 − α)·r + α·share`` with α = 0.2, and ``token_count`` adds its tokens.

A run whose outcome was recorded as failed and that is later resumed to success
updates the task's and team's status, not the means: history counts a task once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .engagements import SlotRecord, messages_exchanged
from .graph import capability_id, stable_id
from .run_results import StepResult
from .workflow import TaskStep, WorkflowDefinition

PROFICIENCY_PRIOR = 2.0
"""A template's proficiency counts as this many earlier uses."""
RELIABILITY_RATE = 0.2
"""How far one run moves an agent's reliability toward its success share in the run."""


def task_id_for(run_key: str) -> str:
    """The Task a run is (its graph node, its events' ``task_id``)."""
    return stable_id("task", run_key)


def team_id_for(run_key: str) -> str:
    return stable_id("team", run_key)


def required_capabilities(definition: WorkflowDefinition) -> list[str]:
    """The capabilities a run's agent steps name (the Task's REQUIRES, the analysis event's extracted capabilities)."""
    return sorted(
        {
            s.configuration.capability
            for s in definition.all_steps()
            if isinstance(s, TaskStep) and s.configuration.capability
        }
    )


@dataclass
class RunTally:
    """What a run's steps have done so far, kept once for both the graph and the events of the run."""

    slots: dict[str, SlotRecord] = field(default_factory=dict)
    """The latest record of every slot that ran (a retried slot's last word counts)."""
    members: set[str] = field(default_factory=set)
    """Agents that worked in the run."""
    capabilities: set[str] = field(default_factory=set)
    """Capabilities those agents have."""
    tokens_by_step: dict[str, int] = field(default_factory=dict)
    messages_by_slot: dict[str, int] = field(default_factory=dict)
    """Agent-to-agent messages (``ask_agent`` questions and answers) of each slot's engagements, however deep."""

    def add(self, result: StepResult, records: Iterable[SlotRecord]) -> None:
        """Take in one step result (idempotent: slots, steps and agents are keyed)."""
        self.tokens_by_step[result.step_id] = result.tokens
        for record in records:
            self.slots[record.slot] = record
            self.messages_by_slot[record.slot] = messages_exchanged(record.agents)
            for _, work in record.engagements():  # agents another asked join the team too
                self.members.add(work.agent.id)
                self.capabilities.update(work.capabilities)

    @property
    def messages_exchanged(self) -> int:
        """The team's agent-to-agent messages so far (``team_performance``'s ``messages_exchanged``)."""
        return sum(self.messages_by_slot.values())

    @property
    def token_usage(self) -> int:
        return sum(self.tokens_by_step.values())

    def performance_score(self, completed: bool) -> float:
        """Share of the task slots that ran and completed; with none, whether the run completed."""
        ran = list(self.slots.values())
        if not ran:
            return 1.0 if completed else 0.0
        return sum(1 for r in ran if r.completed) / len(ran)


@dataclass(frozen=True)
class Outcome:
    """A finished team's contribution to collaboration, proficiency and reliability history."""

    team_id: str
    at: datetime
    pairs: list[dict[str, Any]]
    capabilities: list[dict[str, Any]]
    agents: list[dict[str, Any]]


def outcome_of(tally: RunTally, team_id: str, score: float, ended: datetime) -> Outcome:
    """What a finished team adds to the history: per pair, per agent and capability, per agent."""
    by_agent: dict[str, list[bool]] = defaultdict(list)
    tokens: dict[str, int] = defaultdict(int)
    uses: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])  # slots, completed, tokens
    for record in tally.slots.values():
        final = {w.agent.id: w for w in record.agents}  # one engagement per slot; its last word
        for agent_id, work in final.items():
            by_agent[agent_id].append(record.completed)
            used_tokens = work.input_tokens + work.output_tokens if record.completed else 0
            tokens[agent_id] += used_tokens
            for capability in work.used:
                counts = uses[(agent_id, capability)]
                counts[0] += 1
                counts[1] += int(record.completed)
                counts[2] += used_tokens
    members = sorted(tally.members)
    return Outcome(
        team_id=team_id,
        at=ended,
        pairs=[{"a": a, "b": b, "score": score} for i, a in enumerate(members) for b in members[i + 1 :]],
        capabilities=[
            {"agent": agent_id, "capability": capability_id(name), "used": n, "completed": k, "tokens": t}
            for (agent_id, name), (n, k, t) in sorted(uses.items())
        ],
        agents=[
            {"agent": agent_id, "share": sum(done) / len(done), "tokens": tokens[agent_id]}
            for agent_id, done in sorted(by_agent.items())
        ],
    )


def updated_proficiency(proficiency: float, usage_count: int, used: int, completed: int) -> float:
    """The proficiency rule: ``(p·(u + PRIOR) + k) / (u + PRIOR + n)``."""
    return (proficiency * (usage_count + PROFICIENCY_PRIOR) + completed) / (usage_count + PROFICIENCY_PRIOR + used)


def updated_reliability(reliability: float, share: float) -> float:
    """The reliability rule: ``(1 − α)·r + α·share``."""
    return (1.0 - RELIABILITY_RATE) * reliability + RELIABILITY_RATE * share
