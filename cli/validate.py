"""``agentparty validate`` and ``agentparty schema``: check documents, print their JSON Schemas."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from agentparty.cli._bootstrap import settings


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

    Every problem is printed on its own line as FILE:LINE: field.path: reason.
    """
    from agentparty.runtime.documents import validate_paths

    reports = validate_paths(paths, kind.value, settings().model_registry())
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
