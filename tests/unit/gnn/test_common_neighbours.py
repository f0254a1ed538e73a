"""The NCN's common-neighbour paths: what their rows sum to, and the dense and sparse forms agreeing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agentparty.gnn.common_neighbours import capability_paths, collaborator_adjacency, collaborator_paths
from agentparty.gnn.data import GraphSnapshot
from agentparty.gnn.embeddings import HashingEmbedder
from agentparty.gnn.link_features import CapabilityView, suitability_features
from agentparty.gnn.train import prepare
from agentparty.models.config import GNNTrainingConfig


@pytest.fixture(scope="module")
def graph_parts(snapshot: GraphSnapshot) -> tuple[CapabilityView, object, int]:
    data = prepare(snapshot, GNNTrainingConfig(validation_folds=1), HashingEmbedder())
    graph = data.graphs["test"]
    return CapabilityView(graph), data.history("test"), len(graph.tables.agent_ids)


def test_capability_paths_sum_to_expected_skill_and_dense_agrees_with_sparse(
    graph_parts: tuple[CapabilityView, object, int],
) -> None:
    view, history, n = graph_parts
    agents = np.arange(n)
    for task in range(5):
        tasks = np.full(n, task)
        sparse_form = capability_paths(view, history, agents, tasks)  # type: ignore[arg-type]
        dense_form = capability_paths(view, history, agents, tasks, dense=True)  # type: ignore[arg-type]
        assert sparse_form.columns is None and dense_form.columns is not None
        features = suitability_features(view, history, agents, tasks)  # type: ignore[arg-type]
        expected_skill = features[:, 1] * features[:, 2]  # coverage × mean proficiency over what is shared
        summed = torch.sparse.sum(sparse_form.paths, dim=1).to_dense().numpy() if sparse_form.paths._nnz() else 0
        np.testing.assert_allclose(summed, expected_skill, rtol=1e-5, atol=1e-6)
        embeddings = torch.randn(view.holds.shape[1], 8, generator=torch.Generator().manual_seed(task))
        torch.testing.assert_close(dense_form.aggregate(embeddings), sparse_form.aggregate(embeddings))
        torch.testing.assert_close(dense_form.scores, sparse_form.scores)
    assert (expected_skill > 0).any() and (expected_skill == 0).any(), "holders and non-holders both present"


def test_collaborator_paths_sum_to_adamic_adar(graph_parts: tuple[CapabilityView, object, int]) -> None:
    view, history, n = graph_parts
    adjacency = collaborator_adjacency(history, n)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, n, 300), rng.integers(0, n, 300)
    keep = a != b
    a, b = a[keep], b[keep]
    paths = collaborator_paths(adjacency, history, view.reliability, a, b)  # type: ignore[arg-type]
    summed = torch.sparse.sum(paths.paths, dim=1).to_dense().numpy()
    expected = [history.adamic_adar(int(x), int(y)) for x, y in zip(a, b, strict=True)]  # type: ignore[attr-defined]
    np.testing.assert_allclose(summed, expected, rtol=1e-5, atol=1e-6)
    assert max(expected) > 0, "some sampled pairs share a collaborator"
    np.testing.assert_allclose(paths.scores[:, 0].numpy(), expected, rtol=1e-5, atol=1e-6)
