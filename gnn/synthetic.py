"""Synthetic team history from seed 000's ``SyntheticDataConfig``, with the hidden truth that decided it.

The generator plays out a history the engine could have recorded: agents with
capabilities, tasks that require capabilities, and teams (assembled by a noisy
human-like assembler) whose outcomes follow a hidden model. The graph gets only
what the engine would observe; the :class:`GroundTruth` keeps the rest, so a
recommendation can be scored against what *would* have worked.

What each knob means here:

* ``num_agents``, ``num_capabilities``, ``num_tasks``: node counts. Tasks are
  created one by one over
  :data:`~agentparty.gnn.synthetic_population.HISTORY_DAYS` days (fixed anchor,
  so the same seed gives the same timestamps).
* ``num_teams``: how many of the tasks were worked on (one team each, spread
  over the whole period); the other tasks are still ``submitted``.
* ``capability_distribution``: how often a capability is held and required:
  ``zipf`` (the capability of rank r with weight 1/r^1.1) or ``uniform``.
* ``collaboration_density``: the chance that the assembler, filling a slot,
  prefers someone an already chosen member has worked with (teams re-form, so
  WORKED_WITH history is dense for small values of 1 - density).
* ``success_rate_mean`` / ``success_rate_std``: each agent's hidden quality is
  drawn from a normal with these moments; a team's success probability is its
  members' mean quality moved by skill coverage, pair synergy and complexity.
* ``random_seed``: everything (ids included) derives from it.

Hidden truth: per agent a quality and a skill per held capability; per pair a
synergy (dot product of hidden 3-d "work styles", scaled to ±:data:`SYNERGY_SCALE`).
The slot of each member completes with the team's success probability; the team's
``performance_score`` is the share of completed slots (the engine's rule), and
the history figures (WORKED_WITH, proficiency, reliability, token counts)
follow the same update rules as a recorded run (:mod:`agentparty.runtime.run_recorder`).

Synthetic agents are ad-hoc agents on the ``model`` given (``simulated`` by
default): their ids are the ones a workflow step naming ``handle`` on that model
would put to work, so a recommended synthetic agent can really run.

The population (capabilities, agents, tasks) is drawn in
:mod:`agentparty.gnn.synthetic_population`; this module plays the teams out over
it and holds what the history is made of (:class:`TeamRecord`, :class:`GroundTruth`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from agentparty.gnn.synthetic_population import (
    CapabilityTable,
    SyntheticAgents,
    add_agents,
    draw_agents,
    draw_capabilities,
    draw_tasks,
)
from agentparty.models.config import SyntheticDataConfig
from agentparty.models.graph import FormationMethod, SystemActor, Task, Team, stable_id
from agentparty.models.graph_relationships import AssembledBy, MemberOf, WorkedWith, WorksOn
from agentparty.models.run_history import PROFICIENCY_PRIOR, RELIABILITY_RATE
from agentparty.models.states import TaskStatus, TeamStatus
from agentparty.runtime.graph_store import GraphBatch

SYNERGY_SCALE = 0.15
ASSEMBLER = "synthetic-history"
SUCCESS_THRESHOLD = 0.5
"""A team succeeded when at least half of its slots completed."""


@dataclass(frozen=True)
class TeamRecord:
    """One team's work on one task, as history (and the training labels) see it."""

    team_id: str
    task_id: str
    members: tuple[str, ...]
    performance_score: float
    created_at: datetime

    @property
    def succeeded(self) -> bool:
        return self.performance_score >= SUCCESS_THRESHOLD


@dataclass
class GroundTruth:
    """What decided the synthetic outcomes; never written to the graph."""

    agent_ids: list[str]
    capability_names: list[str]
    task_ids: list[str]
    quality: np.ndarray
    """[agents] hidden overall quality."""
    skill: np.ndarray
    """[agents, capabilities] hidden skill, 0 where the agent lacks the capability."""
    style: np.ndarray
    """[agents, 3] unit vectors; synergy is their scaled dot product."""
    task_capabilities: list[list[int]]
    _agent_index: dict[str, int] = field(default_factory=dict, repr=False)
    _task_index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._agent_index = {a: i for i, a in enumerate(self.agent_ids)}
        self._task_index = {t: i for i, t in enumerate(self.task_ids)}

    def knows_task(self, task_id: str) -> bool:
        return task_id in self._task_index

    def synergy(self, a: int, b: int) -> float:
        return float(SYNERGY_SCALE * self.style[a] @ self.style[b])

    def suitability(self, task_id: str) -> np.ndarray:
        """[agents] expected contribution to the task: quality × mean skill over its required capabilities."""
        required = self.task_capabilities[self._task_index[task_id]]
        return self.quality * self.skill[:, required].mean(axis=1)

    def ideal_team(self, task_id: str, size: int) -> list[str]:
        """The ``size`` agents with the highest suitability (ties by id): the relevant set for recall@k."""
        scores = self.suitability(task_id)
        order = sorted(range(len(self.agent_ids)), key=lambda i: (-scores[i], self.agent_ids[i]))
        return [self.agent_ids[i] for i in order[:size]]

    def pair_success(self, agent_a: str, agent_b: str) -> float:
        """Expected success of the two working together: mean quality plus synergy."""
        a, b = self._agent_index[agent_a], self._agent_index[agent_b]
        return float(np.clip((self.quality[a] + self.quality[b]) / 2 + self.synergy(a, b), 0.0, 1.0))

    def agent_index(self, agent_id: str) -> int | None:
        return self._agent_index.get(agent_id)


