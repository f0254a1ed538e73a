"""Mini-batch training's subgraphs: uniform neighbour sampling over the heterogeneous graph, by hand.

PyG's ``NeighborLoader`` needs pyg-lib or torch-sparse, which are not installed
here (compiled extensions), so this module samples as it does, with numpy:
from the seed nodes of a batch (the agents and tasks of its labelled pairs),
``num_layers`` hops backwards; at hop k each node reached at hop k − 1 keeps up
to ``fanout[k]`` of its incoming edges *per edge type*, drawn uniformly without
replacement. Nodes are expanded once (the hop they are first reached at), so no
edge is drawn twice. The encoder then runs on the sampled subgraph: a seed's
embedding after ``num_layers`` layers reads exactly the sampled computation
tree, as with PyG (nodes of the last hop get no messages, and only their input
features reach the seeds).

The NCN heads also multiply embeddings of a pair's *common neighbours*
(:class:`~agentparty.gnn.common_neighbours.Neighbourhood`: columns are global
capability or agent rows), so those nodes are seeds too, and :func:`local_paths`
remaps the columns to the subgraph's rows: the common-neighbour term is then the
same sampled-encoder estimate as every other embedding, not a stale one.

Determinism: every draw comes from the ``numpy.random.Generator`` passed in
(seeded by the trainer per epoch), and node and edge orders are sorted, so a
seed gives the same subgraphs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse
from torch_geometric.data import HeteroData

from agentparty.gnn.common_neighbours import Neighbourhood, to_torch
from agentparty.gnn.data import AGENT, CAPABILITY, TASK, Examples

EdgeType = tuple[str, str, str]


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concat(arange(s, s + n) for s, n in zip(starts, lengths))`` without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(total, dtype=np.int64)


def _first_k_per_segment(segments: np.ndarray, k: int, n_segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (into ``segments``, which is grouped by segment) of each segment's first ``k`` entries; and the
    count each segment kept."""
    counts = np.bincount(segments, minlength=n_segments)
    starts = np.cumsum(counts) - counts
    rank = np.arange(len(segments)) - starts[segments]
    return np.flatnonzero(rank < k), np.minimum(counts, k)


@dataclass
class _Incoming:
    """One edge type's edges grouped by destination (a CSC index): ``edges[ptr[d]:ptr[d + 1]]`` enter node d."""

    ptr: np.ndarray
    edges: np.ndarray

    @classmethod
    def of(cls, destinations: np.ndarray, n_nodes: int) -> _Incoming:
        order = np.argsort(destinations, kind="stable").astype(np.int64)
        ptr = np.zeros(n_nodes + 1, dtype=np.int64)
        np.cumsum(np.bincount(destinations, minlength=n_nodes), out=ptr[1:])
        return cls(ptr, order)

    def sample(self, nodes: np.ndarray, fanout: int, rng: np.random.Generator) -> np.ndarray:
        """Edge ids: up to ``fanout`` incoming edges per node, uniformly without replacement."""
        start, degree = self.ptr[nodes], self.ptr[nodes + 1] - self.ptr[nodes]
        small = degree <= fanout
        picked = [_ranges(start[small], degree[small])]
        mid = ~small & (degree <= 8 * fanout)
        picked.append(self._by_keys(start[mid], degree[mid], fanout, rng))
        big = degree > 8 * fanout
        picked.append(self._by_draws(start[big], degree[big], fanout, rng))
        edges: np.ndarray = self.edges[np.sort(np.concatenate(picked))]
        return edges

    @staticmethod
    def _by_keys(start: np.ndarray, degree: np.ndarray, fanout: int, rng: np.random.Generator) -> np.ndarray:
        """Each node's ``fanout`` edges with the smallest random keys (costs its degree: for moderate degrees)."""
        positions = _ranges(start, degree)
        segments = np.repeat(np.arange(len(start)), degree)
        order = np.lexsort((rng.random(len(positions)), segments))
        keep, _ = _first_k_per_segment(segments[order], fanout, len(start))
        chosen: np.ndarray = positions[order][keep]
        return chosen

    @classmethod
    def _by_draws(cls, start: np.ndarray, degree: np.ndarray, fanout: int, rng: np.random.Generator) -> np.ndarray:
        """For high degrees (costs ``fanout``): draw 2·fanout offsets with replacement and keep each node's first
        ``fanout`` distinct ones, which is a uniform sample without replacement; the rare node left short is
        sampled again by keys."""
        if len(start) == 0:
            return np.zeros(0, dtype=np.int64)
        draws = 2 * fanout
        segments = np.repeat(np.arange(len(start)), draws)
        offsets = rng.integers(0, np.repeat(degree, draws))
        _, first = np.unique(segments * int(degree.max()) + offsets, return_index=True)
        first.sort()  # distinct draws, in draw order (grouped by node)
        keep, kept = _first_k_per_segment(segments[first], fanout, len(start))
        chosen: np.ndarray = start[segments[first[keep]]] + offsets[first[keep]]
        short = np.flatnonzero(kept < fanout)
        if len(short) == 0:
            return chosen
        retry = cls._by_keys(start[short], degree[short], fanout, rng)
        return np.concatenate([chosen[~np.isin(segments[first[keep]], short)], retry])


