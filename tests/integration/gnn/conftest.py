"""GNN fixtures of the integration lane (defined in ``support.gnn_fixtures``, shared with the unit lane).

``graph_settings`` points the process settings (what a flow run reads) at the session's Bolt server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from support.gnn_fixtures import history, snapshot  # noqa: F401  (fixtures, registered by name)


@pytest.fixture
def graph_settings(bolt_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the process settings (what a deployed flow run reads) at the session's Bolt server."""
    from agentparty.runtime.settings import get_settings

    config = bolt_server.database_config()
    monkeypatch.setenv("AGENTPARTY_DATABASE__URI", config.uri)
    monkeypatch.setenv("AGENTPARTY_DATABASE__USERNAME", config.username)
    monkeypatch.setenv("AGENTPARTY_DATABASE__PASSWORD", config.password.get_secret_value())
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
