"""What ``task_analyzed`` says about a run's task: the capabilities it needs, how sure that is, what it will cost.

Pure data: the analysis itself (embedding the task's text and matching it against capability descriptions) is
``flows/task_analysis.py``. The run's events carry it (``TaskAnalyzedPayload``) and its graph writes it (the
Task's ``required_capabilities`` and one REQUIRES per capability, ``importance`` = the confidence).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

from ._base import Fraction, NonEmptyStr, NonNegativeInt, SeedModel
from .capabilities import CapabilityRegistry
from .workflow import WorkflowDefinition
from .workflow_steps import TaskStep

EXPLICIT_CONFIDENCE = 1.0
"""A capability a step names (``configuration.capability``) is required for certain."""
_PLACEHOLDER = re.compile(r"\$\{\s*([^}]*?)\s*\}")


def agent_steps(definition: WorkflowDefinition) -> list[TaskStep]:
    return [s for s in definition.all_steps() if isinstance(s, TaskStep) and s.configuration.is_agent]


def task_texts(definition: WorkflowDefinition) -> list[str]:
    """The texts that say what the task is: title and description, then each agent step's prompt (placeholders
    such as ``${inputs.topic}`` become their last name, ``topic``). The same for every run of a definition, so
    their embeddings come from the cache after the first."""
    head = f"{definition.name}: {definition.description}" if definition.description else definition.name
    texts = [head]
    for step in agent_steps(definition):
        prompt = step.configuration.prompt
        if prompt:
            plain = _PLACEHOLDER.sub(lambda m: m.group(1).rsplit(".", 1)[-1], prompt)
            texts.append(" ".join(plain.split()))
    return list(dict.fromkeys(texts))


def capability_texts(registry: CapabilityRegistry) -> dict[str, str]:
    """``name: description`` of every described capability of the registry, by name."""
    return {d.name: f"{d.name.replace('_', ' ')}: {d.description}" for d in registry.capabilities if d.description}


class CapabilityMatch(SeedModel):
    name: NonEmptyStr
    confidence: Fraction
    """1.0 for a capability a step names; else the best cosine similarity between a text of the task and the
    capability's description (at least the analysis threshold)."""
    explicit: bool = False
    """Named by a step rather than inferred from the task's text."""


class TaskAnalysis(SeedModel):
    capabilities: list[CapabilityMatch] = Field(default_factory=list)
    """Explicit ones first (by name), then inferred ones by falling confidence."""
    token_estimate: NonNegativeInt = 0
    """Tokens the agent steps will use: each step's template cost profile, else its capability's token cost."""
    time_estimate: NonNegativeInt = 0
    """Seconds: the sum of the steps' timeouts (an upper bound; 0 when none is set)."""
    recommended_team_size: Annotated[int, Field(ge=1)] = 1
    embedder: str | None = None
    """The text embedder the match used (``all-MiniLM-L6-v2``); None when nothing was matched."""
    threshold: Fraction | None = None
    """The least cosine similarity an inferred capability needed."""

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.capabilities]

    def confidence(self) -> dict[str, float]:
        return {c.name: c.confidence for c in self.capabilities}
