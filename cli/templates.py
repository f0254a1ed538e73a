"""``agentparty templates``: agent templates and their versions (seed 000 ``CreateAgentTemplateRequest`` files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from agentparty.cli._bootstrap import settings
from agentparty.models.templates import VersionBump

if TYPE_CHECKING:
    from agentparty.models.memory import MemoryConfig
    from agentparty.tasks.templates import TemplateRegistry

app = typer.Typer(help="Agent templates: create, version, publish, deprecate, list.", no_args_is_help=True)


def _registry() -> TemplateRegistry:
    from agentparty.tasks.templates import TemplateRegistry  # deferred: the CLI's start-up

    configured = settings()
    return TemplateRegistry.at(
        configured.home, configured.tool_policy(), configured.model_registry(), backend=configured.state_backend()
    )


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@app.command()
def create(
    paths: Annotated[
        list[Path],
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="CreateAgentTemplateRequest files (YAML/JSON)."
        ),
    ],
    publish: Annotated[bool, typer.Option(help="Publish version 1.0.0 at once.")] = False,
    approved_by: Annotated[str | None, typer.Option(help="Approver, for templates with approval_required.")] = None,
    skip_existing: Annotated[
        bool, typer.Option(help="Leave templates that already exist alone instead of failing.")
    ] = False,
) -> None:
    """Create templates (draft version 1.0.0) from request files."""
    from agentparty.models import CreateAgentTemplateRequest
    from agentparty.models.step_errors import TemplateError
    from agentparty.runtime.documents import DocumentError, read_document, validate_document

    registry = _registry()
    for path in paths:
        try:
            request = validate_document(read_document(path), CreateAgentTemplateRequest)
        except DocumentError as exc:
            for error in exc.errors:
                typer.echo(error.render(str(path)), err=True)
            raise typer.Exit(1) from None
        if skip_existing and registry.find(request.name) is not None:
            typer.echo(f"{request.name}: exists, left as it is")
            continue
        try:
            created = registry.create(request)
            if publish:
                registry.publish(request.name, created.version.version, approved_by=approved_by)
        except TemplateError as exc:
            raise _fail(exc) from None
        if publish:
            _audit("template.publish", request.name, version=created.version.version, approved_by=approved_by)
        typer.echo(
            f"{request.name}: version {created.version.version} {'published' if publish else 'draft'} "
            f"(model {created.version.model})"
        )


@app.command()
def version(
    name: str,
    bump: Annotated[str, typer.Option(help="major, minor or patch.")] = "minor",
    model: Annotated[str | None, typer.Option(help="Model of the new version.")] = None,
    personality: Annotated[str | None, typer.Option()] = None,
    memory_file: Annotated[
        Path | None,
        typer.Option(
            "--memory",
            exists=True,
            dir_okay=False,
            readable=True,
            help="A YAML/JSON file with the new version's memory configuration (default: the latest version's).",
        ),
    ] = None,
    inherit_memory: Annotated[
        bool | None,
        typer.Option(
            "--inherit-memory/--fresh-memory",
            help="The new version's agent starts with a copy of the previous version's memory, or empty "
            "(default: as its memory configuration says).",
        ),
    ] = None,
) -> None:
    """Create a new draft version from the latest one (earlier versions never change)."""
    from agentparty.models.step_errors import TemplateError

    if bump not in ("major", "minor", "patch"):
        raise typer.BadParameter("must be major, minor or patch", param_hint="--bump")
    registry = _registry()
    try:
        memory = _memory(registry, name, memory_file, inherit_memory)
        created = registry.new_version(
            name, cast(VersionBump, bump), model=model, personality=personality, memory=memory
        )
    except TemplateError as exc:
        raise _fail(exc) from None
    typer.echo(f"{name}: version {created.version.version} draft (model {created.version.model})")


def _memory(registry: TemplateRegistry, name: str, path: Path | None, inherit: bool | None) -> MemoryConfig | None:
    """The memory configuration ``--memory`` and ``--inherit-memory`` ask for; None to keep the latest version's."""
    from agentparty.models.memory import MemoryConfig
    from agentparty.runtime.documents import DocumentError, read_document, validate_document

    memory = None
    if path is not None:
        try:
            memory = validate_document(read_document(path), MemoryConfig)
        except DocumentError as exc:
            for error in exc.errors:
                typer.echo(error.render(str(path)), err=True)
            raise typer.Exit(1) from None
    if inherit is None:
        return memory
    memory = memory or registry.versions(name)[-1].memory
    if memory is None or not memory.enabled:
        raise typer.BadParameter(f"{name}'s new version has no memory to inherit into", param_hint="--inherit-memory")
    return memory.model_copy(update={"inherit": inherit})


def _audit(action: str, name: str, **details: Any) -> None:
    from agentparty.cli.api import cli_actor

    settings().audit_log().append(cli_actor(), action, name, **details)


@app.command()
def publish(
    name: str,
    version: str,
    approved_by: Annotated[str | None, typer.Option(help="Approver, for templates with approval_required.")] = None,
) -> None:
    """Publish a version: steps naming the template use the latest published one."""
    from agentparty.models.step_errors import TemplateError

    try:
        _registry().publish(name, version, approved_by=approved_by)
    except TemplateError as exc:
        raise _fail(exc) from None
    _audit("template.publish", name, version=version, approved_by=approved_by)
    typer.echo(f"{name}: version {version} published")


@app.command()
def deprecate(name: str, version: str) -> None:
    """Deprecate a version: no new agents from it."""
    from agentparty.models.step_errors import TemplateError

    try:
        _registry().deprecate(name, version)
    except TemplateError as exc:
        raise _fail(exc) from None
    _audit("template.deprecate", name, version=version)
    typer.echo(f"{name}: version {version} deprecated")


@app.command("list")
def list_templates(
    name: Annotated[str | None, typer.Argument(help="One template's versions.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Templates with their versions, status, model and capabilities."""
    from agentparty.models.step_errors import TemplateError

    registry = _registry()
    names = [name] if name else registry.store.names()
    rows: list[dict[str, Any]] = []
    for template_name in names:
        try:
            for record in registry.versions(template_name):
                rows.append(
                    {
                        "template": template_name,
                        "version": record.version.version,
                        "status": record.status,
                        "model": record.version.model,
                        "capabilities": record.capabilities,
                    }
                )
        except TemplateError as exc:
            raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        caps = ", ".join(f"{c} {p:.2f}" for c, p in sorted(row["capabilities"].items()))
        typer.echo(f"{row['template']:<24} {row['version']:<9} {row['status']:<11} {row['model']:<20} {caps}")
