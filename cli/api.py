"""``agentparty api``: serve the HTTP API; ``api key``, ``rotate-key``, ``revoke-key``, ``keys``: the key list.

The API's rules (roles, permissions and their conditions, rate limiting) are
``security.accessControl`` of the SDK configuration (``AGENTPARTY_SDK_CONFIG``).
Its keys are in the key list, ``HOME/state/api-keys.sqlite``, which holds only
SHA-256 digests. On first start, when the list is empty and there is no old
access file, one admin key is created, printed once and never stored: whoever
started the server is the only one who has seen it.

The old access file (``AGENTPARTY_API_ACCESS``, else ``HOME/api-access.yaml``)
still works, with a warning saying how to move it: its rules replace
``security.accessControl`` and its keys are accepted beside the key list's.
"""

from __future__ import annotations

import getpass
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agentparty.cli._bootstrap import check_providers, settings, use_prefect

if TYPE_CHECKING:
    from agentparty.models.access import ApiAccessConfig
    from agentparty.runtime.api_keys import ApiKeyStore
    from agentparty.runtime.settings import Settings

app = typer.Typer(help="The HTTP API: webhooks, templates, agents, teams, workflows, runs (OpenAPI docs at /docs).")

NameArgument = Annotated[str, typer.Argument(help="The key's name (shown in logs, the audit log and as approver).")]


def access_path(settings: Settings) -> Path:
    return settings.api_access or settings.home / "api-access.yaml"


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def load_access(path: Path) -> ApiAccessConfig:
    from agentparty.models.access import ApiAccessConfig
    from agentparty.runtime.documents import DocumentError, read_document, validate_document

    try:
        return validate_document(read_document(path), ApiAccessConfig)
    except DocumentError as exc:
        for error in exc.errors:
            typer.echo(error.render(str(path)), err=True)
        raise typer.Exit(1) from None


def configured_access(config: Settings) -> ApiAccessConfig:
    """The rules the API serves with: the old access file when there is one (with a warning), else
    ``security.accessControl``. Conditions the engine cannot check are refused here, naming them."""
    from agentparty.models.access import ApiAccessConfig

    path = access_path(config)
    if path.exists():
        typer.echo(
            f"warning: {path} (AGENTPARTY_API_ACCESS) is deprecated: move its accessControl and roles under "
            "security.accessControl (roles as accessControl.roles) of the SDK configuration "
            f"(AGENTPARTY_SDK_CONFIG), its keys with `agentparty api import-access {path}`, then delete it",
            err=True,
        )
        return load_access(path)
    from agentparty.runtime.documents import DocumentError

    try:
        return ApiAccessConfig.of(config.load_sdk_configuration().security.access_control)
    except DocumentError as exc:
        for error in exc.errors:
            typer.echo(error.render(str(exc.path)), err=True)
        raise typer.Exit(1) from None
    except ValueError as exc:
        typer.echo(f"{config.sdk_config}: security.accessControl: {exc}", err=True)
        raise typer.Exit(1) from None


def key_store(config: Settings) -> ApiKeyStore:
    from agentparty.runtime.api_keys import ApiKeyStore

    return ApiKeyStore.at(config.home, config.state_backend())


def _first_key(config: Settings) -> None:
    """Create and print the admin key of a first start (no keys, no old access file)."""
    store = key_store(config)
    if access_path(config).exists() or store.records():
        return
    value, _ = store.create("admin", "admin")
    config.audit_log().append(cli_actor(), "key.create", "admin", role="admin", first_start=True)
    typer.echo(
        f"created the API's first key, 'admin' (role admin), in {store.location}; it is shown only now, keep it:\n\n"
        f"    {value}\n"
    )


