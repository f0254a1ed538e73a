"""``agentparty graph``: the results graph's schema migrations, and a recorded run read back."""

from __future__ import annotations

from typing import Annotated

import typer

from agentparty.cli._bootstrap import graph_config, migrate_graph

app = typer.Typer(help="The results graph (Neo4j 5 or the local Bolt server).", no_args_is_help=True)


@app.command("migrate")
def graph_migrate(
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Apply without asking (migrationStrategy assisted).")
    ] = False,
) -> None:
    """Apply the graph schema migrations (constraints and indexes); safe to run again."""
    from neo4j.exceptions import ServiceUnavailable

    config = graph_config()
    try:
        migrate_graph(config, explicit=True, assume_yes=yes)
    except ServiceUnavailable as exc:
        typer.echo(f"error: no graph server at {config.uri} ({exc}); start one with `agentparty up`", err=True)
        raise typer.Exit(1) from None


@app.command("task")
def graph_task(task_id: Annotated[str, typer.Argument(help="The Task id `agentparty run` printed.")]) -> None:
    """Show a recorded run: the task with its status and token usage, and every output, as JSON."""
    from neo4j.exceptions import ServiceUnavailable

    from agentparty.runtime.graph_reads import GraphReader
    from agentparty.runtime.graph_server import DATABASE_NAME
    from agentparty.runtime.graph_store import GraphStore

    config = graph_config()
    try:
        with GraphStore(config, DATABASE_NAME) as store:
            view = GraphReader(store).task(task_id)
    except ServiceUnavailable as exc:
        typer.echo(f"error: no graph server at {config.uri} ({exc}); start one with `agentparty up`", err=True)
        raise typer.Exit(1) from None
    if view is None:
        typer.echo(f"error: no task {task_id} in the graph at {config.uri}", err=True)
        raise typer.Exit(1)
    typer.echo(view.model_dump_json(indent=2))
