"""``agentparty gdpr``: erase or export a user's data, purge what is past retention, schedule the purge.

``erase --user ID`` removes the user's runs from Prefect (runs, persisted results,
artifacts), this home (conversations, memory changes, webhook deliveries, delivered
outbox events) and the graph (their runs' data and the User), and says what it
cannot remove (events already on Kafka, Prefect's log lines and events). ``purge``
does the same for everything older than ``dataRetention`` days. Both are audited
(``gdpr.erase``, ``retention.purge``); an erasure that could not reach a store exits 1
and can be run again. See ``flows/retention.py``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from agentparty.cli._bootstrap import settings, use_prefect

app = typer.Typer(help="Erase or export a user's data; purge data past retention.", no_args_is_help=True)

UserOption = Annotated[str, typer.Option("--user", help="The user id runs were made for (AGENTPARTY_USER_ID).")]
JsonOption = Annotated[bool, typer.Option("--json", help="The full report as JSON.")]


def _print_removed(removed: dict[str, int]) -> None:
    for name, count in removed.items():
        if count:
            typer.echo(f"  {name}: {count}")


@app.command()
def erase(user: UserOption, as_json: JsonOption = False) -> None:
    """Remove the user's runs and every record they left; exit 1 when a store could not be reached."""
    from agentparty.cli.api import cli_actor
    from agentparty.flows.retention import erase_user

    use_prefect()
    report = asyncio.run(erase_user(user, actor=cli_actor(), settings=settings()))
    if as_json:
        typer.echo(report.model_dump_json(by_alias=True, indent=2))
    else:
        typer.echo(f"erased user {user!r}: {report.runs} runs")
        _print_removed(report.removed.model_dump())
        for problem in report.problems:
            typer.echo(f"not erased: {problem}", err=True)
        for remains in report.remains:
            typer.echo(f"remains: {remains}")
    if not report.complete:
        raise typer.Exit(1)


@app.command()
def purge(
    older_than: Annotated[
        float | None,
        typer.Option("--older-than", min=0, help="Days (default: monitoring.logging.compliance.dataRetention)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Delete runs, results, conversations, deliveries, delivered events and graph run data past retention."""
    from agentparty.cli.api import cli_actor
    from agentparty.flows.retention import purge as run_purge

    use_prefect()
    report = asyncio.run(run_purge(actor=cli_actor(), older_than_days=older_than, settings=settings()))
    if as_json:
        typer.echo(report.model_dump_json(by_alias=True, indent=2))
    else:
        typer.echo(f"purged data older than {report.cutoff.isoformat()} ({report.retention_days:g} days)")
        _print_removed(report.removed.model_dump())
        for problem in report.problems:
            typer.echo(f"not purged: {problem}", err=True)
        for remains in report.remains:
            typer.echo(f"remains: {remains}")
    if not report.complete:
        raise typer.Exit(1)


@app.command()
def export(user: UserOption) -> None:
    """The user's runs, conversations and graph records, as JSON on stdout."""
    from agentparty.flows.retention import export_user

    use_prefect()
    exported = asyncio.run(export_user(user, settings=settings()))
    typer.echo(json.dumps(exported.model_dump(mode="json", by_alias=True), indent=2))


@app.command()
def schedule(
    pool: Annotated[str | None, typer.Option(help="Work pool (default: AGENTPARTY_WORK_POOL).")] = None,
    cron: Annotated[str, typer.Option(help="When the purge runs (cron).")] = "30 3 * * *",
    timezone: Annotated[str, typer.Option(help="The cron's time zone.")] = "UTC",
) -> None:
    """Deploy the daily retention purge flow (``retention-purge/daily``) on a work pool; a worker runs it."""
    from agentparty.cli.api import cli_actor
    from agentparty.deployments.build import ensure_work_pool
    from agentparty.flows.retention import FLOW_NAME, retention_deployment

    use_prefect()
    work_pool = pool or settings().work_pool
    ensure_work_pool(work_pool)
    deployment = retention_deployment(cron, timezone)
    deployment_id = deployment.apply(work_pool_name=work_pool)
    name = f"{FLOW_NAME}/{deployment.name}"
    typer.echo(f"{name}  ({deployment_id}) pool {work_pool}: cron {cron} {timezone}")
    settings().audit_log().append(
        cli_actor(), "deployment.create", name, deployment_id=str(deployment_id), pool=work_pool
    )
