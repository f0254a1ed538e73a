"""From the graph to tensors: a snapshot of the history, seed 000's features, a time split, a ``HeteroData``.

The steps, each in its own module:

1. :mod:`~agentparty.gnn.snapshot`: :class:`GraphSnapshot`, what training reads from the graph,
   and its digest (the "data snapshot hash" of a trained model).
2. :mod:`~agentparty.gnn.features`: seed 000's node and edge features (:class:`NodeTables`) and the
   collaboration edges a period may see.
3. :mod:`~agentparty.gnn.tensors`: log1p and standardisation (:class:`FeatureScaler`, saved with a
   model) and the ``HeteroData`` (:func:`build_tensors`).
4. :mod:`~agentparty.gnn.split`: the time split of the tasks and the labelled examples of a period.

This module is their public face: the rest of the package, the CLI, the
benchmarks and the tests import these names from here.
"""

from agentparty.gnn.features import (
    AGENT,
    CAPABILITY,
    COLLABORATION,
    EDGE_TYPES,
    HELD_BY,
    HOLDS,
    NEEDED_BY,
    NEEDS,
    RECENCY_DAYS,
    TASK,
    NodeTables,
    collaboration_edges,
    feature_matrix,
    node_tables,
    pair_compatibility,
)
from agentparty.gnn.snapshot import GraphSnapshot
from agentparty.gnn.split import (
    NEGATIVES_PER_POSITIVE,
    PAIR_SUPERVISION_SHARE,
    Examples,
    TimeSplit,
    examples,
    time_split,
)
from agentparty.gnn.tensors import FeatureScaler, GraphTensors, build_tensors, embed_nodes

__all__ = [
    "AGENT",
    "CAPABILITY",
    "COLLABORATION",
    "EDGE_TYPES",
    "HELD_BY",
    "HOLDS",
    "NEEDED_BY",
    "NEEDS",
    "NEGATIVES_PER_POSITIVE",
    "PAIR_SUPERVISION_SHARE",
    "RECENCY_DAYS",
    "TASK",
    "Examples",
    "FeatureScaler",
    "GraphSnapshot",
    "GraphTensors",
    "NodeTables",
    "TimeSplit",
    "build_tensors",
    "collaboration_edges",
    "embed_nodes",
    "examples",
    "feature_matrix",
    "node_tables",
    "pair_compatibility",
    "time_split",
]
