"""GNN fixtures: the default synthetic history (seed 000 SyntheticDataConfig) and the real MiniLM embedder, cached.

Both lanes' GNN tests use them: ``tests/unit/gnn/conftest.py`` and
``tests/integration/gnn/conftest.py`` import the ones they need.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentparty.gnn.data import GraphSnapshot
from agentparty.gnn.embeddings import CachedEmbedder, default_embedder
from agentparty.gnn.synthetic import SyntheticHistory, generate
from agentparty.models.config import SyntheticDataConfig


@pytest.fixture(scope="session")
def history() -> SyntheticHistory:
    return generate(SyntheticDataConfig())


@pytest.fixture(scope="session")
def snapshot(history: SyntheticHistory) -> GraphSnapshot:
    return GraphSnapshot.from_batch(history.batch)


@pytest.fixture(scope="session")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> CachedEmbedder:
    """all-MiniLM-L6-v2 from the wheel, behind a content-hash cache in a session directory."""
    return default_embedder(Path(tmp_path_factory.mktemp("gnn-embeddings")))
