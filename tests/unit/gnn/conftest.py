"""GNN fixtures of the unit lane (defined in ``support.gnn_fixtures``, shared with the integration lane)."""

from support.gnn_fixtures import embedder, history, snapshot  # noqa: F401  (fixtures, registered by name)
