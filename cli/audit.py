"""``agentparty audit verify`` checks the audit log's hash chain; ``audit show`` prints its entries.

``verify`` reads the whole log (``HOME/audit/audit.jsonl``) and names the first
entry that was edited, removed, inserted or moved (its line and sequence
number), exiting 1; a chain that holds exits 0 with the entry count.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from agentparty.cli._bootstrap import settings

app = typer.Typer(help="The audit log: verify its hash chain, show its entries.", no_args_is_help=True)

PathOption = Annotated[
    Path | None, typer.Option("--path", help="An audit log file (default: HOME/audit/audit.jsonl).", dir_okay=False)
]


def _log_path(path: Path | None) -> Path:
    from agentparty.runtime.audit import AuditLog

    return path or AuditLog.at(settings().home).path


@app.command()
def verify(path: PathOption = None) -> None:
    """Check that no entry was edited, removed or reordered; name the first one that was (exit 1)."""
    from agentparty.runtime.audit import verify as verify_chain

    log = _log_path(path)
    if not log.exists():
        typer.echo(f"{log}: no audit log yet")
        return
    broken = verify_chain(log)
    if broken is not None:
        where = f"entry {broken.seq}" if broken.seq is not None else "an entry"
        typer.echo(f"{log}:{broken.line}: chain broken at {where}: {broken.reason}", err=True)
        raise typer.Exit(1)
    with log.open(encoding="utf-8") as lines:
        count = sum(1 for line in lines if line.strip())
    typer.echo(f"{log}: {count} entries, chain intact")


@app.command()
def show(
    actor: Annotated[str | None, typer.Option(help="Only this actor (key:NAME, cli:USER, system).")] = None,
    action: Annotated[str | None, typer.Option(help="Only actions with this prefix (key finds key.rotate).")] = None,
    since: Annotated[datetime | None, typer.Option(help="Only entries at or after this time (UTC).")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON entry a line.")] = False,
    path: PathOption = None,
) -> None:
    """The newest entries first."""
    from datetime import UTC

    from agentparty.runtime.audit import AuditLog

    log = AuditLog(_log_path(path))
    moment = since.replace(tzinfo=UTC) if since is not None and since.tzinfo is None else since
    for entry in log.query(actor=actor, action=action, since=moment, limit=limit):
        if as_json:
            typer.echo(json.dumps(entry.as_json(), sort_keys=True))
        else:
            details = json.dumps(entry.details, sort_keys=True) if entry.details else ""
            typer.echo(
                f"{entry.seq}\t{entry.at}\t{entry.actor}\t{entry.action}\t{entry.target}\t{entry.outcome}\t{details}"
            )