@dataclass
class SyntheticHistory:
    config: SyntheticDataConfig
    batch: GraphBatch
    truth: GroundTruth
    teams: list[TeamRecord]


def generate(config: SyntheticDataConfig, model: str = "simulated") -> SyntheticHistory:
    """The whole history as one graph batch (pure: :func:`write_history` stores it).

    The parts are drawn in a fixed order from one generator seeded with ``random_seed``
    (capabilities, agents, tasks, then the teams in time order), so a seed always gives
    the same history: reordering the draws changes every history.
    """
    rng = np.random.default_rng(config.random_seed)
    batch = GraphBatch()
    assembler = SystemActor(id=stable_id("actor", ASSEMBLER), name=ASSEMBLER, kind="assembler")
    batch.add(assembler)
    capabilities = draw_capabilities(rng, config, batch)
    agents = draw_agents(rng, config, capabilities, model)
    task_ids, tasks, task_caps = draw_tasks(rng, config, capabilities, batch)
    truth = GroundTruth(
        agent_ids=agents.ids,
        capability_names=capabilities.names,
        task_ids=task_ids,
        quality=agents.quality,
        skill=agents.skill,
        style=agents.style,
        task_capabilities=task_caps,
    )
    collaborations = _Collaborations(peers={a: set() for a in range(config.num_agents)})
    teams: list[TeamRecord] = []
    holders = [np.flatnonzero(agents.skill[:, c] > 0) for c in range(config.num_capabilities)]
    teamed = sorted(int(t) for t in rng.choice(config.num_tasks, size=config.num_teams, replace=False))
    for t in teamed:  # in time order: each outcome moves the figures the next assembler sees
        members, roles = _assemble(
            rng, config, task_caps[t], holders=holders, agents=agents, peers=collaborations.peers
        )
        team = _Team(
            stable_id("synthetic-team", str(config.random_seed), str(t)), tasks[t], task_caps[t], members, roles
        )
        record, tasks[t] = _play(
            rng, team, capabilities=capabilities, agents=agents, truth=truth, collaborations=collaborations, batch=batch
        )
        batch.link(AssembledBy(), team.team_id, assembler.id, target_label="SystemActor")
        teams.append(record)
    batch.add(*tasks)
    add_agents(batch, agents, capabilities, model)
    for (a, b), scores in sorted(collaborations.worked.items()):
        batch.link(
            WorkedWith(
                success_score=float(np.round(np.mean(scores), 6)),
                task_count=len(scores),
                last_collaboration=collaborations.last_together[(a, b)],
            ),
            agents.ids[a],
            agents.ids[b],
        )
    return SyntheticHistory(config=config, batch=batch, truth=truth, teams=teams)


@dataclass
class _Collaborations:
    """Who has worked with whom so far: the assembler's familiar faces and the WORKED_WITH figures."""

    peers: dict[int, set[int]]
    worked: dict[tuple[int, int], list[float]] = field(default_factory=dict)
    last_together: dict[tuple[int, int], datetime] = field(default_factory=dict)

    def record(self, pairs: list[tuple[int, int]], agent_ids: list[str], score: float, finished: datetime) -> None:
        for a, b in pairs:
            key = (a, b) if agent_ids[a] < agent_ids[b] else (b, a)
            self.worked.setdefault(key, []).append(score)
            self.last_together[key] = finished
            self.peers[a].add(b)
            self.peers[b].add(a)


@dataclass
class _Team:
    """One team about to work on its task: members (agent rows) and the capability each was chosen for."""

    team_id: str
    task: Task
    needed: list[int]
    """The capabilities the task requires."""
    members: list[int]
    roles: dict[int, int | None]


