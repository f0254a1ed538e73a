"""Mini-batch training: the hand-written neighbour sampler, the batches, training with it, and its settings."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch_geometric.data import HeteroData

from agentparty.gnn.data import AGENT, CAPABILITY, EDGE_TYPES, TASK, GraphSnapshot
from agentparty.gnn.embeddings import CachedEmbedder
from agentparty.gnn.evaluate import evaluate
from agentparty.gnn.minibatch import MiniBatches, NeighbourSampler, _Incoming
from agentparty.gnn.synthetic import SyntheticHistory
from agentparty.gnn.train import GNNMethod, PreparedData, new_model, prepare, train_model
from agentparty.models.config import GNNTrainingConfig

MINI = GNNTrainingConfig(training_mode="mini-batch", batch_size=64, num_epochs=2, use_gpu=False)


@pytest.fixture(scope="module")
def prepared(snapshot: GraphSnapshot, embedder: CachedEmbedder) -> PreparedData:
    """The seed-size history prepared for the NCN model (its common-neighbour paths included)."""
    return prepare(snapshot, MINI, embedder)


@pytest.fixture(scope="module")
def graph(prepared: PreparedData) -> HeteroData:
    return prepared.graphs["train"].data


def _seeds(prepared: PreparedData, count: int = 40) -> dict[str, np.ndarray]:
    ex = prepared.labelled["train"]
    return {AGENT: np.unique(ex.suit_agent[:count]), TASK: np.unique(ex.suit_task[:count])}


def _full_edges(graph: HeteroData) -> dict[tuple[str, str, str], dict[tuple[int, int], list[np.ndarray]]]:
    edges: dict[tuple[str, str, str], dict[tuple[int, int], list[np.ndarray]]] = {}
    for et in EDGE_TYPES:
        by_pair: dict[tuple[int, int], list[np.ndarray]] = defaultdict(list)
        for (src, dst), attr in zip(graph[et].edge_index.t().tolist(), graph[et].edge_attr.numpy(), strict=True):
            by_pair[(src, dst)].append(attr)
        edges[et] = by_pair
    return edges


@pytest.mark.parametrize("fanout", [[3, 2], [15, 10]])
def test_sampled_edges_exist_and_seeds_keep_fanout_neighbours(
    graph: HeteroData, prepared: PreparedData, fanout: list[int]
) -> None:
    seeds = _seeds(prepared)
    sub = NeighbourSampler(graph, EDGE_TYPES, fanout).sample(seeds, np.random.default_rng(0))
    full = _full_edges(graph)
    for kind, rows in seeds.items():  # seeds present, relabelled consistently, features carried
        local = sub.local(kind, rows)
        assert (sub.nodes[kind][local] == rows).all()
    for kind in (AGENT, CAPABILITY, TASK):
        assert torch.equal(sub.data[kind].x, graph[kind].x[torch.from_numpy(sub.nodes[kind])])
        assert len(np.unique(sub.nodes[kind])) == len(sub.nodes[kind])
    for et in EDGE_TYPES:
        src_kind, _, dst_kind = et
        local = sub.data[et].edge_index.numpy()
        src, dst = sub.nodes[src_kind][local[0]], sub.nodes[dst_kind][local[1]]
        for s, d, attr in zip(src, dst, sub.data[et].edge_attr.numpy(), strict=True):
            assert any(np.array_equal(attr, a) for a in full[et][(int(s), int(d))]), (et, s, d)
        incoming = np.bincount(local[1], minlength=len(sub.nodes[dst_kind]))
        assert incoming.max(initial=0) <= max(fanout)
        if dst_kind in seeds:  # a seed keeps min(degree, fanout[0]) of its incoming edges of each type
            degree = np.bincount(graph[et].edge_index[1].numpy(), minlength=graph[dst_kind].num_nodes)
            rows = seeds[dst_kind]
            assert (incoming[sub.local(dst_kind, rows)] == np.minimum(degree[rows], fanout[0])).all(), et


def test_sampling_is_deterministic_per_seed(graph: HeteroData, prepared: PreparedData) -> None:
    sampler = NeighbourSampler(graph, EDGE_TYPES, [2, 2])
    first, again, other = (sampler.sample(_seeds(prepared), np.random.default_rng(s)) for s in (7, 7, 8))
    for et in EDGE_TYPES:
        assert torch.equal(first.data[et].edge_index, again.data[et].edge_index)
    assert any(
        first.data[et].edge_index.shape != other.data[et].edge_index.shape
        or not torch.equal(first.data[et].edge_index, other.data[et].edge_index)
        for et in EDGE_TYPES
    )


@pytest.mark.parametrize("degree", [12, 1000])
def test_high_degree_nodes_are_sampled_uniformly_without_replacement(degree: int) -> None:
    """Both draws (random keys up to 8·fanout, rejection above) give distinct edges, each about equally often."""
    nodes, fanout, rounds = 200, 5, 100
    incoming = _Incoming.of(np.repeat(np.arange(nodes), degree), nodes)  # node d's edges: d·degree … (d+1)·degree − 1
    rng, counts = np.random.default_rng(3), np.zeros(degree)
    for _ in range(rounds):
        picked = incoming.sample(np.arange(nodes), fanout, rng).reshape(nodes, fanout)
        assert (picked // degree == np.arange(nodes)[:, None]).all(), "each node's own edges"
        assert (np.diff(np.sort(picked, axis=1), axis=1) > 0).all(), "no edge twice"
        np.add.at(counts, picked.ravel() % degree, 1)
    expected = rounds * nodes * fanout / degree
    assert np.abs(counts - expected).max() < 6 * math.sqrt(expected)


def test_a_complete_sample_embeds_seeds_as_the_full_graph_does(graph: HeteroData, prepared: PreparedData) -> None:
    """With fanouts above every degree, two hops hold each seed's whole computation tree: same embeddings."""
    torch.manual_seed(0)
    model = new_model(MINI)
    model.materialise(graph)
    model.eval()
    seeds = _seeds(prepared)
    sub = NeighbourSampler(graph, EDGE_TYPES, [10_000, 10_000]).sample(seeds, np.random.default_rng(0))
    with torch.no_grad():
        full, local = model(graph), model(sub.data)
    for kind, rows in seeds.items():
        torch.testing.assert_close(local[kind][torch.from_numpy(sub.local(kind, rows))], full[kind][rows])


