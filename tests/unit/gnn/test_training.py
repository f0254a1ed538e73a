"""Training, evaluation, the champion registry and team assembly on the default synthetic history."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from agentparty.gnn.data import GraphSnapshot
from agentparty.gnn.embeddings import CachedEmbedder
from agentparty.gnn.pipeline import (
    Candidate,
    NeedsRetraining,
    evaluate_on_window,
    fitted_baselines,
    load_model,
    promote,
    recommender_for,
    rescore,
    train_candidate,
)
from agentparty.gnn.recommend import Recommender
from agentparty.gnn.registry import ModelRegistry
from agentparty.gnn.selection import fold_scores, select
from agentparty.gnn.synthetic import SyntheticHistory
from agentparty.gnn.train import GNNMethod
from agentparty.models.config import GNNTrainingConfig, NCNConfig
from agentparty.models.graph import Task, capability_id

CONFIG = GNNTrainingConfig(num_epochs=40, validation_folds=2)
SAGE = CONFIG.model_copy(update={"model_type": "GraphSAGE"})


def _reproducible(figures: dict[str, object]) -> dict[str, object]:
    """A card's figures less the pooled selection ones (a saved model is re-scored on one window, not retrained)."""
    return {k: v for k, v in figures.items() if not k.startswith("selection")}


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
    assert [row.method for row in candidate.rows] == [
        "ncn",
        "popularity",
        "logistic-regression",
        "adamic-adar",
        "ncn+adamic-adar",
    ]
    assert candidate.selection is not None and candidate.selection.folds == 2
    for row in candidate.rows:
        assert row.selection_tasks > 0 and 0.0 <= row.selection_score <= 1.0, row
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


def _zeroed(candidate: Candidate, registry: ModelRegistry) -> GNNMethod:
    """The champion's architecture with every weight zero (its prior's too: softplus(-50) ≈ 0): it scores every
    pair alike (AUC 0.5)."""
    model = load_model(registry, registry.champion(), candidate.data)  # type: ignore[arg-type]
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.fill_(-50.0 if name.endswith("prior_weights") else 0.0)
    return GNNMethod(model, candidate.data.scaler, CONFIG.method_name)


def test_a_champion_is_not_replaced_by_a_worse_model(
    candidate: Candidate, tmp_path: Path, embedder: CachedEmbedder, history: SyntheticHistory
) -> None:
    registry = ModelRegistry(tmp_path, CONFIG)
    first = promote(registry, candidate, embedder, history.truth)
    assert first.promoted and registry.champion().id == first.candidate  # type: ignore[union-attr]
    assert first.served == candidate.selection.winner  # type: ignore[union-attr]
    worse_method = _zeroed(candidate, registry)
    window = evaluate_on_window(worse_method, candidate.data, history.truth)
    assert window.selection_score == pytest.approx(0.5)
    worse = dataclasses.replace(
        candidate,
        run=type(candidate.run)(model=worse_method.model, curves=candidate.run.curves, best_epoch=1),
        window_score=window.selection_score,
        card=None,
        promotion=None,
    )
    second = promote(registry, worse, embedder, history.truth)
    assert not second.promoted and "does not beat the champion" in second.reason
    assert registry.champion().id == first.candidate  # type: ignore[union-attr]
    assert second.champion_score == pytest.approx(candidate.window_score)
    assert second.best_baseline is not None and second.best_baseline_score is not None
    assert registry.served().method == first.served, "the earlier serving decision stands"  # type: ignore[union-attr]
    assert len(registry.models()) == 2  # both saved, one crowned


def test_a_challenger_that_loses_to_a_baseline_is_refused_and_the_baseline_served(
    candidate: Candidate, tmp_path: Path, embedder: CachedEmbedder, snapshot: GraphSnapshot, history: SyntheticHistory
) -> None:
    seeding = ModelRegistry(tmp_path / "seeding", CONFIG)
    promote(seeding, candidate, embedder, history.truth)
    worse_method = _zeroed(candidate, seeding)
    config = CONFIG.model_copy(update={"ensembles": []})
    data = dataclasses.replace(candidate.data, config=config)
    baselines = fitted_baselines(data)
    selection = select(fold_scores(data, [worse_method, *baselines], embedder, 1), [])
    assert selection.winner in {b.name for b in baselines}
    loser = dataclasses.replace(
        candidate,
        data=data,
        run=type(candidate.run)(model=worse_method.model, curves=candidate.run.curves, best_epoch=1),
        selection=selection,
        window_score=0.5,
        card=None,
        promotion=None,
    )
    registry = ModelRegistry(tmp_path, config)
    promotion = promote(registry, loser, embedder, history.truth)
    assert not promotion.promoted and registry.champion() is None
    assert promotion.served == selection.winner and "loses to it" in promotion.reason
    served = registry.served()
    assert served is not None and served.kind == "baseline" and served.model_id is None
    recommender = recommender_for(snapshot, registry, embedder, config)
    assert recommender.method.name == selection.winner and recommender.fallback
    task = Task.model_validate({**snapshot.tasks[data.split.test_tasks[0]], "status": "submitted"})
    team = recommender.recommend(task)
    assert all(f"ranked by {selection.winner} (served baseline" in m.explanation for m in team.members)


