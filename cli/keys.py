"""``agentparty keys``: the data keys that encrypt this home's records at rest (README: Encryption at rest)."""

from __future__ import annotations

import typer

from agentparty.cli._bootstrap import fail, settings

app = typer.Typer(help="Data keys that encrypt records at rest: list, rotate, re-encrypt.", no_args_is_help=True)


@app.command("list")
def list_keys() -> None:
    """The data keys (ids and creation times, never the keys), oldest first; the last one seals new records."""
    from agentparty.runtime.data_keys import DataKeyError
    from agentparty.runtime.sealing import sealer_for

    sealer = sealer_for(settings())
    try:
        ring = sealer.ring
    except DataKeyError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"source: {ring.source}")
    typer.echo(f"encryption at rest: {'on' if sealer.enabled else 'off'} ({sealer.algorithm})")
    for key in ring.keys:
        marker = "  (seals new records)" if key is ring.newest else ""
        created = key.created.isoformat(timespec="seconds") if key.created.year > 1 else "-"
        typer.echo(f"  {key.id}  {created}{marker}")


@app.command()
def rotate() -> None:
    """Add a new data key: new records are sealed with it, older ones still open (then run `keys reencrypt`)."""
    from agentparty.runtime.data_keys import DataKeyError
    from agentparty.runtime.reencrypt import RotationRefused
    from agentparty.runtime.reencrypt import rotate as rotate_key
    from agentparty.runtime.sealing import forget_sealers, sealer_for

    audit = settings().audit_log()
    try:
        key = rotate_key(settings(), sealer_for(settings()))
    except (RotationRefused, DataKeyError) as exc:
        audit.append(settings().user_id, "key.rotate", "data-key", outcome="refused", reason=str(exc))
        raise fail(str(exc)) from None
    forget_sealers()
    audit.append(settings().user_id, "key.rotate", f"data-key:{key.id}")
    typer.echo(f"new data key {key.id}: it seals new records; run `agentparty keys reencrypt` to move the old ones")


@app.command()
def reencrypt() -> None:
    """Rewrite every record sealed with an older key (or stored plaintext) with the newest key."""
    from agentparty.runtime.data_keys import DataKeyError
    from agentparty.runtime.reencrypt import reencrypt as reencrypt_home
    from agentparty.runtime.sealing import SealedRecordError, sealer_for

    sealer = sealer_for(settings())
    audit = settings().audit_log()
    try:
        report = reencrypt_home(settings().home, sealer)
    except (SealedRecordError, DataKeyError) as exc:
        audit.append(settings().user_id, "key.reencrypt", "data-keys", outcome="failed", reason=str(exc))
        raise fail(str(exc)) from None
    audit.append(settings().user_id, "key.reencrypt", "data-keys", records=report.total, stores=report.counts)
    for store, count in report.counts.items():
        typer.echo(f"  {store}: {count} rewritten")
    target = f"key {sealer.ring.newest.id}" if sealer.enabled else "plaintext (atRest is off)"
    typer.echo(f"{report.total} records moved to {target}")
