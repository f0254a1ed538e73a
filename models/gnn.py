"""Seed 000's GNN structures: node and edge feature records and the GraphSAGE configuration.

These are plain records (no torch here: ``models/`` does no I/O and needs no
tensors); ``agentparty.gnn`` turns them into tensors in the order given by
each class's ``vector()``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ._base import Fraction, NonNegativeInt, Priority, SeedModel

NodeType = Literal["Agent", "Capability", "Task"]
EdgeType = tuple[str, str, str]


class _Features(SeedModel):
    def scalar_features(self) -> list[float]:
        """The numeric features (everything but embeddings) in declaration order."""
        return [float(getattr(self, name)) for name in type(self).model_fields if name != "embeddings"]

    def vector(self) -> list[float]:
        return self.scalar_features() + list(getattr(self, "embeddings", []))


class AgentFeatures(_Features):
    reliability_score: Fraction
    capability_count: NonNegativeInt
    avg_proficiency: Fraction
    token_efficiency: Annotated[float, Field(ge=0.0)]
    """Tokens per task completion."""
    embeddings: list[float] = Field(default_factory=list)


class CapabilityFeatures(_Features):
    token_cost: NonNegativeInt
    usage_frequency: Annotated[float, Field(ge=0.0)]
    compatibility_count: NonNegativeInt
    embeddings: list[float] = Field(default_factory=list)


class TaskFeatures(_Features):
    complexity: Fraction
    priority: Priority
    capability_count: NonNegativeInt
    token_budget: NonNegativeInt
    embeddings: list[float] = Field(default_factory=list)


class CollaborationEdgeFeatures(_Features):
    success_score: Fraction
    task_count: NonNegativeInt
    recency: Fraction
    """1.0 for a collaboration today, decaying towards 0 with age."""
    compatibility: Fraction
    messages_exchanged: NonNegativeInt = 0
    """Extension: agent-to-agent messages between the pair (``ask_agent`` questions and answers, the ASKED links'
    counts). Last, so a model trained on the first four columns still reads them where it expects them."""


class CapabilityEdgeFeatures(_Features):
    proficiency: Fraction
    usage_count: NonNegativeInt
    token_efficiency: Annotated[float, Field(ge=0.0)]


class RequirementEdgeFeatures(_Features):
    importance: Fraction
    complexity: Fraction


SEED_NODE_TYPES: tuple[str, ...] = ("Agent", "Capability", "Task")
SEED_EDGE_TYPES: tuple[EdgeType, ...] = (
    ("Agent", "WORKED_WITH", "Agent"),
    ("Agent", "HAS_CAPABILITY", "Capability"),
    ("Task", "REQUIRES", "Capability"),
)


class GraphSAGEModelConfig(SeedModel):
    """Seed 000 ``model_config`` (renamed: pydantic reserves ``model_config``)."""

    hidden_channels: Annotated[int, Field(gt=0)] = 128
    num_layers: Annotated[int, Field(ge=1, le=8)] = 2
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2
    node_types: list[str] = Field(default_factory=lambda: list(SEED_NODE_TYPES))
    edge_types: list[EdgeType] = Field(default_factory=lambda: list(SEED_EDGE_TYPES))
    learning_rate: Annotated[float, Field(gt=0.0)] = 0.001
    weight_decay: Annotated[float, Field(ge=0.0)] = 5e-4
    use_skip_connections: bool = True
    aggregation: Literal["mean", "max", "sum", "min"] = "mean"

    @field_validator("edge_types", mode="before")
    @classmethod
    def _lists_to_tuples(cls, value: object) -> object:
        # JSON has no tuples: accept ["Agent", "WORKED_WITH", "Agent"] from files.
        if isinstance(value, list):
            return [tuple(v) if isinstance(v, list) else v for v in value]
        return value

    @model_validator(mode="after")
    def _edges_join_known_nodes(self) -> GraphSAGEModelConfig:
        for index, (src, _, dst) in enumerate(self.edge_types):
            for end in (src, dst):
                if end not in self.node_types:
                    raise ValueError(f"edge_types[{index}] uses node type {end!r}, not in node_types {self.node_types}")
        return self
