"""Synthetic history and seed 000 features: same seed, same graph; every feature as the seed defines it."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import torch

from agentparty.gnn.data import (
    AGENT,
    CAPABILITY,
    COLLABORATION,
    EDGE_TYPES,
    HELD_BY,
    HOLDS,
    NEEDS,
    TASK,
    FeatureScaler,
    GraphSnapshot,
    build_tensors,
    collaboration_edges,
    node_tables,
    time_split,
)
from agentparty.gnn.embeddings import EMBEDDING_DIM, CachedEmbedder, EmbeddingCache, HashingEmbedder
from agentparty.gnn.synthetic import SyntheticHistory, generate
from agentparty.models.config import GNNTrainingConfig, SyntheticDataConfig
from agentparty.models.graph import Agent, Capability, HasCapability, Requires, Task, WorkedWith
from agentparty.runtime.graph_store import GraphBatch


def test_same_seed_same_graph_other_seed_other_graph(history: SyntheticHistory) -> None:
    again = generate(SyntheticDataConfig())
    assert GraphSnapshot.from_batch(again.batch).digest() == GraphSnapshot.from_batch(history.batch).digest()
    assert [t.team_id for t in again.teams] == [t.team_id for t in history.teams]
    other = generate(SyntheticDataConfig(random_seed=7))
    assert GraphSnapshot.from_batch(other.batch).digest() != GraphSnapshot.from_batch(history.batch).digest()


def test_history_follows_the_config(history: SyntheticHistory, snapshot: GraphSnapshot) -> None:
    config = history.config
    assert (len(snapshot.agents), len(snapshot.capabilities), len(snapshot.tasks)) == (50, 20, 100)
    assert len(snapshot.teams) == config.num_teams == 30
    # Zipf: the most popular capability is required far more often than the least popular one.
    required = [c for _, c, _ in snapshot.requires]
    counts = sorted((required.count(c) for c in set(required)), reverse=True)
    assert counts[0] >= 4 * counts[-1]
    # Outcomes centre near success_rate_mean (hidden quality ~ N(0.7, 0.15)).
    assert 0.5 < np.mean([t.performance_score for t in history.teams]) < 0.9
    # Every team member holds the agent; every stored WORKED_WITH pair really shared a team.
    pairs = {(a, b) for a, b, _ in snapshot.worked_with}
    shared = {tuple(sorted((a, b))) for t in history.teams for a in t.members for b in t.members if a < b}
    assert pairs == shared


def test_time_split_orders_tasks_and_the_collaboration_window_precedes_validation(snapshot: GraphSnapshot) -> None:
    split = time_split(snapshot, GNNTrainingConfig())
    assert (len(split.train_tasks), len(split.val_tasks), len(split.test_tasks)) == (70, 20, 10)
    last_train = max(snapshot.tasks[t]["created_at"] for t in split.train_tasks)
    assert last_train <= split.val_start <= min(snapshot.tasks[t]["created_at"] for t in split.val_tasks)
    assert split.pair_start <= split.val_start <= split.test_start


def _tiny() -> GraphSnapshot:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    research = Capability(
        name="tiny_research", token_cost=400, compatibility=["tiny_writing"], description="find sources"
    )
    writing = Capability(name="tiny_writing", token_cost=100, description="write prose")
    ana = Agent(name="ana", model="simulated", reliability_score=0.8, personality="careful")
    bo = Agent(name="bo", model="simulated", reliability_score=0.4)
    task = Task(
        title="report",
        complexity=0.7,
        priority=4,
        token_budget=2000,
        created_at=now,
        required_capabilities=["tiny_research", "tiny_writing"],
    )
    other = Task(
        title="other",
        complexity=0.2,
        priority=1,
        token_budget=10,
        created_at=now,
        required_capabilities=["tiny_research"],
    )
    batch = GraphBatch().add(research, writing, ana, bo, task, other)
    batch.link(HasCapability(proficiency=0.9, usage_count=3, token_efficiency=100.0), ana.id, research.id)
    batch.link(HasCapability(proficiency=0.5, usage_count=1, token_efficiency=500.0), ana.id, writing.id)
    batch.link(HasCapability(proficiency=0.6), bo.id, writing.id)
    batch.link(Requires(importance=1.0, complexity=0.7), task.id, research.id)
    batch.link(Requires(importance=0.8, complexity=0.6), task.id, writing.id)
    batch.link(Requires(importance=1.0, complexity=0.2), other.id, research.id)
    batch.link(WorkedWith(success_score=0.75, task_count=2, last_collaboration=now - timedelta(days=90)), ana.id, bo.id)
    return GraphSnapshot.from_batch(batch)


def test_node_features_are_seed_000s_definitions() -> None:
    snapshot = _tiny()
    tables = node_tables(snapshot)
    by_name = {snapshot.agents[a]["name"]: f for a, f in zip(tables.agent_ids, tables.agents, strict=True)}
    ana, bo = by_name["ana"], by_name["bo"]
    assert ana.reliability_score == 0.8 and ana.capability_count == 2
    assert ana.avg_proficiency == pytest.approx(0.7)
    assert ana.token_efficiency == pytest.approx((3 * 100 + 1 * 500) / 4)  # tokens per use, weighted by uses
    assert (bo.capability_count, bo.avg_proficiency, bo.token_efficiency) == (1, 0.6, 0.0)
    caps = {
        snapshot.capabilities[c]["name"]: f for c, f in zip(tables.capability_ids, tables.capabilities, strict=True)
    }
    assert (
        caps["tiny_research"].token_cost,
        caps["tiny_research"].usage_frequency,
        caps["tiny_research"].compatibility_count,
    ) == (400, 1.0, 1)
    assert (caps["tiny_writing"].usage_frequency, caps["tiny_writing"].compatibility_count) == (0.5, 0)
    tasks = {snapshot.tasks[t]["title"]: f for t, f in zip(tables.task_ids, tables.tasks, strict=True)}
    assert tasks["report"].model_dump(exclude={"embeddings"}) == {
        "complexity": 0.7,
        "priority": 4,
        "capability_count": 2,
        "token_budget": 2000,
    }


def test_edge_features_are_seed_000s_definitions() -> None:
    snapshot = _tiny()
    tables = node_tables(snapshot)
    [(_a, _b, stored)] = collaboration_edges(snapshot, tables, cutoff=None)
    assert (stored.success_score, stored.task_count) == (0.75, 2)
    assert stored.recency == pytest.approx(math.exp(-1.0))  # 90 days before the snapshot's latest time
    # ana (research, compatible with writing; writing) reaches all of bo's (writing): 1;
    # bo (writing, compatible with nothing) reaches half of ana's: 1/2. The mean of both directions:
    assert stored.compatibility == pytest.approx(0.75)


def test_rebuilt_collaboration_agrees_with_the_stored_aggregate(snapshot: GraphSnapshot) -> None:
    tables = node_tables(snapshot)
    after_everything = snapshot.reference_time() + timedelta(days=1)
    stored = {(a, b): f for a, b, f in collaboration_edges(snapshot, tables, cutoff=None)}
    rebuilt = {(a, b): f for a, b, f in collaboration_edges(snapshot, tables, cutoff=after_everything)}
    assert stored.keys() == rebuilt.keys()
    for key, feature in stored.items():
        assert rebuilt[key].success_score == pytest.approx(feature.success_score, abs=1e-6)
        assert rebuilt[key].task_count == feature.task_count


def test_hetero_data_has_the_seed_types_their_reverses_and_feature_widths(snapshot: GraphSnapshot) -> None:
    tensors = build_tensors(snapshot, HashingEmbedder(), FeatureScaler(), cutoff=None, fit=True)
    data = tensors.data
    assert set(data.node_types) == {AGENT, CAPABILITY, TASK}
    assert set(data.edge_types) == set(EDGE_TYPES)
    assert data[AGENT].x.shape == (50, 4 + EMBEDDING_DIM)
    assert data[CAPABILITY].x.shape == (20, 3 + EMBEDDING_DIM)
    assert data[TASK].x.shape == (100, 4 + EMBEDDING_DIM)
    assert (
        data[COLLABORATION].edge_attr.shape[1] == 4
        and data[HOLDS].edge_attr.shape[1] == 3
        and data[NEEDS].edge_attr.shape[1] == 2
    )
    assert torch.equal(data[HELD_BY].edge_index, data[HOLDS].edge_index.flip(0))
    assert data[COLLABORATION].edge_index.shape[1] == 2 * len(snapshot.worked_with)  # both directions
    # Standardised with the fitted statistics: every scalar column has mean 0.
    assert torch.allclose(data[TASK].x[:, :4].mean(dim=0), torch.zeros(4), atol=1e-5)


def test_embeddings_are_minilm_and_cached_by_content_hash(embedder: CachedEmbedder, tmp_path: object) -> None:
    texts = ["research the market for AI agents", "write a short report", "research the market for AI agents"]
    first = embedder.embed(texts)
    assert first.shape == (3, EMBEDDING_DIM) and embedder.name == "all-MiniLM-L6-v2"
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(first[0], first[2])
    similar = float(first[0] @ embedder.embed(["market research on AI agents"])[0])
    unrelated = float(first[0] @ embedder.embed(["bake sourdough bread at home"])[0])
    assert similar > unrelated + 0.3  # a real sentence model, not a hash
    encoded = embedder.encoded
    assert np.array_equal(embedder.embed(texts), first)
    assert embedder.encoded == encoded, "known texts come from the cache"
    # A new process (a fresh CachedEmbedder on the same file) finds them too, without loading the model.
    fresh = CachedEmbedder(HashingEmbedder(), EmbeddingCache(embedder.cache.path))  # type: ignore[union-attr]
    fresh.name = embedder.name
    assert np.array_equal(fresh.embed(texts), first) and fresh.encoded == 0