def _assemble(
    rng: np.random.Generator,
    config: SyntheticDataConfig,
    caps: list[int],
    *,
    holders: list[np.ndarray],
    agents: SyntheticAgents,
    peers: dict[int, set[int]],
) -> tuple[list[int], dict[int, int | None]]:
    """A human-like assembler's team for a task: members, and the capability each was chosen for."""
    n_agents = config.num_agents
    size = int(np.clip(len(caps) + rng.integers(0, 2), 2, min(5, n_agents)))
    members: list[int] = []
    roles: dict[int, int | None] = {}
    for c in caps[:size]:
        candidates = holders[c][~np.isin(holders[c], members)]
        known = set().union(*(peers[m] for m in members))
        familiar = candidates[np.isin(candidates, list(known))] if known else candidates[:0]
        pool = familiar if len(familiar) and rng.random() < config.collaboration_density else candidates
        if not len(pool):
            continue
        # A human-like assembler: prefers higher *observed* proficiency, with noise.
        weights = np.exp(3 * agents.observed[pool, c])
        pick = int(pool[int(rng.choice(len(pool), p=weights / weights.sum()))])
        members.append(pick)
        roles[pick] = c
    while len(members) < size:
        known_peers = sorted(set().union(*(peers[m] for m in members)) - set(members))
        if known_peers and rng.random() < config.collaboration_density:
            pick = known_peers[int(rng.integers(len(known_peers)))]
        else:
            pick = outsider(rng, n_agents, set(members))
        members.append(pick)
        roles[pick] = next((c for c in caps if agents.skill[pick, c] > 0), None)
    return members, roles


def _play(
    rng: np.random.Generator,
    team: _Team,
    *,
    capabilities: CapabilityTable,
    agents: SyntheticAgents,
    truth: GroundTruth,
    collaborations: _Collaborations,
    batch: GraphBatch,
) -> tuple[TeamRecord, Task]:
    """The team's outcome under the hidden model, recorded as a run would be; returns it and the finished task."""
    task, caps, members = team.task, team.needed, team.members
    coverage = float(np.mean([max(agents.skill[m, c] for m in members) for c in caps]))
    pairs = [(a, b) for i, a in enumerate(members) for b in members[i + 1 :]]
    synergy = float(np.mean([truth.synergy(a, b) for a, b in pairs])) if pairs else 0.0
    p_success = float(
        np.clip(
            agents.quality[members].mean() + 0.5 * (coverage - 0.6) + synergy - 0.1 * (task.complexity - 0.5),
            0.02,
            0.98,
        )
    )
    completed = {m: bool(rng.random() < p_success) for m in members}
    score = sum(completed.values()) / len(members)
    started = task.created_at + timedelta(hours=1)
    finished = started + timedelta(hours=float(rng.uniform(1, 48)))
    usage_tokens = 0
    for m in members:
        role = team.roles[m]
        costs = capabilities.token_costs
        cost = int(costs[role]) if role is not None else int(np.mean([costs[c] for c in caps]))
        tokens = int(cost * (1 + task.complexity) * rng.uniform(0.6, 1.4))
        usage_tokens += tokens
        _record_slot(agents, m, role, completed[m], tokens)
        member = MemberOf(role=capabilities.names[role] if role is not None else "support", joined_at=started)
        batch.link(member, agents.ids[m], team.team_id)
    collaborations.record(pairs, agents.ids, score, finished)
    status_ok = score >= SUCCESS_THRESHOLD
    task = task.model_copy(
        update={
            "status": TaskStatus.COMPLETED if status_ok else TaskStatus.FAILED,
            "completed_at": finished,
            "token_usage": usage_tokens,
        }
    )
    batch.add(
        Team(
            id=team.team_id,
            name=f"team for {task.title}",
            created_at=started,
            status=TeamStatus.COMPLETED if status_ok else TeamStatus.FAILED,
            size=len(members),
            task_id=task.id,
            formation_method=FormationMethod.MANUAL,
            performance_score=score,
            token_budget=task.token_budget,
            token_usage=usage_tokens,
            completion_time=int((finished - started).total_seconds()),
            outcome_recorded=True,
        )
    )
    batch.link(WorksOn(), team.team_id, task.id)
    return TeamRecord(team.team_id, task.id, tuple(agents.ids[m] for m in members), score, started), task


def _record_slot(agents: SyntheticAgents, m: int, role: int | None, completed: bool, tokens: int) -> None:
    """One member's slot moves its figures by the engine's rules: tokens, reliability, the role's proficiency."""
    agents.token_count[m] += tokens
    agents.reliability[m] = (1 - RELIABILITY_RATE) * agents.reliability[m] + RELIABILITY_RATE * float(completed)
    if role is not None:
        key = (m, role)
        u = agents.usage[key]
        agents.observed[key] = (agents.observed[key] * (u + PROFICIENCY_PRIOR) + float(completed)) / (
            u + PROFICIENCY_PRIOR + 1
        )
        agents.token_eff[key] = (agents.token_eff[key] * u + tokens) / (u + 1)
        agents.usage[key] = u + 1


def outsider(rng: np.random.Generator, population: int, taken: set[int]) -> int:
    """A uniformly random index not in ``taken`` (rejection sampling: ``taken`` is a handful, the population large)."""
    while True:
        pick = int(rng.integers(population))
        if pick not in taken:
            return pick