def test_loading_the_champion_reproduces_its_metrics(
    candidate: Candidate, tmp_path: Path, embedder: CachedEmbedder, snapshot: GraphSnapshot, history: SyntheticHistory
) -> None:
    registry = ModelRegistry(tmp_path, CONFIG)
    promote(registry, candidate, embedder, history.truth)
    card = registry.champion()
    assert card is not None and card.snapshot_digest == snapshot.digest()
    assert (registry.path(card.id) / "curves.png").read_bytes().startswith(b"\x89PNG")
    reloaded = rescore(registry, card, snapshot, card.training_config(), embedder, history.truth)
    assert _reproducible(reloaded.as_dict()) == _reproducible(card.metrics["ncn"])
    assert reloaded.selection_score == pytest.approx(candidate.window_score), "the window figure it was compared on"


@pytest.mark.parametrize("method_index", [None, 0, 1, 2])
def test_recommendations_cover_required_capabilities_within_the_budget(
    candidate: Candidate, snapshot: GraphSnapshot, embedder: CachedEmbedder, method_index: int | None
) -> None:
    method = (
        GNNMethod(candidate.run.model, candidate.data.scaler, "ncn")
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


def test_a_champion_whose_weights_no_longer_fit_says_it_needs_retraining(
    candidate: Candidate, tmp_path: Path, embedder: CachedEmbedder, snapshot: GraphSnapshot, history: SyntheticHistory
) -> None:
    registry = ModelRegistry(tmp_path, CONFIG)
    promote(registry, candidate, embedder, history.truth)
    card = registry.champion()
    assert card is not None
    # The card now describes another architecture than its saved weights (as after a feature or a setting changed).
    narrower = card.model_copy(
        update={"config": {**card.config, "hidden_channels": card.config["hidden_channels"] // 2}}
    )
    (registry.path(card.id) / "card.json").write_text(narrower.model_dump_json())
    with pytest.raises(NeedsRetraining, match=rf"model {card.id} was trained on inputs of another shape.*gnn train"):
        load_model(registry, registry.champion(), candidate.data)  # type: ignore[arg-type]
    recommender = recommender_for(snapshot, registry, embedder, CONFIG)
    assert recommender.fallback and "needs retraining" in recommender.note
    assert recommender.method.name in {"popularity", "logistic-regression", "adamic-adar"}


def test_graphsage_stays_selectable_and_the_ncn_reads_common_neighbours(
    snapshot: GraphSnapshot, embedder: CachedEmbedder, history: SyntheticHistory
) -> None:
    sage = train_candidate(snapshot, SAGE.model_copy(update={"num_epochs": 3, "validation_folds": 1}), embedder)
    assert sage.metrics.method == "graphsage" and not sage.run.model.uses_paths
    assert [r.method for r in sage.ensembles] == ["graphsage+adamic-adar"]
    quick = CONFIG.model_copy(update={"num_epochs": 3, "validation_folds": 1})
    ncn = train_candidate(snapshot, quick, embedder, history.truth)
    blind = train_candidate(
        snapshot, quick.model_copy(update={"ncn": NCNConfig(common_neighbours=False, heuristic_prior=False)}), embedder
    )
    assert ncn.run.model.uses_paths
    assert ncn.metrics.test_suitability_auc != blind.metrics.test_suitability_auc, "the switches change the model"


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"model_type": "GraphSAGE", "ncn": {"prior_weight": 1.0}}, "ncn is set but model_type is 'GraphSAGE'"),
        ({"ensembles": [{"name": "e", "methods": ["graphsage", "adamic-adar"]}]}, r"names \['graphsage'\]"),
        ({"ensembles": [{"name": "e", "methods": ["ncn", "popularity"], "weights": [1.0]}]}, "1 weights for 2"),
        ({"ensembles": [{"name": "adamic-adar", "methods": ["ncn", "popularity"]}]}, "already taken"),
    ],
)
def test_configurations_that_would_be_ignored_are_refused(update: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GNNTrainingConfig.model_validate({**CONFIG.model_dump(exclude={"ensembles", "ncn"}), **update})
