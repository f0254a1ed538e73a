"""``agentparty audit verify`` checks the audit log's hash chain; ``audit show`` prints its entries.

``verify`` reads the whole log (``HOME/audit/audit.jsonl``) and its head anchor
(``audit.head`` beside it), or, with engine state on PostgreSQL, the one chain
every host shares (tables ``audit_entries`` and ``audit_head``), and names the first entry that was edited, removed,
inserted or moved (its line and sequence number), or the entries removed from
the end, exiting 1; a chain that holds exits 0 with the entry count and the
head's hash (worth keeping elsewhere: it is what a rewrite of both files would
change). ``--path`` reads a JSONL file instead (a home's log from before it moved its state to PostgreSQL).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agentparty.cli._bootstrap import settings

if TYPE_CHECKING:
    from agentparty.runtime.audit_trail import AuditTrail

app = typer.Typer(help="The audit log: verify its hash chain, show its entries.", no_args_is_help=True)

PathOption = Annotated[
    Path | None, typer.Option("--path", help="An audit log file (default: HOME/audit/audit.jsonl).", dir_okay=False)
]


def _trail(path: Path | None) -> AuditTrail:
    """The file at ``path``; else the settings' trail: the state database's chain on PostgreSQL, else the home's file."""
    from agentparty.runtime.audit import AuditLog
    from agentparty.runtime.audit_trail import open_audit_trail

    if path is not None:
        return AuditLog(path)
    config = settings()
    return open_audit_trail(config.home, config.state_backend())


@app.command()
def verify(path: PathOption = None) -> None:
    """Check that no entry was edited, removed, reordered or cut off the end; name the first one that was (exit 1)."""
    trail = _trail(path)
    log = trail.location
    found = trail.check()
    if found.broken is None and found.entries == 0 and found.head is None:
        typer.echo(f"{log}: no audit log yet")
        return
    if found.broken is not None:
        where = f"entry {found.broken.seq}" if found.broken.seq is not None else "an entry"
        typer.echo(f"{log}:{found.broken.line}: chain broken at {where}: {found.broken.reason}", err=True)
        raise typer.Exit(1)
    head = f", head at entry {found.head.count} ({found.head.hash})" if found.head is not None else ""
    typer.echo(f"{log}: {found.entries} entries, chain intact{head}")
    if found.note:
        typer.echo(f"{log}: {found.note}")


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

    log = _trail(path)
    moment = since.replace(tzinfo=UTC) if since is not None and since.tzinfo is None else since
    for entry in log.query(actor=actor, action=action, since=moment, limit=limit):
        if as_json:
            typer.echo(json.dumps(entry.as_json(), sort_keys=True))
        else:
            details = json.dumps(entry.details, sort_keys=True) if entry.details else ""
            typer.echo(
                f"{entry.seq}\t{entry.at}\t{entry.actor}\t{entry.action}\t{entry.target}\t{entry.outcome}\t{details}"
            )
