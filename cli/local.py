"""``agentparty up`` / ``down`` / ``status``: the local Prefect, Bolt graph and Kafka-protocol servers of this home."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from typing import TYPE_CHECKING, Annotated

import typer

from agentparty.cli._bootstrap import fail, local, migrate_graph, settings
from agentparty.cli.events import init_topics
from agentparty.runtime.postgres_server import LocalPostgres, postgres_bin_dir
from agentparty.runtime.prefect_database import (
    PrefectDatabase,
    choose_postgres,
    chosen_state_db,
    marker_file,
    running_database,
)
from agentparty.runtime.trace_viewer import PHOENIX_REQUIREMENT, LocalTraceViewer

if TYPE_CHECKING:
    from agentparty.runtime.local_services import LocalServices


class StateDb(enum.StrEnum):
    """``agentparty up --state-db``: where Prefect's tables and the engine's own state live."""

    sqlite = "sqlite"
    postgres = "postgres"


def up(
    traces: Annotated[
        bool,
        typer.Option(
            "--traces",
            help="Also start the trace viewer (Arize Phoenix, installed into its own venv on first use) and export "
            "the spans of later commands of this home to it.",
        ),
    ] = False,
    monitoring: Annotated[
        bool,
        typer.Option(
            "--monitoring",
            help="Also render the alerting files (agentparty monitoring render) and start Debian's Prometheus and "
            "Alertmanager on them (apt-get install prometheus prometheus-alertmanager).",
        ),
    ] = False,
    state_db: Annotated[
        StateDb | None,
        typer.Option(
            "--state-db",
            help="Where Prefect's tables and the engine's own state live: sqlite (files under the home, the default) "
            "or postgres (the home's own PostgreSQL cluster, or the server AGENTPARTY_STATE_DB_URL names). A home "
            "keeps what it chose: later commands start Prefect on it again.",
            case_sensitive=False,
        ),
    ] = None,
) -> None:
    """Start the local services under AGENTPARTY_HOME: the Prefect server with its UI, the Bolt graph server, the Kafka broker."""
    servers, config = local(), settings()
    if state_db is not None:
        servers = _choose_state_db(servers, state_db)
    if traces:
        _start_traces(servers.traces, servers.postgres)
    server = servers.prefect
    try:
        started = server.start()
    except RuntimeError as exc:  # its database cannot be prepared, or it exited: say why, no traceback
        raise fail(str(exc)) from None
    typer.echo(
        f"Prefect server {'started' if started else 'already running'}: UI {server.ui_url}, API {server.api_url}"
    )
    typer.echo(f"state: {server.home}  log: {server.log_file}")
    if server.database is not None:
        typer.echo(f"Prefect database: {server.database.describe()}; engine state: {config.state_backend().describe()}")
        asyncio.run(_share_results(server.api_url))
        typer.echo("run results: in the state database (the Prefect server's default result storage), for any host")
    if config.database is None:
        graph = servers.graph
        started = graph.start()
        typer.echo(f"graph server {'started' if started else 'already running'}: {graph.uri}  log: {graph.log_file}")
        migrate_graph(graph.database_config())
    else:
        typer.echo(f"graph: using {config.database.uri} (AGENTPARTY_DATABASE)")
    if config.kafka is None:
        broker = servers.broker
        started = broker.start()
        typer.echo(
            f"Kafka broker {'started' if started else 'already running'}: {broker.bootstrap_servers}  log: {broker.log_file}"
        )
    else:
        typer.echo(f"events: using {','.join(config.kafka.bootstrap_servers)} (AGENTPARTY_KAFKA)")
    created = init_topics()
    typer.echo(f"event topics: created {', '.join(created)}" if created else "event topics: up to date")
    if monitoring:
        _start_monitoring(servers)


def _choose_state_db(servers: LocalServices, state_db: StateDb) -> LocalServices:
    """Record ``--state-db postgres`` for the home (after making its databases); refuse what would split its state."""
    home, config = servers.prefect.home, settings()
    chosen = chosen_state_db(home)
    if state_db is StateDb.sqlite:
        if chosen != "sqlite":
            raise fail(
                f"{home} keeps Prefect's tables and its engine state on PostgreSQL ({marker_file(home)}); "
                "they are not copied back to SQLite: use a new AGENTPARTY_HOME for SQLite"
            )
        return servers
    if servers.prefect.healthy() and running_database(home) != "postgresql":
        raise fail(
            "the Prefect server of this home is running on SQLite: stop it first with `agentparty down`, "
            "then run `agentparty up --state-db postgres` (runs recorded in SQLite are not copied)"
        )
    if config.state_db_url is not None:
        database = PrefectDatabase(server_url=config.state_db_url.get_secret_value())
    elif postgres_bin_dir() is None:
        raise fail("PostgreSQL was not found (set AGENTPARTY_POSTGRES_BIN, or apt-get install postgresql)")
    else:
        database = PrefectDatabase(cluster=servers.postgres)
        started = servers.postgres.start()
        typer.echo(f"PostgreSQL {'started' if started else 'already running'}: port {servers.postgres.port}")
    try:
        database.prepare()  # its databases exist before the choice is recorded and anything uses them
    except RuntimeError as exc:
        raise fail(str(exc)) from None
    choose_postgres(home, external=database.server_url is not None)
    return local()  # rebuilt: the Prefect server now has its PostgreSQL database


async def _share_results(api_url: str) -> None:
    from prefect.client.orchestration import PrefectClient

    from agentparty.runtime.result_storage import share_results_through_server

    async with PrefectClient(api_url) as client:
        await share_results_through_server(client)


def _start_traces(viewer: LocalTraceViewer, postgres: LocalPostgres) -> None:
    if postgres_bin_dir() is None:
        typer.echo("trace viewer: PostgreSQL not found, Phoenix keeps its spans in SQLite (several times its CPU)")
    elif not viewer.healthy():
        started = postgres.start()
        postgres.ensure_database("phoenix")
        typer.echo(
            f"PostgreSQL {'started' if started else 'already running'} for the trace viewer: port {postgres.port}"
        )
        viewer = dataclasses.replace(viewer, database_url=postgres.url("phoenix", driver="postgresql"))
    if not viewer.install.installed():
        typer.echo(f"installing {PHOENIX_REQUIREMENT} into {viewer.install.venv} (once; this takes a few minutes)")
    started = viewer.start()
    typer.echo(
        f"trace viewer (Phoenix) {'started' if started else 'already running'}: UI {viewer.ui_url}, "
        f"OTLP {viewer.otlp_endpoint}  log: {viewer.log_file}"
    )
    typer.echo("spans of later commands of this home go there unless OTEL_EXPORTER_OTLP_ENDPOINT says otherwise")


def _start_monitoring(servers: LocalServices) -> None:
    from agentparty.cli.monitoring import render_files

    render_files()
    retention = settings().load_sdk_configuration().monitoring.metrics.retention_period
    try:
        alertmanager_started = servers.alertmanager.start()
        prometheus_started = servers.prometheus.start(retention_hours=retention)
    except FileNotFoundError as exc:
        raise fail(f"{exc} (Debian's packages; then run `agentparty up --monitoring` again)") from None
    for name, server, started in (
        ("Alertmanager", servers.alertmanager, alertmanager_started),
        ("Prometheus", servers.prometheus, prometheus_started),
    ):
        typer.echo(f"{name} {'started' if started else 'already running'}: {server.url}  log: {server.log_file}")


def down() -> None:
    """Stop the local services started by `agentparty up`."""
    servers = local()
    if servers.traces.stop():
        typer.echo("trace viewer stopped")
    for name, server in (("Prometheus", servers.prometheus), ("Alertmanager", servers.alertmanager)):
        if server.stop():
            typer.echo(f"{name} stopped")
    typer.echo("Prefect server stopped" if servers.prefect.stop() else "Prefect server was not running")
    typer.echo("graph server stopped" if servers.graph.stop() else "graph server was not running")
    typer.echo("Kafka broker stopped" if servers.broker.stop() else "Kafka broker was not running")
    if servers.postgres.stop():  # last: the servers above may use it
        typer.echo("PostgreSQL stopped")


def status() -> None:
    """Show whether the local services are running."""
    servers = local()
    server = servers.prefect
    healthy = server.healthy()
    typer.echo(f"Prefect server: {'running' if healthy else 'stopped'} ({server.api_url}, pid {server.pid() or '-'})")
    if server.database is not None:
        typer.echo(f"Prefect database: {server.database.describe()}")
        typer.echo(f"engine state: {settings().state_backend().describe()}")
    graph = servers.graph
    graph_healthy = graph.healthy()
    typer.echo(f"graph server: {'running' if graph_healthy else 'stopped'} ({graph.uri}, pid {graph.pid() or '-'})")
    broker = servers.broker
    typer.echo(
        f"Kafka broker: {'running' if broker.accepting() else 'stopped'} ({broker.bootstrap_servers}, pid {broker.pid() or '-'})"
    )
    if servers.postgres.pid() is not None:
        typer.echo(
            f"PostgreSQL: {'running' if servers.postgres.healthy() else 'not answering'} (port {servers.postgres.port})"
        )
    viewer = servers.traces
    if viewer.pid() is not None:
        typer.echo(f"trace viewer: {'running' if viewer.healthy() else 'not answering'} ({viewer.ui_url})")
    for name, monitor in (("Prometheus", servers.prometheus), ("Alertmanager", servers.alertmanager)):
        if monitor.pid() is not None:
            typer.echo(f"{name}: {'running' if monitor.healthy() else 'not answering'} ({monitor.url})")
    from agentparty.runtime.outbox import Outbox

    pending = Outbox.at(settings().home).pending_count()
    typer.echo(f"event outbox: {pending} pending")
    raise typer.Exit(0 if healthy else 1)


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(down)
    app.command()(status)