def test_batches_cover_every_pair_once_with_remapped_paths(graph: HeteroData, prepared: PreparedData) -> None:
    ex, paths = prepared.labelled["train"], prepared.paths["train"]
    batches = MiniBatches(
        graph, NeighbourSampler(graph, EDGE_TYPES, [2, 2]), ex, prepared.links["train"], paths, batch_size=50
    )
    h = {kind: torch.randn(graph[kind].num_nodes, 4) for kind in (AGENT, CAPABILITY, TASK)}
    cn_suit, cn_pair = torch.sparse.mm(paths[0].paths, h[CAPABILITY]), torch.sparse.mm(paths[1].paths, h[AGENT])
    suit_seen, pair_seen, steps = 0, 0, 0
    for batch in batches.epoch(np.random.default_rng(1)):
        assert batch.size <= 50 and batch.paths is not None
        ex_b, nodes = batch.examples, batch.nodes
        suit_seen, pair_seen, steps = suit_seen + len(ex_b.suit_label), pair_seen + len(ex_b.pair_label), steps + 1
        # The pairs' rows are local, and the common-neighbour term on local rows equals the full graph's.
        suit_rows = _rows_of(nodes[AGENT][ex_b.suit_agent], nodes[TASK][ex_b.suit_task], ex.suit_agent, ex.suit_task)
        pair_rows = _rows_of(nodes[AGENT][ex_b.pair_a], nodes[AGENT][ex_b.pair_b], ex.pair_a, ex.pair_b)
        local_suit = torch.sparse.mm(batch.paths[0].paths, h[CAPABILITY][torch.from_numpy(nodes[CAPABILITY])])
        local_pair = torch.sparse.mm(batch.paths[1].paths, h[AGENT][torch.from_numpy(nodes[AGENT])])
        for i, rows in enumerate(suit_rows):
            assert any(torch.allclose(local_suit[i], cn_suit[r]) for r in rows), i
        for i, rows in enumerate(pair_rows):
            assert any(torch.allclose(local_pair[i], cn_pair[r]) for r in rows), i
    assert (suit_seen, pair_seen) == (len(ex.suit_label), len(ex.pair_label))
    assert steps == math.ceil((suit_seen + pair_seen) / 50)


