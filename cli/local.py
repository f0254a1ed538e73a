"""``agentparty up`` / ``down`` / ``status``: the local Prefect, Bolt graph and Kafka-protocol servers of this home."""

from __future__ import annotations

import typer

from agentparty.cli._bootstrap import local, migrate_graph, settings
from agentparty.cli.events import init_topics


def up() -> None:
    """Start the local services under AGENTPARTY_HOME: the Prefect server with its UI, the Bolt graph server, the Kafka broker."""
    servers, config = local(), settings()
    server = servers.prefect
    started = server.start()
    typer.echo(
        f"Prefect server {'started' if started else 'already running'}: UI {server.ui_url}, API {server.api_url}"
    )
    typer.echo(f"state: {server.home}  log: {server.log_file}")
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


def down() -> None:
    """Stop the local services started by `agentparty up`."""
    servers = local()
    typer.echo("Prefect server stopped" if servers.prefect.stop() else "Prefect server was not running")
    typer.echo("graph server stopped" if servers.graph.stop() else "graph server was not running")
    typer.echo("Kafka broker stopped" if servers.broker.stop() else "Kafka broker was not running")


def status() -> None:
    """Show whether the local services are running."""
    servers = local()
    server = servers.prefect
    healthy = server.healthy()
    typer.echo(f"Prefect server: {'running' if healthy else 'stopped'} ({server.api_url}, pid {server.pid() or '-'})")
    graph = servers.graph
    graph_healthy = graph.healthy()
    typer.echo(f"graph server: {'running' if graph_healthy else 'stopped'} ({graph.uri}, pid {graph.pid() or '-'})")
    broker = servers.broker
    typer.echo(
        f"Kafka broker: {'running' if broker.accepting() else 'stopped'} ({broker.bootstrap_servers}, pid {broker.pid() or '-'})"
    )
    from agentparty.runtime.outbox import Outbox

    pending = Outbox.at(settings().home).pending_count()
    typer.echo(f"event outbox: {pending} pending")
    raise typer.Exit(0 if healthy else 1)


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(down)
    app.command()(status)