@dataclass
class Subgraph:
    """A sampled subgraph: ``data`` (local rows) and, per node type, the global row of each local one."""

    data: HeteroData
    nodes: dict[str, np.ndarray]
    lookup: dict[str, np.ndarray]
    """Per node type, global row → local row (−1: not sampled)."""

    def local(self, kind: str, rows: np.ndarray) -> np.ndarray:
        """The local rows of global ``rows`` (all must have been sampled: they were seeds)."""
        found = self.lookup[kind][np.asarray(rows, dtype=np.int64)]
        if len(found) and found.min() < 0:
            raise ValueError(f"{kind} rows {np.asarray(rows)[found < 0][:5].tolist()} are not in the subgraph")
        return found


class NeighbourSampler:
    """Samples :class:`Subgraph` s of one ``HeteroData`` (indexes its edges by destination once)."""

    def __init__(self, data: HeteroData, edge_types: Sequence[EdgeType], fanout: Sequence[int]) -> None:
        self.data = data
        self.edge_types = list(edge_types)
        self.fanout = list(fanout)
        self.sizes = {kind: int(data[kind].num_nodes) for kind in data.node_types}
        self.edge_index = {et: data[et].edge_index.cpu().numpy().astype(np.int64) for et in self.edge_types}
        self.incoming = {et: _Incoming.of(self.edge_index[et][1], self.sizes[et[2]]) for et in self.edge_types}

    def sample(self, seeds: Mapping[str, np.ndarray], rng: np.random.Generator) -> Subgraph:
        lookup = {kind: np.full(size, -1, dtype=np.int64) for kind, size in self.sizes.items()}
        nodes: dict[str, list[np.ndarray]] = {kind: [] for kind in self.sizes}
        frontier = {kind: self._admit(kind, np.asarray(seeds.get(kind, []), np.int64), lookup, nodes) for kind in nodes}
        edges: dict[EdgeType, list[np.ndarray]] = {et: [] for et in self.edge_types}
        for fanout in self.fanout:
            reached: dict[str, list[np.ndarray]] = {kind: [] for kind in self.sizes}
            for et in self.edge_types:
                if len(frontier[et[2]]) == 0:
                    continue
                picked = self.incoming[et].sample(frontier[et[2]], fanout, rng)
                edges[et].append(picked)
                reached[et[0]].append(self.edge_index[et][0, picked])
            frontier = {
                kind: self._admit(kind, np.concatenate(found) if found else np.zeros(0, np.int64), lookup, nodes)
                for kind, found in reached.items()
            }
        chosen = {kind: np.concatenate(parts) if parts else np.zeros(0, np.int64) for kind, parts in nodes.items()}
        return Subgraph(self._build(chosen, edges, lookup), chosen, lookup)

    def _admit(
        self, kind: str, rows: np.ndarray, lookup: dict[str, np.ndarray], nodes: dict[str, list[np.ndarray]]
    ) -> np.ndarray:
        """Give the not yet sampled ``rows`` the next local ids; they are the next hop's frontier."""
        unique = np.unique(rows)
        fresh: np.ndarray = unique[lookup[kind][unique] < 0]
        count = sum(len(part) for part in nodes[kind])
        lookup[kind][fresh] = np.arange(count, count + len(fresh))
        nodes[kind].append(fresh)
        return fresh

    def _build(
        self, chosen: dict[str, np.ndarray], edges: dict[EdgeType, list[np.ndarray]], lookup: dict[str, np.ndarray]
    ) -> HeteroData:
        sub = HeteroData()
        for kind, rows in chosen.items():
            index = torch.from_numpy(rows)
            sub[kind].x = self.data[kind].x.index_select(0, index.to(self.data[kind].x.device))
            sub[kind].num_nodes = len(rows)
        for et in self.edge_types:
            picked = np.sort(np.concatenate(edges[et])) if edges[et] else np.zeros(0, np.int64)
            src, dst = self.edge_index[et][:, picked]
            local = np.stack([lookup[et[0]][src], lookup[et[2]][dst]])
            attr = self.data[et].edge_attr
            sub[et].edge_index = torch.from_numpy(local).to(attr.device)
            sub[et].edge_attr = attr.index_select(0, torch.from_numpy(picked).to(attr.device))
        return sub


