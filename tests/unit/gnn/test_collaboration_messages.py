"""Hand-off counts (ASKED links) as a collaboration edge feature, and models trained before it still scoring.

A history with hand-offs gets a fifth collaboration column (``messages_exchanged``); one without keeps the four it
had, so its models and figures do not change. A model keeps the width it was trained with (its scaler's), so a
champion trained on four columns re-scores a graph that now has ASKED links, exactly as before.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path

import pytest

from agentparty.gnn.data import (
    COLLABORATION,
    FeatureScaler,
    GraphSnapshot,
    build_tensors,
    collaboration_edges,
    node_tables,
)
from agentparty.gnn.embeddings import HashingEmbedder
from agentparty.gnn.pipeline import promote, rescore, train_candidate
from agentparty.gnn.registry import ModelRegistry
from agentparty.gnn.synthetic import SyntheticHistory
from agentparty.models.config import GNNTrainingConfig

CONFIG = GNNTrainingConfig(num_epochs=3, validation_folds=1)


def _reproducible(figures: dict[str, object]) -> dict[str, object]:
    """A card's figures less the pooled selection ones (a saved model is re-scored on one window, not retrained)."""
    return {k: v for k, v in figures.items() if not k.startswith("selection")}


def with_asks(snapshot: GraphSnapshot) -> tuple[GraphSnapshot, tuple[str, str], int]:
    """The snapshot plus ASKED links both ways between two members of its last team; the pair and its messages."""
    asked = copy.deepcopy(snapshot)
    team = asked.teams[-1]
    a, b = sorted(team.members)[:2]
    asked.asked = [
        (a, b, {"task_id": team.task_id, "step_id": "draft", "questions": 2, "answers": 2}),
        (b, a, {"task_id": team.task_id, "step_id": "draft→x#1.abcdef", "questions": 1, "answers": 0}),
    ]
    return asked, (a, b), 5


def test_the_pairs_messages_are_a_fifth_column_seen_only_after_their_team(snapshot: GraphSnapshot) -> None:
    asked, pair, messages = with_asks(snapshot)
    tables = node_tables(asked)
    stored = {(a, b): f for a, b, f in collaboration_edges(asked, tables, cutoff=None)}
    assert stored[pair].messages_exchanged == messages
    assert sum(f.messages_exchanged for f in stored.values()) == messages, "only that pair talked"
    last_team = asked.teams[-1].created_at
    before = {(a, b): f for a, b, f in collaboration_edges(asked, tables, cutoff=last_team)}
    assert all(f.messages_exchanged == 0 for f in before.values()), "a period before the team does not see them"
    after = {(a, b): f for a, b, f in collaboration_edges(asked, tables, cutoff=last_team + timedelta(seconds=1))}
    assert after[pair].messages_exchanged == messages

    plain = build_tensors(snapshot, HashingEmbedder(), FeatureScaler(), cutoff=None, fit=True)
    talking = build_tensors(asked, HashingEmbedder(), FeatureScaler(), cutoff=None, fit=True)
    assert plain.data[COLLABORATION].edge_attr.shape[1] == 4, "no hand-offs: the columns it always had"
    assert talking.data[COLLABORATION].edge_attr.shape[1] == 5
    assert asked.digest() != snapshot.digest(), "the data a model is trained on changed"


def test_a_champion_trained_on_four_columns_rescores_a_graph_with_hand_offs(
    snapshot: GraphSnapshot, history: SyntheticHistory, tmp_path: Path
) -> None:
    embedder = HashingEmbedder()
    candidate = train_candidate(snapshot, CONFIG, embedder, history.truth)
    registry = ModelRegistry(tmp_path, CONFIG)
    promote(registry, candidate, embedder, history.truth)
    champion = registry.champion()
    assert champion is not None and len(champion.scaler_mean["Agent|WORKED_WITH|Agent"]) == 4

    asked, _, _ = with_asks(snapshot)
    after = rescore(registry, champion, asked, CONFIG, embedder, history.truth)
    assert _reproducible(after.as_dict()) == _reproducible(champion.metrics[CONFIG.method_name]), (
        "it reads the four columns it was trained on, as before"
    )
    graph = build_tensors(asked, embedder, champion.scaler(), cutoff=None)
    assert graph.data[COLLABORATION].edge_attr.shape[1] == 4

    talking = train_candidate(asked, CONFIG, embedder, history.truth)  # a model that reads the fifth column
    assert len(talking.data.scaler.mean["Agent|WORKED_WITH|Agent"]) == 5
    promote(ModelRegistry(tmp_path / "talking", CONFIG), talking, embedder, history.truth)
    talking_registry = ModelRegistry(tmp_path / "talking", CONFIG)
    talking_card = talking_registry.champion()
    assert talking_card is not None
    again = rescore(talking_registry, talking_card, asked, CONFIG, embedder, history.truth)
    assert _reproducible(again.as_dict()) == _reproducible(talking_card.metrics[CONFIG.method_name])

    broken = champion.scaler()
    broken.mean["Agent|WORKED_WITH|Agent"] = broken.mean["Agent|WORKED_WITH|Agent"][:3]
    with pytest.raises(ValueError, match=r"trained on 3 collaboration edge features.*retrain it"):
        build_tensors(asked, embedder, broken, cutoff=None)
