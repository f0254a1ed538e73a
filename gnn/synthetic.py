"""Synthetic team history from seed 000's ``SyntheticDataConfig``, with the hidden truth that decided it.

The generator plays out a history the engine could have recorded: agents with
capabilities, tasks that require capabilities, and teams (assembled by a noisy
human-like assembler) whose outcomes follow a hidden model. The graph gets only
what the engine would observe; the :class:`GroundTruth` keeps the rest, so a
recommendation can be scored against what *would* have worked.

What each knob means here:

* ``num_agents``, ``num_capabilities``, ``num_tasks``: node counts. Tasks are
  created one by one over :data:`HISTORY_DAYS` days (fixed anchor, so the same
  seed gives the same timestamps).
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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np

from agentparty.models.run_history import PROFICIENCY_PRIOR, RELIABILITY_RATE
from agentparty.models.config import SyntheticDataConfig
from agentparty.models.graph import (
    Agent,
    AssembledBy,
    Capability,
    FormationMethod,
    HasCapability,
    MemberOf,
    Requires,
    SystemActor,
    Task,
    Team,
    WorkedWith,
    WorksOn,
    capability_id,
    stable_id,
)
from agentparty.models.states import AgentLifecycleState, TaskStatus, TeamStatus
from agentparty.runtime.graph_store import GraphBatch
from agentparty.tasks.templates import persistent_agent_id

ANCHOR = datetime(2026, 1, 1, tzinfo=timezone.utc)
"""History starts here (fixed, so a seed always gives the same graph)."""
HISTORY_DAYS = 180
SYNERGY_SCALE = 0.15
ZIPF_EXPONENT = 1.1
ASSEMBLER = "synthetic-history"
SUCCESS_THRESHOLD = 0.5
"""A team succeeded when at least half of its slots completed."""

CAPABILITY_VOCABULARY: tuple[tuple[str, str, str], ...] = (
    ("research", "research", "Find, read and cite sources on a topic"),
    ("writing", "content", "Write clear prose for a given audience"),
    ("summarization", "content", "Condense long documents into key points"),
    ("code_generation", "engineering", "Write working code from a specification"),
    ("code_review", "engineering", "Review code for bugs, style and security"),
    ("data_analysis", "analytics", "Analyse tabular data and report findings"),
    ("translation", "content", "Translate text between languages faithfully"),
    ("planning", "management", "Break a goal into ordered, estimated tasks"),
    ("fact_checking", "research", "Verify claims against reliable sources"),
    ("customer_support", "support", "Answer customer questions politely and correctly"),
    ("sql", "engineering", "Write and optimise SQL queries"),
    ("visualization", "analytics", "Design charts that explain data"),
    ("testing", "engineering", "Design and write automated tests"),
    ("legal_review", "compliance", "Check documents for legal and compliance risks"),
    ("marketing_copy", "content", "Write persuasive marketing copy"),
    ("security_audit", "compliance", "Find security weaknesses in systems"),
    ("classification", "analytics", "Label items into categories consistently"),
    ("extraction", "analytics", "Extract structured fields from documents"),
    ("ux_review", "design", "Critique user interfaces for usability"),
    ("devops", "engineering", "Automate builds, deployments and infrastructure"),
    ("negotiation", "management", "Reach agreements between parties"),
    ("forecasting", "analytics", "Predict future values from history"),
    ("image_captioning", "vision", "Describe images accurately"),
    ("math", "analytics", "Solve quantitative problems step by step"),
)
TASK_VERBS = ("Prepare", "Deliver", "Draft", "Investigate", "Produce", "Review", "Assemble", "Plan")


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


def capability_names(count: int) -> list[str]:
    names = [name for name, _, _ in CAPABILITY_VOCABULARY]
    return [names[i] if i < len(names) else f"{names[i % len(names)]}_{i // len(names) + 1}" for i in range(count)]


def _popularity(count: int, distribution: str) -> np.ndarray:
    weights = 1.0 / np.arange(1, count + 1) ** ZIPF_EXPONENT if distribution == "zipf" else np.ones(count)
    return weights / weights.sum()


def synthetic_agent_handle(seed: int, index: int) -> str:
    return f"synthetic-s{seed}-{index:05d}"


def generate(config: SyntheticDataConfig, model: str = "simulated") -> SyntheticHistory:
    """The whole history as one graph batch (pure: :func:`write_history` stores it)."""
    rng = np.random.default_rng(config.random_seed)
    n_agents, n_caps, n_tasks = config.num_agents, config.num_capabilities, config.num_tasks
    seed_tag = str(config.random_seed)
    batch = GraphBatch()
    assembler = SystemActor(id=stable_id("actor", ASSEMBLER), name=ASSEMBLER, kind="assembler")
    batch.add(assembler)

    # Capabilities ---------------------------------------------------------------
    names = capability_names(n_caps)
    popularity = _popularity(n_caps, config.capability_distribution)
    cap_ids = [capability_id(name) for name in names]
    token_costs = rng.integers(200, 2000, size=n_caps)
    compatibility: list[list[str]] = []
    for c in range(n_caps):
        others = [o for o in range(n_caps) if o != c]
        picks = rng.choice(others, size=min(len(others), int(rng.integers(1, 4))), replace=False, p=_renormalised(popularity, others)) if others else []
        compatibility.append(sorted(names[o] for o in picks))
    for c, name in enumerate(names):
        vocab = CAPABILITY_VOCABULARY[c % len(CAPABILITY_VOCABULARY)]
        batch.add(Capability(
            id=cap_ids[c], name=name, description=vocab[2], category=vocab[1], created_at=ANCHOR,
            token_cost=int(token_costs[c]), compatibility=compatibility[c],
        ))

    # Agents (hidden quality, skill and style) -----------------------------------------
    quality = np.clip(rng.normal(config.success_rate_mean, config.success_rate_std, size=n_agents), 0.05, 0.99)
    style = rng.normal(size=(n_agents, 3))
    style /= np.linalg.norm(style, axis=1, keepdims=True)
    skill = np.zeros((n_agents, n_caps))
    held: list[list[int]] = []
    handles = [synthetic_agent_handle(config.random_seed, i) for i in range(n_agents)]
    agent_ids = [persistent_agent_id("ad-hoc", handle, model) for handle in handles]
    observed = np.zeros((n_agents, n_caps))
    """Proficiency as the graph records it (noisy skill, then moved by outcomes); what the assembler sees."""
    usage: dict[tuple[int, int], int] = {}
    token_eff: dict[tuple[int, int], float] = {}
    for a in range(n_agents):
        count = int(np.clip(1 + rng.poisson(2), 1, min(6, n_caps)))
        caps = sorted(int(c) for c in rng.choice(n_caps, size=count, replace=False, p=popularity))
        held.append(caps)
        for c in caps:
            skill[a, c] = rng.uniform(0.2, 1.0)
            observed[a, c] = float(np.clip(skill[a, c] + rng.normal(0, 0.15), 0.05, 0.95))
            usage[(a, c)] = 0
            token_eff[(a, c)] = 0.0
    reliability = np.full(n_agents, 0.5)
    token_count = np.zeros(n_agents, dtype=np.int64)
    created = [ANCHOR + timedelta(hours=float(rng.uniform(0, 24 * 14))) for _ in range(n_agents)]

    # Tasks ------------------------------------------------------------------------------
    task_ids = [stable_id("synthetic-task", seed_tag, str(t)) for t in range(n_tasks)]
    offsets = np.sort(rng.uniform(14, HISTORY_DAYS, size=n_tasks))
    task_caps: list[list[int]] = []
    tasks: list[Task] = []
    for t in range(n_tasks):
        count = int(np.clip(1 + rng.binomial(3, 0.4), 1, n_caps))
        caps = sorted(int(c) for c in rng.choice(n_caps, size=count, replace=False, p=popularity))
        task_caps.append(caps)
        complexity = float(np.round(rng.uniform(0.1, 0.95), 3))
        priority = int(rng.integers(1, 6))
        budget = int(sum(int(token_costs[c]) for c in caps) * (1 + complexity) * 1.5)
        verb = TASK_VERBS[int(rng.integers(len(TASK_VERBS)))]
        title = f"{verb} {' and '.join(names[c].replace('_', ' ') for c in caps)}"
        task = Task(
            id=task_ids[t], title=title,
            description=f"{title}. Needs {', '.join(names[c] for c in caps)}; complexity {complexity:.2f}, priority {priority}.",
            created_at=ANCHOR + timedelta(days=float(offsets[t])), status=TaskStatus.SUBMITTED, priority=priority,
            complexity=complexity, required_capabilities=[names[c] for c in caps], token_budget=budget,
        )
        tasks.append(task)
        for rank, c in enumerate(caps):
            batch.link(
                Requires(importance=float(np.round(1.0 - 0.15 * rank, 3)), complexity=float(np.clip(np.round(complexity + rng.normal(0, 0.05), 3), 0, 1))),
                task.id, cap_ids[c],
            )

    truth = GroundTruth(
        agent_ids=agent_ids, capability_names=names, task_ids=task_ids, quality=quality, skill=skill, style=style,
        task_capabilities=task_caps,
    )

    # Teams, in time order ----------------------------------------------------------------
    holders = [np.flatnonzero(skill[:, c] > 0) for c in range(n_caps)]
    peers: dict[int, set[int]] = {a: set() for a in range(n_agents)}
    worked: dict[tuple[int, int], list[float]] = {}
    last_together: dict[tuple[int, int], datetime] = {}
    teams: list[TeamRecord] = []
    teamed = sorted(int(t) for t in rng.choice(n_tasks, size=config.num_teams, replace=False))
    for t in teamed:
        task = tasks[t]
        caps = task_caps[t]
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
            weights = np.exp(3 * observed[pool, c])
            pick = int(pool[int(rng.choice(len(pool), p=weights / weights.sum()))])
            members.append(pick)
            roles[pick] = c
        while len(members) < size:
            familiar = sorted(set().union(*(peers[m] for m in members)) - set(members))
            if familiar and rng.random() < config.collaboration_density:
                pick = familiar[int(rng.integers(len(familiar)))]
            else:
                pick = outsider(rng, n_agents, set(members))
            members.append(pick)
            roles[pick] = next((c for c in caps if skill[pick, c] > 0), None)

        coverage = float(np.mean([max(skill[m, c] for m in members) for c in caps]))
        pairs = [(a, b) for i, a in enumerate(members) for b in members[i + 1:]]
        synergy = float(np.mean([truth.synergy(a, b) for a, b in pairs])) if pairs else 0.0
        p_success = float(np.clip(
            quality[members].mean() + 0.5 * (coverage - 0.6) + synergy - 0.1 * (task.complexity - 0.5), 0.02, 0.98
        ))
        completed = {m: bool(rng.random() < p_success) for m in members}
        score = sum(completed.values()) / len(members)
        started = task.created_at + timedelta(hours=1)
        finished = started + timedelta(hours=float(rng.uniform(1, 48)))
        team_id = stable_id("synthetic-team", seed_tag, str(t))
        usage_tokens = 0
        for m in members:
            role = roles[m]
            cost = int(token_costs[role]) if role is not None else int(np.mean([token_costs[c] for c in caps]))
            tokens = int(cost * (1 + task.complexity) * rng.uniform(0.6, 1.4))
            usage_tokens += tokens
            token_count[m] += tokens
            reliability[m] = (1 - RELIABILITY_RATE) * reliability[m] + RELIABILITY_RATE * float(completed[m])
            if role is not None:
                key = (m, role)
                u = usage[key]
                observed[key] = (observed[key] * (u + PROFICIENCY_PRIOR) + float(completed[m])) / (u + PROFICIENCY_PRIOR + 1)
                token_eff[key] = (token_eff[key] * u + tokens) / (u + 1)
                usage[key] = u + 1
            batch.link(MemberOf(role=names[role] if role is not None else "support", joined_at=started), agent_ids[m], team_id)
        for a, b in pairs:
            key = (a, b) if agent_ids[a] < agent_ids[b] else (b, a)
            worked.setdefault(key, []).append(score)
            last_together[key] = finished
            peers[a].add(b)
            peers[b].add(a)
        status_ok = score >= SUCCESS_THRESHOLD
        tasks[t] = task.model_copy(update={
            "status": TaskStatus.COMPLETED if status_ok else TaskStatus.FAILED, "completed_at": finished,
            "token_usage": usage_tokens,
        })
        batch.add(Team(
            id=team_id, name=f"team for {task.title}", created_at=started,
            status=TeamStatus.COMPLETED if status_ok else TeamStatus.FAILED, size=len(members), task_id=task.id,
            formation_method=FormationMethod.MANUAL, performance_score=score, token_budget=task.token_budget,
            token_usage=usage_tokens, completion_time=int((finished - started).total_seconds()), outcome_recorded=True,
        ))
        batch.link(WorksOn(), team_id, task.id)
        batch.link(AssembledBy(), team_id, assembler.id, target_label="SystemActor")
        teams.append(TeamRecord(team_id, task.id, tuple(agent_ids[m] for m in members), score, started))

    batch.add(*tasks)
    for a in range(n_agents):
        batch.add(Agent(
            id=agent_ids[a], name=handles[a], handle=handles[a], status=AgentLifecycleState.INITIALIZED,
            created_at=created[a], updated_at=created[a], model=model,
            personality=f"specialist in {', '.join(names[c].replace('_', ' ') for c in held[a])}",
            reliability_score=float(np.round(reliability[a], 6)), token_count=int(token_count[a]),
        ))
        for c in held[a]:
            batch.link(
                HasCapability(
                    proficiency=float(np.round(observed[a, c], 6)), usage_count=usage[(a, c)],
                    token_efficiency=float(np.round(token_eff[(a, c)], 3)),
                ),
                agent_ids[a], cap_ids[c],
            )
    for (a, b), scores in sorted(worked.items()):
        batch.link(
            WorkedWith(success_score=float(np.round(np.mean(scores), 6)), task_count=len(scores), last_collaboration=last_together[(a, b)]),
            agent_ids[a], agent_ids[b],
        )
    return SyntheticHistory(config=config, batch=batch, truth=truth, teams=teams)


def outsider(rng: np.random.Generator, population: int, taken: set[int]) -> int:
    """A uniformly random index not in ``taken`` (rejection sampling: ``taken`` is a handful, the population large)."""
    while True:
        pick = int(rng.integers(population))
        if pick not in taken:
            return pick


def _renormalised(weights: np.ndarray, indices: list[int]) -> np.ndarray:
    picked = weights[indices]
    return picked / picked.sum()