def _rows_of(first: np.ndarray, second: np.ndarray, all_first: np.ndarray, all_second: np.ndarray) -> list[np.ndarray]:
    """For each (first, second) pair of a batch, the labelled rows holding that pair (a pair may recur)."""
    rows = [np.flatnonzero((all_first == a) & (all_second == b)) for a, b in zip(first, second, strict=True)]
    assert all(len(r) for r in rows)
    return rows


@pytest.mark.parametrize("model_type", ["NCN", "GraphSAGE"])
def test_mini_batch_training_trains_and_scores(
    snapshot: GraphSnapshot, embedder: CachedEmbedder, history: SyntheticHistory, model_type: str
) -> None:
    config = MINI.model_copy(update={"model_type": model_type})
    data = prepare(snapshot, config, embedder)
    run = train_model(data)
    assert len(run.curves) == 2 and run.best_epoch >= 1
    assert all(math.isfinite(e.train_loss) and math.isfinite(e.val_score) for e in run.curves)
    assert run.curves[-1].train_loss < run.curves[0].train_loss, "it learns"
    row = evaluate(GNNMethod(run.model, data.scaler, config.method_name), data, history.truth)
    for value in (row.val_suitability_auc, row.test_suitability_auc, row.truth_suitability_auc, row.recall_at_k):
        assert math.isfinite(value) and 0.0 <= value <= 1.0, row


def test_mini_batch_same_seed_same_metrics(prepared: PreparedData, history: SyntheticHistory) -> None:
    """As full-batch training is (test_training): the seed fixes the shuffles, the samples and so the weights."""

    def trained(data: PreparedData, figures: bool = True) -> tuple[list[float], dict[str, object]]:
        run = train_model(data)
        if not figures:
            return [e.train_loss for e in run.curves], {}
        row = evaluate(GNNMethod(run.model, data.scaler, data.config.method_name), data, history.truth)
        return [e.train_loss for e in run.curves], row.as_dict()

    first = trained(prepared)
    assert trained(prepared) == first
    other = dataclasses.replace(prepared, config=MINI.model_copy(update={"random_seed": 1}))
    assert trained(other, figures=False)[0] != first[0]


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"batch_size": 64}, "batch_size applies to training_mode: mini-batch; training is full-batch"),
        ({"neighbour_fanout": [15, 10]}, "neighbour_fanout applies to training_mode: mini-batch"),
        ({"training_mode": "mini-batch", "neighbour_fanout": [15]}, "neighbour_fanout has 1 entries but num_layers"),
        ({"training_mode": "mini-batch", "neighbour_fanout": [15, 0]}, "neighbour_fanout.1"),
        ({"training_mode": "mini-batch", "batch_size": 0}, "batch_size"),
    ],
)
def test_batching_settings_that_would_be_ignored_are_refused(settings: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError, match=named.replace(".", r"\.")):
        GNNTrainingConfig.model_validate(settings)


def test_defaults_and_saved_configurations_load() -> None:
    """Every saved card carries the seed's batch_size: a full-batch configuration read back must still load."""
    assert GNNTrainingConfig.model_validate(GNNTrainingConfig().model_dump()).training_mode == "full"
    assert GNNTrainingConfig(training_mode="mini-batch").fanout == [15, 10]
    assert GNNTrainingConfig(training_mode="mini-batch", num_layers=3).fanout == [15, 10, 10]
    assert GNNTrainingConfig(training_mode="mini-batch", num_layers=1, neighbour_fanout=[4]).fanout == [4]
