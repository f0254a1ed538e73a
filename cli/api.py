"""``agentparty api``: serve the HTTP API; ``agentparty api key``: mint an API key.

The access file (``AGENTPARTY_API_ACCESS``, else ``HOME/api-access.yaml``)
holds only SHA-256 digests of keys. On first start, when it does not exist,
one admin key is created, printed once and never stored: whoever started the
server is the only one who has seen it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
import yaml

from agentparty.cli._bootstrap import settings, use_prefect

if TYPE_CHECKING:
    from agentparty.models.access import ApiAccessConfig
    from agentparty.runtime.settings import Settings

app = typer.Typer(help="The HTTP API: webhooks, templates, agents, teams, workflows, runs (OpenAPI docs at /docs).")

KEY_PREFIX = "ap_"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def access_path(settings: Settings) -> Path:
    return settings.api_access or settings.home / "api-access.yaml"


def create_access_file(path: Path, key: str) -> None:
    """A new access file with one admin key (its digest only), readable by its owner alone."""
    from agentparty.api.security import key_digest

    document = {
        "accessControl": {"rbac": True},
        "apiKeys": [{"name": "admin", "role": "admin", "keySha256": key_digest(key)}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Agent Party API access (ApiAccessConfig). Roles default to viewer, operator, admin.\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(header + yaml.safe_dump(document, sort_keys=False))


def load_access(path: Path) -> ApiAccessConfig:
    from agentparty.models.access import ApiAccessConfig
    from agentparty.runtime.documents import DocumentError, read_document, validate_document

    try:
        return validate_document(read_document(path), ApiAccessConfig)
    except DocumentError as exc:
        for error in exc.errors:
            typer.echo(error.render(str(path)), err=True)
        raise typer.Exit(1) from None


@app.callback(invoke_without_command=True)
def api(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (AGENTPARTY_API_HOST, default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (AGENTPARTY_API_PORT, default 8700).")] = None,
) -> None:
    """Serve the API on the local Prefect server (started when needed), with the keys of the access file."""
    if ctx.invoked_subcommand is not None:
        return
    config = settings()
    path = access_path(config)
    if not path.exists():
        key = new_key()
        create_access_file(path, key)
        typer.echo(f"created {path} with one admin key; it is shown only now, keep it:\n\n    {key}\n")
    access = load_access(path)
    for entry in access.api_keys:
        if entry.key_env is not None and not os.environ.get(entry.key_env):
            typer.echo(f"warning: API key {entry.name!r}: {entry.key_env} is not set, the key grants nothing", err=True)

    prefect_api = use_prefect(quiet=False)

    from agentparty.api import create_app
    from agentparty.api.serve import serve

    host, port = host or config.api_host, port or config.api_port
    typer.echo(f"Agent Party API on http://{host}:{port} (docs: /docs), Prefect API {prefect_api}", err=True)
    serve(create_app(access, settings=config), host, port)


@app.command("key")
def key(
    name: Annotated[str, typer.Option(help="The key's name (shown in logs and as approver).")],
    role: Annotated[
        str, typer.Option(help="Its role: viewer, operator, admin, or one of the access file's roles.")
    ] = "viewer",
) -> None:
    """Print a new API key and the apiKeys entry (its SHA-256) to paste into the access file."""
    from agentparty.api.security import key_digest
    from agentparty.models.access import ApiKeyConfig

    try:
        ApiKeyConfig(name=name, role=role, key_sha256="0" * 64)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).splitlines()[-1], param_hint="--name") from None
    path = access_path(settings())
    if path.exists() and role not in load_access(path).roles:
        typer.echo(f"warning: {path} defines no role {role!r}", err=True)
    value = new_key()
    typer.echo(f"key: {value}")
    typer.echo(f"  - {{name: {name}, role: {role}, keySha256: {key_digest(value)}}}")
