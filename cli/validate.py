"""``agentparty validate`` and ``agentparty schema``: check documents, print their JSON Schemas."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agentparty.cli._bootstrap import settings

if TYPE_CHECKING:
    from agentparty.models.errors import FieldError
    from agentparty.models.sdk_config import SDKConfiguration
    from agentparty.runtime.documents import FileReport


class Kind(StrEnum):
    AUTO = "auto"
    WORKFLOW = "workflow"
    SDK_CONFIG = "sdk-config"
    AGENT_TEMPLATE = "agent-template"


class SchemaKind(StrEnum):
    WORKFLOW = "workflow"
    SDK_CONFIG = "sdk-config"
    AGENT_TEMPLATE = "agent-template"


def validate(
    paths: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True, help="Files to check.")],
    kind: Annotated[Kind, typer.Option(help="What the files are; 'auto' guesses from their keys.")] = Kind.AUTO,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Validate workflow definitions (and SDK configurations, agent templates).

    Every problem is printed on its own line as FILE:LINE: field.path: reason. A configured model provider whose
    credentials this environment cannot resolve is one too, in the SDK configurations given and the one in use.
    """
    from agentparty.runtime.documents import validate_paths

    reports = _with_provider_credentials(validate_paths(paths, kind.value, settings().model_registry()))
    all_valid = all(r.valid for r in reports)
    if as_json:
        payload = {
            "valid": all_valid,
            "files": [
                {"path": str(r.path), "kind": r.kind, "valid": r.valid, "errors": [e.as_dict() for e in r.errors]}
                for r in reports
            ],
        }
        typer.echo(json.dumps(payload, indent=2))
    else:
        for report in reports:
            if report.valid:
                typer.echo(f"{report.path}: valid {report.kind}")
            for error in report.errors:
                typer.echo(error.render(str(report.path)))
        invalid = sum(1 for r in reports if not r.valid)
        typer.echo(f"{len(reports) - invalid} valid, {invalid} invalid", err=True)
    raise typer.Exit(0 if all_valid else 1)


def _with_provider_credentials(reports: list[FileReport]) -> list[FileReport]:
    """The reports, with each valid SDK configuration's unresolvable provider credentials as errors; the
    configuration in use (``AGENTPARTY_SDK_CONFIG``) gets a report of its own when it has some and is not among
    the files: a run, ``agentparty api`` or a worker would refuse to start on it."""
    from agentparty.models.sdk_config import SDKConfiguration
    from agentparty.runtime.documents import FileReport, read_document, validate_document

    checked = [
        FileReport(r.path, r.kind, _credential_errors(validate_document(read_document(r.path), SDKConfiguration)))
        if r.kind == "sdk-config" and r.valid
        else r
        for r in reports
    ]
    in_use = settings().sdk_config
    if in_use is not None and all(r.path.resolve() != in_use.resolve() for r in reports):
        errors = _credential_errors(settings().load_sdk_configuration())
        if errors:
            checked.append(FileReport(in_use, "sdk-config", errors))
    return checked


def _credential_errors(config: SDKConfiguration) -> list[FieldError]:
    from agentparty.models.errors import FieldError
    from agentparty.runtime.provider_auth import ProviderCredentialsError, check_provider_credentials

    try:
        check_provider_credentials(config)
    except ProviderCredentialsError as exc:  # each problem reads "authentication.providers[i] (name): reason"
        where_and_why = [problem.partition(": ") for problem in exc.problems]
        return [FieldError(where, why, "provider_credentials") for where, _, why in where_and_why]
    return []


def schema(
    kind: Annotated[SchemaKind, typer.Argument(help="Which document's JSON Schema to print.")] = SchemaKind.WORKFLOW,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of a document kind (for editor completion and CI checks)."""
    from agentparty.models.document_kinds import json_schema_text

    text = json_schema_text(kind.value)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(schema)
