"""GNN fixtures of the integration lane (defined in ``support.gnn_fixtures``, shared with the unit lane)."""

from support.gnn_fixtures import history, snapshot  # noqa: F401  (fixtures, registered by name)
