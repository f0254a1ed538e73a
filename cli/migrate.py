"""``agentparty migrate``: bring the state database's stores and the graph schema up to date.

Under ``versioning.migrationStrategy`` ``manual`` and ``assisted`` (the seed's
default) no other command upgrades a store or graph that holds data: they refuse
and name this command. ``assisted`` prints each plan and asks; ``--yes`` answers
yes. ``dataBackup`` and ``rollbackSupport`` apply here as everywhere
(``runtime/schema_versions.py``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from agentparty.cli._bootstrap import fail, graph_config, migrate_graph, settings


def migrate(
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Apply every plan without asking (strategy assisted).")
    ] = False,
    graph: Annotated[bool, typer.Option("--graph/--no-graph", help="Also migrate the graph schema.")] = True,
) -> None:
    """Apply the pending schema migrations of the engine's state database (and of the graph)."""
    from neo4j.exceptions import ServiceUnavailable

    from agentparty.runtime.schema_versions import MigrationDeclined, migrate_store, plan
    from agentparty.runtime.state_stores import STATE_STORES

    config = settings()
    backend, policy = config.state_backend(), config.migration_policy()
    typer.echo(f"state database: {backend.describe()} (migrationStrategy {policy.strategy})")
    for store in STATE_STORES:
        if backend.dialect not in store.dialects:
            continue
        before = plan(backend, store.name, store.migrations)
        if not before.pending:
            typer.echo(f"  {store.name}: up to date (version {before.current})")
            continue
        try:
            version = migrate_store(
                backend, store.name, store.migrations, policy, explicit=True,
                confirm=(lambda _plan: True) if yes else (lambda text: typer.confirm(f"{text}. Apply?")),
            )  # fmt: skip
        except MigrationDeclined as exc:
            raise fail(str(exc)) from None
        typer.echo(f"  {store.name}: version {before.current} -> {version}")
    if graph:
        try:
            migrate_graph(graph_config(), explicit=True, assume_yes=yes)
        except ServiceUnavailable as exc:
            raise fail(f"no graph server ({exc}); start one with `agentparty up`, or pass --no-graph") from None
        except MigrationDeclined as exc:
            raise fail(str(exc)) from None


def register(app: typer.Typer) -> None:
    app.command()(migrate)
