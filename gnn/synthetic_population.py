"""The population a synthetic history plays out over: capabilities, agents and tasks, drawn before any team forms.

:func:`agentparty.gnn.synthetic.generate` draws them first (capabilities, agents,
then tasks, from its one seeded generator) and then plays the teams out over them.
What exists is kept here, apart from what happened to it (the team play in
:mod:`agentparty.gnn.synthetic`), so each reads on its own. The agents' history
figures live here because the agents carry them: the team play moves them, and
:func:`add_agents` writes them to the graph once the history is over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from agentparty.models.capabilities import GENERAL_CAPABILITIES
from agentparty.models.config import SyntheticDataConfig
from agentparty.models.graph import Agent, Capability, Task, capability_id, stable_id
from agentparty.models.graph_relationships import HasCapability, Requires
from agentparty.models.states import AgentLifecycleState, TaskStatus
from agentparty.runtime.graph_store import GraphBatch
from agentparty.tasks.templates import persistent_agent_id

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)
"""History starts here (fixed, so a seed always gives the same graph)."""
HISTORY_DAYS = 180
ZIPF_EXPONENT = 1.1

CAPABILITY_VOCABULARY: tuple[tuple[str, str, str], ...] = tuple(
    (name, category, description) for name, category, description, _, _ in GENERAL_CAPABILITIES
)
"""(name, category, description) of the built-in registry's general capabilities, in its order: synthetic
capabilities are named from it (their token costs and compatibility are drawn, not taken from the registry)."""
TASK_VERBS = ("Prepare", "Deliver", "Draft", "Investigate", "Produce", "Review", "Assemble", "Plan")


@dataclass
class CapabilityTable:
    """The drawn capabilities, by index: what the agents hold and the tasks require."""

    names: list[str]
    ids: list[str]
    popularity: np.ndarray
    """How often each capability is held and required (sums to 1)."""
    token_costs: np.ndarray


@dataclass
class SyntheticAgents:
    """The synthetic agents: their hidden truth, and the history figures the graph records, updated team by team."""

    handles: list[str]
    ids: list[str]
    quality: np.ndarray
    style: np.ndarray
    skill: np.ndarray
    held: list[list[int]]
    """Agent → the capabilities it holds."""
    observed: np.ndarray
    """Proficiency as the graph records it (noisy skill, then moved by outcomes); what the assembler sees."""
    usage: dict[tuple[int, int], int]
    token_eff: dict[tuple[int, int], float]
    reliability: np.ndarray
    token_count: np.ndarray
    created: list[datetime]


def capability_names(count: int) -> list[str]:
    names = [name for name, _, _ in CAPABILITY_VOCABULARY]
    return [names[i] if i < len(names) else f"{names[i % len(names)]}_{i // len(names) + 1}" for i in range(count)]


def _popularity(count: int, distribution: str) -> np.ndarray:
    weights = 1.0 / np.arange(1, count + 1) ** ZIPF_EXPONENT if distribution == "zipf" else np.ones(count)
    return weights / weights.sum()


def synthetic_agent_handle(seed: int, index: int) -> str:
    return f"synthetic-s{seed}-{index:05d}"


def draw_capabilities(rng: np.random.Generator, config: SyntheticDataConfig, batch: GraphBatch) -> CapabilityTable:
    """Capabilities with token costs and compatibility lists (their nodes go into ``batch``)."""
    n_caps = config.num_capabilities
    names = capability_names(n_caps)
    popularity = _popularity(n_caps, config.capability_distribution)
    cap_ids = [capability_id(name) for name in names]
    token_costs = rng.integers(200, 2000, size=n_caps)
    compatibility: list[list[str]] = []
    for c in range(n_caps):
        others = [o for o in range(n_caps) if o != c]
        picks: list[int] = (
            rng.choice(
                others,
                size=min(len(others), int(rng.integers(1, 4))),
                replace=False,
                p=_renormalised(popularity, others),
            ).tolist()
            if others
            else []
        )
        compatibility.append(sorted(names[o] for o in picks))
    for c, name in enumerate(names):
        vocab = CAPABILITY_VOCABULARY[c % len(CAPABILITY_VOCABULARY)]
        batch.add(
            Capability(
                id=cap_ids[c],
                name=name,
                description=vocab[2],
                category=vocab[1],
                created_at=ANCHOR,
                token_cost=int(token_costs[c]),
                compatibility=compatibility[c],
            )
        )
    return CapabilityTable(names, cap_ids, popularity, token_costs)


def draw_agents(
    rng: np.random.Generator, config: SyntheticDataConfig, capabilities: CapabilityTable, model: str
) -> SyntheticAgents:
    """Agents with hidden quality, skill and style, and what the graph first records of them."""
    n_agents, n_caps = config.num_agents, config.num_capabilities
    quality = np.clip(rng.normal(config.success_rate_mean, config.success_rate_std, size=n_agents), 0.05, 0.99)
    style = rng.normal(size=(n_agents, 3))
    style /= np.linalg.norm(style, axis=1, keepdims=True)
    skill = np.zeros((n_agents, n_caps))
    held: list[list[int]] = []
    handles = [synthetic_agent_handle(config.random_seed, i) for i in range(n_agents)]
    agent_ids = [persistent_agent_id("ad-hoc", handle, model) for handle in handles]
    observed = np.zeros((n_agents, n_caps))
    usage: dict[tuple[int, int], int] = {}
    token_eff: dict[tuple[int, int], float] = {}
    for a in range(n_agents):
        count = int(np.clip(1 + rng.poisson(2), 1, min(6, n_caps)))
        caps = sorted(int(c) for c in rng.choice(n_caps, size=count, replace=False, p=capabilities.popularity))
        held.append(caps)
        for c in caps:
            skill[a, c] = rng.uniform(0.2, 1.0)
            observed[a, c] = float(np.clip(skill[a, c] + rng.normal(0, 0.15), 0.05, 0.95))
            usage[(a, c)] = 0
            token_eff[(a, c)] = 0.0
    reliability = np.full(n_agents, 0.5)
    token_count = np.zeros(n_agents, dtype=np.int64)
    created = [ANCHOR + timedelta(hours=float(rng.uniform(0, 24 * 14))) for _ in range(n_agents)]
    return SyntheticAgents(
        handles, agent_ids, quality, style, skill, held, observed, usage, token_eff, reliability, token_count, created
    )


def draw_tasks(
    rng: np.random.Generator, config: SyntheticDataConfig, capabilities: CapabilityTable, batch: GraphBatch
) -> tuple[list[str], list[Task], list[list[int]]]:
    """Tasks in creation order with the capabilities each requires (its REQUIRES edges go into ``batch``)."""
    n_caps, n_tasks = config.num_capabilities, config.num_tasks
    names, token_costs = capabilities.names, capabilities.token_costs
    task_ids = [stable_id("synthetic-task", str(config.random_seed), str(t)) for t in range(n_tasks)]
    offsets = np.sort(rng.uniform(14, HISTORY_DAYS, size=n_tasks))
    task_caps: list[list[int]] = []
    tasks: list[Task] = []
    for t in range(n_tasks):
        count = int(np.clip(1 + rng.binomial(3, 0.4), 1, n_caps))
        caps = sorted(int(c) for c in rng.choice(n_caps, size=count, replace=False, p=capabilities.popularity))
        task_caps.append(caps)
        complexity = float(np.round(rng.uniform(0.1, 0.95), 3))
        priority = int(rng.integers(1, 6))
        budget = int(sum(int(token_costs[c]) for c in caps) * (1 + complexity) * 1.5)
        verb = TASK_VERBS[int(rng.integers(len(TASK_VERBS)))]
        title = f"{verb} {' and '.join(names[c].replace('_', ' ') for c in caps)}"
        task = Task(
            id=task_ids[t],
            title=title,
            description=f"{title}. Needs {', '.join(names[c] for c in caps)}; complexity {complexity:.2f}, priority {priority}.",
            created_at=ANCHOR + timedelta(days=float(offsets[t])),
            status=TaskStatus.SUBMITTED,
            priority=priority,
            complexity=complexity,
            required_capabilities=[names[c] for c in caps],
            token_budget=budget,
        )
        tasks.append(task)
        for rank, c in enumerate(caps):
            batch.link(
                Requires(
                    importance=float(np.round(1.0 - 0.15 * rank, 3)),
                    complexity=float(np.clip(np.round(complexity + rng.normal(0, 0.05), 3), 0, 1)),
                ),
                task.id,
                capabilities.ids[c],
            )
    return task_ids, tasks, task_caps


def add_agents(batch: GraphBatch, agents: SyntheticAgents, capabilities: CapabilityTable, model: str) -> None:
    """The agents as the graph has them after the whole history, with their HAS_CAPABILITY edges."""
    names = capabilities.names
    for a, agent_id in enumerate(agents.ids):
        batch.add(
            Agent(
                id=agent_id,
                name=agents.handles[a],
                handle=agents.handles[a],
                status=AgentLifecycleState.INITIALIZED,
                created_at=agents.created[a],
                updated_at=agents.created[a],
                model=model,
                personality=f"specialist in {', '.join(names[c].replace('_', ' ') for c in agents.held[a])}",
                reliability_score=float(np.round(agents.reliability[a], 6)),
                token_count=int(agents.token_count[a]),
            )
        )
        for c in agents.held[a]:
            batch.link(
                HasCapability(
                    proficiency=float(np.round(agents.observed[a, c], 6)),
                    usage_count=agents.usage[(a, c)],
                    token_efficiency=float(np.round(agents.token_eff[(a, c)], 3)),
                ),
                agent_id,
                capabilities.ids[c],
            )


def _renormalised(weights: np.ndarray, indices: list[int]) -> np.ndarray:
    picked = weights[indices]
    return picked / picked.sum()