@app.callback(invoke_without_command=True)
def api(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (AGENTPARTY_API_HOST, default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (AGENTPARTY_API_PORT, default 8700).")] = None,
) -> None:
    """Serve the API on the local Prefect server (started when needed), with the keys of the key list."""
    if ctx.invoked_subcommand is not None:
        return
    config = settings()
    access = configured_access(config)
    _first_key(config)
    for entry in access.api_keys:
        if entry.key_env is not None and not os.environ.get(entry.key_env):
            typer.echo(f"warning: API key {entry.name!r}: {entry.key_env} is not set, the key grants nothing", err=True)
    _warn_due(config)
    host, port = host or config.api_host, port or config.api_port
    check_providers()
    prefect_api = use_prefect(quiet=False, api_bind=host)

    from agentparty.api import create_app
    from agentparty.api.serve import serve

    scheme = "https" if config.api_tls_cert else "http"
    typer.echo(f"Agent Party API on {scheme}://{host}:{port} (docs: /docs), Prefect API {prefect_api}", err=True)
    heartbeat = config.load_sdk_configuration().communication.realtime.heartbeat_interval / 1000
    serve(
        create_app(access, settings=config),
        host,
        port,
        tls=(config.api_tls_cert, config.api_tls_key),
        ws_ping_interval=heartbeat,
    )


def _warn_due(config: Settings) -> None:
    from agentparty.runtime.api_keys import due_for_rotation

    rotation = config.load_sdk_configuration().authentication.api_key_rotation
    now = time.time()
    for record in key_store(config).records():
        if due_for_rotation(record, rotation, now):
            typer.echo(
                f"warning: API key {record.name!r} is older than rotationInterval ({rotation.rotation_interval} h): "
                f"`agentparty api rotate-key {record.name}`",
                err=True,
            )


@app.command("key")
def key(
    name: Annotated[str, typer.Option(help="The key's name (shown in logs, the audit log and as approver).")],
    role: Annotated[
        str, typer.Option(help="Its role: viewer, operator, admin, or one of security.accessControl.roles.")
    ] = "viewer",
) -> None:
    """Create a key in the key list and print it (only now: the list keeps its SHA-256)."""
    from agentparty.models.access import ApiKeyConfig
    from agentparty.runtime.api_keys import ApiKeyProblem

    try:
        ApiKeyConfig(name=name, role=role, key_sha256="0" * 64)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).splitlines()[-1], param_hint="--name") from None
    config = settings()
    if role not in configured_access(config).roles:
        raise typer.BadParameter(f"no role {role!r} in security.accessControl", param_hint="--role")
    try:
        value, _ = key_store(config).create(name, role)
    except ApiKeyProblem as exc:
        raise typer.BadParameter(str(exc), param_hint="--name") from None
    config.audit_log().append(cli_actor(), "key.create", name, role=role)
    typer.echo(f"key: {value}")


@app.command("rotate-key")
def rotate_key(
    name: NameArgument,
    overlap: Annotated[float, typer.Option(min=0, help="Hours the current key stays valid beside the new one.")] = 24.0,
) -> None:
    """Issue a new key for NAME (printed once); its current key keeps working for the overlap window."""
    from agentparty.runtime.api_keys import ApiKeyProblem

    config = settings()
    try:
        value, record = key_store(config).rotate(name, overlap)
    except ApiKeyProblem as exc:
        raise typer.BadParameter(str(exc), param_hint="NAME") from None
    config.audit_log().append(cli_actor(), "key.rotate", name, role=record.role, overlap_hours=overlap)
    typer.echo(f"key: {value}")
    typer.echo(f"the previous key of {name!r} stays valid for {overlap:g} h", err=True)


@app.command("revoke-key")
def revoke_key(name: NameArgument) -> None:
    """Revoke every key of NAME now, the overlap window's too (a running API stops accepting them within 1 s)."""
    config = settings()
    count = key_store(config).revoke(name)
    if count == 0:
        raise typer.BadParameter(f"no valid API key named {name!r}", param_hint="NAME")
    config.audit_log().append(cli_actor(), "key.revoke", name, keys=count)
    typer.echo(f"{name}: {count} key(s) revoked")


@app.command("keys")
def keys() -> None:
    """The key list: name, role, created, last used, and whether each key is current, in overlap or refused."""
    from agentparty.runtime.api_keys import refusal

    config = settings()
    rotation = config.load_sdk_configuration().authentication.api_key_rotation
    now = time.time()
    for record in key_store(config).records():
        why = refusal(record, rotation, now)
        state = "current" if record.current and why is None else ("overlap" if why is None else f"refused: {why}")
        used = _when(record.last_used_at) if record.last_used_at else "never"
        typer.echo(f"{record.name}\t{record.role}\tcreated {_when(record.created_at)}\tlast used {used}\t{state}")


@app.command("import-access")
def import_access(path: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Copy the keySha256 keys of an old access file into the key list (keyEnv keys stay where they are)."""
    config = settings()
    store = key_store(config)
    imported = 0
    for entry in load_access(path).api_keys:
        if entry.key_sha256 is not None and store.add_digest(entry.name, entry.role, entry.key_sha256):
            imported += 1
            config.audit_log().append(cli_actor(), "key.create", entry.name, role=entry.role, imported_from=str(path))
    typer.echo(f"{imported} key(s) imported into {store.location}")


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(seconds))
