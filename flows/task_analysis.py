"""``task_analyzed``: what a run's task needs, found by embedding its text and matching capability descriptions.

The task's texts are its title and description and the prompt of each agent step (placeholders such as
``${inputs.topic}`` become their last name, ``topic``). Each is embedded with all-MiniLM-L6-v2 and so is each
capability of the run's capability registry (``agentRuntime.capability_registry``, :func:`capability_catalogue`) as
``name: description``. A capability is required with confidence = its best cosine similarity over the task's texts
when that reaches :data:`MATCH_THRESHOLD`; the capabilities the steps name stay, with confidence 1.0.

The token estimate adds up, per agent step, its template's cost profile (average input + output tokens), else
its capability's registry token cost, else the template's ``max_tokens``, else :data:`DEFAULT_STEP_TOKENS`.

Cost: the model runs in NumPy (``gnn/minilm_numpy.py``: the same vectors as sentence-transformers, without
importing torch, ≈0.5 s to load), behind the home's embedding cache (shared with the GNN's features). The texts of
a definition do not change between its runs, so after its first run in a home the analysis is one SQLite read.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agentparty.gnn.embeddings import TextEmbedder
from agentparty.gnn.minilm_numpy import light_embedder
from agentparty.models import TaskStep, WorkflowDefinition
from agentparty.models.capabilities import CapabilityRegistry
from agentparty.models.run_history import required_capabilities
from agentparty.models.task_analysis import (
    EXPLICIT_CONFIDENCE,
    CapabilityMatch,
    TaskAnalysis,
    agent_steps,
    capability_texts,
    task_texts,
)

logger = logging.getLogger("agentparty.flows")

MATCH_THRESHOLD = 0.4
"""Least cosine similarity (MiniLM, normalised vectors) for an inferred capability. Chosen on the examples against
the built-in registry: texts about a capability score 0.45–0.75 against its description (research-report:
research 0.73, web_research 0.60; nightly-digest: summarization 0.51), unrelated pairs up to about 0.35."""
MAX_INFERRED = 5
"""At most this many inferred capabilities (the best ones), beside those the steps name."""
DEFAULT_STEP_TOKENS = 1024
"""Tokens an agent step is estimated at when nothing else says."""


def capability_catalogue(settings: Any) -> CapabilityRegistry:
    """The capabilities a task is matched against: the run's capability registry (the one switch to change)."""
    registry: CapabilityRegistry = settings.capability_registry()
    return registry


def match_capabilities(
    texts: Sequence[str], described: dict[str, str], embedder: TextEmbedder, threshold: float = MATCH_THRESHOLD
) -> list[CapabilityMatch]:
    """Inferred capabilities, best first: each one's best cosine similarity over the texts, at least ``threshold``."""
    if not texts or not described:
        return []
    names = list(described)
    vectors = embedder.embed([*texts, *described.values()])
    similarity = vectors[: len(texts)] @ vectors[len(texts) :].T  # rows are L2-normalised: cosine
    best = similarity.max(axis=0)
    order = np.argsort(-best, kind="stable")
    return [
        CapabilityMatch(name=names[i], confidence=round(float(min(1.0, best[i])), 4))
        for i in order[:MAX_INFERRED]
        if best[i] >= threshold
    ]


def _step_tokens(step: TaskStep, registry: CapabilityRegistry, templates: Any) -> int:
    config = step.configuration
    resolved = None
    if templates is not None and config.agent:
        try:
            found = templates.find(config.agent)
            resolved = templates.resolve(config.agent, config.version, found) if found is not None else None
        except Exception as exc:  # an unknown version fails its step later, with its own error
            logger.debug("token estimate of step %s: template %s: %s", step.id, config.agent, exc)
    if resolved is not None:
        profile = resolved.version.cost_profile
        if profile.avg_input_tokens + profile.avg_output_tokens > 0:
            return int(profile.avg_input_tokens + profile.avg_output_tokens)
    definition = registry.definition(config.capability) if config.capability else None
    if definition is not None and definition.token_cost:
        return definition.token_cost
    if resolved is not None and resolved.version.parameters.max_tokens:
        return int(resolved.version.parameters.max_tokens)
    return DEFAULT_STEP_TOKENS


def analyse_task(
    definition: WorkflowDefinition,
    registry: CapabilityRegistry,
    embedder: TextEmbedder | None,
    templates: Any = None,
) -> TaskAnalysis:
    """The task's analysis; with no embedder (or one that fails) only the capabilities the steps name."""
    explicit = required_capabilities(definition)
    matches = [CapabilityMatch(name=n, confidence=EXPLICIT_CONFIDENCE, explicit=True) for n in explicit]
    used: str | None = None
    if embedder is not None:
        described = {n: t for n, t in capability_texts(registry).items() if n not in explicit}
        try:
            matches += match_capabilities(task_texts(definition), described, embedder)
            used = embedder.name
        except Exception as exc:  # the analysis describes the task; it never stops the run
            logger.warning("task analysis of %s: matching capabilities failed: %s", definition.id, exc)
    steps = agent_steps(definition)
    return TaskAnalysis(
        capabilities=matches,
        token_estimate=sum(_step_tokens(s, registry, templates) for s in steps),
        time_estimate=int(sum(s.timeout or 0 for s in definition.all_steps())),
        recommended_team_size=max(1, len({s.configuration.agent or s.configuration.capability for s in steps})),
        embedder=used,
        threshold=MATCH_THRESHOLD if used else None,
    )


def run_analysis(definition: WorkflowDefinition, settings: Any, home: Path, templates: Any = None) -> TaskAnalysis:
    """A run's analysis with the home's cached MiniLM (in NumPy: ``gnn/minilm_numpy.py``) and the configured
    capability registry."""
    embedder: TextEmbedder | None = None
    try:
        embedder = light_embedder(home)
    except Exception as exc:  # a home whose embedding cache cannot be opened: the steps' capabilities only
        logger.warning("task analysis of %s: no embedder: %s", definition.id, exc)
    return analyse_task(definition, capability_catalogue(settings), embedder, templates)