def _csr(paths: Neighbourhood) -> sparse.csr_matrix:
    """A neighbourhood's path matrix as scipy CSR (row slicing)."""
    coo = paths.paths.detach().cpu().coalesce()
    indices, values = coo.indices().numpy(), coo.values().numpy()
    return sparse.csr_matrix((values, (indices[0], indices[1])), shape=tuple(coo.shape))


def local_paths(
    paths: Neighbourhood, matrix: sparse.csr_matrix, rows: np.ndarray, sub: Subgraph, kind: str
) -> Neighbourhood:
    """``rows`` of a neighbourhood (``matrix``: its paths as CSR), columns remapped to the subgraph's ``kind`` rows
    (they must have been seeds)."""
    picked = matrix[rows].tocoo()
    remapped = sparse.csr_matrix(
        (picked.data, (picked.row, sub.local(kind, picked.col))), shape=(len(rows), len(sub.nodes[kind]))
    )
    return Neighbourhood(to_torch(remapped), paths.scores[torch.from_numpy(rows)])


@dataclass
class Batch:
    """One optimiser step's inputs: the sampled graph and its labelled pairs, in the subgraph's rows."""

    graph: HeteroData
    examples: Examples
    links: tuple[torch.Tensor, torch.Tensor]
    paths: tuple[Neighbourhood, Neighbourhood] | None
    size: int
    nodes: dict[str, np.ndarray]
    """Per node type, the global row of each of the subgraph's rows."""


class MiniBatches:
    """A period's labelled pairs in shuffled batches of ``batch_size``, each with its sampled subgraph.

    Suitability and collaboration examples are shuffled together, so a batch holds each in proportion."""

    def __init__(
        self,
        graph: HeteroData,
        sampler: NeighbourSampler,
        labelled: Examples,
        links: tuple[torch.Tensor, torch.Tensor],
        paths: tuple[Neighbourhood, Neighbourhood] | None,
        batch_size: int,
    ) -> None:
        self.graph, self.sampler, self.labelled, self.links, self.paths = graph, sampler, labelled, links, paths
        self.batch_size = batch_size
        self.matrices = (_csr(paths[0]), _csr(paths[1])) if paths else None

    def __len__(self) -> int:
        return len(self.labelled.suit_label) + len(self.labelled.pair_label)

    def epoch(self, rng: np.random.Generator) -> Iterator[Batch]:
        suitability = len(self.labelled.suit_label)
        order = rng.permutation(len(self))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            yield self.batch(chunk[chunk < suitability], chunk[chunk >= suitability] - suitability, rng)

    def batch(self, suit: np.ndarray, pair: np.ndarray, rng: np.random.Generator) -> Batch:
        """The subgraph around suitability examples ``suit`` and collaboration examples ``pair`` (their indices)."""
        ex = self.labelled
        seeds = {
            AGENT: [ex.suit_agent[suit], ex.pair_a[pair], ex.pair_b[pair]],
            TASK: [ex.suit_task[suit]],
            CAPABILITY: [],
        }
        if self.matrices:  # the NCN heads read the common neighbours' embeddings: sample around them too
            seeds[CAPABILITY].append(self.matrices[0][suit].indices.astype(np.int64))
            seeds[AGENT].append(self.matrices[1][pair].indices.astype(np.int64))
        sub = self.sampler.sample({k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in seeds.items()}, rng)
        local = Examples(
            suit_agent=sub.local(AGENT, ex.suit_agent[suit]),
            suit_task=sub.local(TASK, ex.suit_task[suit]),
            suit_label=ex.suit_label[suit],
            pair_a=sub.local(AGENT, ex.pair_a[pair]),
            pair_b=sub.local(AGENT, ex.pair_b[pair]),
            pair_label=ex.pair_label[pair],
            suit_target=ex.suit_target[suit],
            pair_target=ex.pair_target[pair],
        )
        links = (self.links[0][torch.from_numpy(suit)], self.links[1][torch.from_numpy(pair)])
        paths = None
        if self.paths and self.matrices:
            paths = (
                local_paths(self.paths[0], self.matrices[0], suit, sub, CAPABILITY),
                local_paths(self.paths[1], self.matrices[1], pair, sub, AGENT),
            )
        return Batch(sub.data, local, links, paths, len(suit) + len(pair), sub.nodes)
