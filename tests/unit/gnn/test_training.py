"""Training, evaluation, the champion registry and team assembly on the default synthetic history."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from agentparty.gnn.data import GraphSnapshot
from agentparty.gnn.embeddings import CachedEmbedder
from agentparty.gnn.pipeline import (
    Candidate,
    fitted_baselines,
    load_model,
    model_card,
    promote,
    rescore,
    train_candidate,
)
from agentparty.gnn.recommend import Recommender
from agentparty.gnn.registry import ModelRegistry
from agentparty.gnn.synthetic import SyntheticHistory
from agentparty.gnn.train import GNNMethod
from agentparty.models.config import GNNTrainingConfig
from agentparty.models.graph import Task, capability_id

CONFIG = GNNTrainingConfig(num_epochs=40)


@pytest.fixture(scope="module")
def candidate(snapshot: GraphSnapshot, embedder: CachedEmbedder, history: SyntheticHistory) -> Candidate:
    return train_candidate(snapshot, CONFIG, embedder, history.truth)


def _figures(c: Candidate) -> list[dict[str, object]]:
    return [row.as_dict() for row in c.rows]


def test_same_seed_same_metrics(
    candidate: Candidate, snapshot: GraphSnapshot, embedder: CachedEmbedder, history: SyntheticHistory
) -> None:
    again = train_candidate(snapshot, CONFIG, embedder, history.truth)
    assert _figures(again) == _figures(candidate)
    assert [e.train_loss for e in again.run.curves] == [e.train_loss for e in candidate.run.curves]
    other = train_candidate(snapshot, CONFIG.model_copy(update={"random_seed": 1}), embedder, history.truth)
    assert [e.train_loss for e in other.run.curves] != [e.train_loss for e in candidate.run.curves]


def test_every_method_is_evaluated_on_the_same_split(candidate: Candidate) -> None:
    assert [row.method for row in candidate.rows] == ["graphsage", "popularity", "logistic-regression", "adamic-adar"]
    for row in candidate.rows:
        for value in (
            row.val_suitability_auc,
            row.test_suitability_auc,
            row.truth_suitability_auc,
            row.recall_at_k,
            row.ndcg_at_k,
        ):
            assert not math.isnan(value) and 0.0 <= value <= 1.0, row
    # Capability overlap alone ranks agents well against the hidden truth: the baselines are strong, as they should be.
    assert max(r.truth_suitability_auc for r in candidate.baselines) > 0.8
    assert candidate.run.best_epoch >= 1 and len(candidate.run.curves) <= CONFIG.num_epochs


def test_a_champion_is_not_replaced_by_a_worse_model(
    candidate: Candidate, tmp_path: Path, embedder: CachedEmbedder, history: SyntheticHistory
) -> None:
    registry = ModelRegistry(tmp_path, CONFIG)
    first = promote(registry, candidate, embedder, history.truth)
    assert first.promoted and registry.champion().id == first.candidate  # type: ignore[union-attr]
    # A worse model: the same architecture with every weight zero scores every pair alike (AUC 0.5).
    worse_model = load_model(registry, registry.champion(), candidate.data)  # type: ignore[arg-type]
    with torch.no_grad():
        for parameter in worse_model.parameters():
            parameter.zero_()
    worse = Candidate(candidate.data, candidate.run, candidate.metrics, candidate.baselines, candidate.embedder)
    worse.run = type(candidate.run)(model=worse_model, curves=candidate.run.curves, best_epoch=1)
    from agentparty.gnn.evaluate import evaluate

    worse.metrics = evaluate(GNNMethod(worse_model, candidate.data.scaler), candidate.data, history.truth)
    assert worse.metrics.validation_score == pytest.approx(0.5)
    worse.card = model_card(worse)
    second = promote(registry, worse, embedder, history.truth)
    assert not second.promoted and "does not beat" in second.reason
    assert registry.champion().id == first.candidate  # type: ignore[union-attr]
    assert second.champion_score == pytest.approx(first.candidate_score)
    assert second.best_baseline is not None and second.best_baseline_score is not None
    assert len(registry.models()) == 2  # both saved, one crowned


def test_loading_the_champion_reproduces_its_metrics(
    candidate: Candidate, tmp_path: Path, embedder: CachedEmbedder, snapshot: GraphSnapshot, history: SyntheticHistory
) -> None:
    registry = ModelRegistry(tmp_path, CONFIG)
    promote(registry, candidate, embedder, history.truth)
    card = registry.champion()
    assert card is not None and card.snapshot_digest == snapshot.digest()
    assert (registry.path(card.id) / "curves.png").read_bytes().startswith(b"\x89PNG")
    reloaded = rescore(registry, card, snapshot, card.training_config(), embedder, history.truth)
    assert reloaded.as_dict() == card.metrics["graphsage"]


@pytest.mark.parametrize("method_index", [None, 0, 1, 2])
def test_recommendations_cover_required_capabilities_within_the_budget(
    candidate: Candidate, snapshot: GraphSnapshot, embedder: CachedEmbedder, method_index: int | None
) -> None:
    method = (
        GNNMethod(candidate.run.model, candidate.data.scaler)
        if method_index is None
        else fitted_baselines(candidate.data)[method_index]
    )
    recommender = Recommender(
        snapshot, method, candidate.data.scaler, embedder, fallback=method_index is not None, note="test"
    )
    holders: dict[str, set[str]] = {}
    for agent, cap, _ in snapshot.has_capability:
        holders.setdefault(snapshot.capabilities[cap]["name"], set()).add(agent)
    for task_id in candidate.data.split.test_tasks:
        props = snapshot.tasks[task_id]
        task = Task.model_validate({**props, "status": "submitted"})
        team = recommender.recommend(task, size=5, token_budget=0)
        members = {m.agent_id for m in team.members}
        assert team.uncovered == [] and team.coverage == 1.0
        for name in props["required_capabilities"]:
            assert members & holders[name], f"{name} uncovered by {members}"
        assert all(m.explanation for m in team.members)
        tight = recommender.recommend(task, size=5, token_budget=team.estimated_tokens // 2)
        assert sum(m.estimated_tokens for m in tight.members) == tight.estimated_tokens <= team.estimated_tokens // 2
        tight_members = {m.agent_id for m in tight.members}
        for name in props[
            "required_capabilities"
        ]:  # covered by a member, or reported uncovered: never silently dropped
            assert (tight_members & holders[name]) or name in tight.uncovered
        nothing = recommender.recommend(task, size=5, token_budget=1)
        assert nothing.members == [] and nothing.uncovered == sorted(props["required_capabilities"])


def test_an_unknown_task_and_an_unknown_capability_are_explained(
    candidate: Candidate, snapshot: GraphSnapshot, embedder: CachedEmbedder
) -> None:
    recommender = Recommender(
        snapshot,
        GNNMethod(candidate.run.model, candidate.data.scaler),
        candidate.data.scaler,
        embedder,
        fallback=False,
        note="test",
    )
    task = Task(
        title="translate and test the release notes",
        required_capabilities=["translation", "no_such_skill"],
        token_budget=0,
    )
    assert capability_id("translation") in snapshot.capabilities
    team = recommender.recommend(task, size=3)
    assert team.uncovered == ["no_such_skill"] and 0 < team.coverage < 1
    assert any("translation" in m.covers for m in team.members)
