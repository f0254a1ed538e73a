"""``agentparty run``: one workflow run on the local Prefect server, reported step by step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agentparty.cli._bootstrap import local, settings, use_prefect

if TYPE_CHECKING:
    from agentparty.models.run_results import StepResult, WorkflowResult


def _parse_inputs(pairs: list[str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{pair!r} is not key=value", param_hint="--input")
        try:
            values[name] = json.loads(raw)  # numbers, booleans, lists and objects keep their type
        except json.JSONDecodeError:
            values[name] = raw
    return values


def run(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="Workflow definition file.")],
    inputs: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="Run input as key=value (value parsed as JSON when it can be)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the WorkflowResult as JSON.")] = False,
    resume: Annotated[
        str | None,
        typer.Option(help="Resume a failed or crashed run: its flow run id (completed steps are not run again)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show Prefect's own log lines.")] = False,
    graph: Annotated[
        bool, typer.Option(help="Record the run in the results graph (the local graph server is started when needed).")
    ] = True,
    events: Annotated[
        bool, typer.Option(help="Emit lifecycle events (the local Kafka broker is started when needed).")
    ] = True,
) -> None:
    """Run a workflow on the local Prefect server (started when needed), record it in the graph, report every step."""
    import asyncio

    from agentparty.runtime.documents import DocumentError, load_workflow

    values = _parse_inputs(inputs or [])
    try:
        definition = load_workflow(path, settings().model_registry())
    except DocumentError as exc:
        for error in exc.errors:
            typer.echo(error.render(str(path)), err=True)
        raise typer.Exit(1) from None
    ui_url = use_prefect(quiet=not verbose).removesuffix("/api")
    record, emit = _start_servers(graph, events)

    from agentparty.flows import CompileOptions, WorkflowFailed, compile_workflow
    from agentparty.flows.services import run_services
    from agentparty.models.step_errors import RunInputError

    services = run_services(settings(), **({} if record else {"recorder": None}), **({} if emit else {"events": None}))
    options = CompileOptions(
        services=services, max_concurrency=settings().max_concurrency, on_step_finished=None if as_json else _progress
    )
    flow = compile_workflow(definition, source=path, options=options)
    if not as_json:
        typer.echo(f"running {definition.id} ({flow.name})")
    try:
        result = asyncio.run(flow(inputs=values, resume_key=resume))
        failed = False
    except WorkflowFailed as exc:
        result, failed = exc.result, True
    except RunInputError as exc:
        for problem in exc.problems:
            typer.echo(f"{path}: {problem}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    else:
        _report(result, ui_url, resume, record, emit)
    raise typer.Exit(1 if failed else 0)


def _start_servers(graph: bool, events: bool) -> tuple[bool, bool]:
    """Start the local graph server and broker the run needs; whether it records and emits."""
    config, servers = settings(), local()
    record = graph and config.graph != "off"
    if record and config.database is None and servers.graph.start():
        typer.echo(f"started the graph server at {servers.graph.uri}", err=True)
    emit = events and config.events != "off"
    if emit and config.kafka is None and servers.broker.start():
        typer.echo(f"started the Kafka broker at {servers.broker.bootstrap_servers}", err=True)
    return record, emit


def _progress(step: StepResult) -> None:
    mark = {"completed": "✓", "skipped": "-", "failed": "✗"}[step.status.value]
    detail = f"{step.attempts} attempt{'s' if step.attempts != 1 else ''}, {step.duration_s:.2f}s, {step.tokens} tokens"
    if step.model:
        detail += f", {step.model}{' (simulated)' if step.simulated else ''}"
    note = f" [{step.reason}]" if step.reason else ""
    typer.echo(f"  {mark} {step.step_id}: {step.status.value} ({detail}){' cached' if step.cached else ''}{note}")


def _report(result: WorkflowResult, ui_url: str, resume: str | None, record: bool, emit: bool) -> None:
    cost = f", {result.cost:.4f} USD" if result.cost else ""
    typer.echo(
        f"{result.status.value} in {result.duration_s:.2f}s, {result.tokens} tokens{cost}"
        + (f": {result.reason}" if result.reason else "")
    )
    if result.run_id:
        typer.echo(f"UI: {ui_url}/runs/flow-run/{result.run_id}")
    if record and (resume or result.run_id):
        from agentparty.models.graph import stable_id

        database = settings().database
        where = database.uri if database is not None else local().graph.uri
        typer.echo(f"graph: Task {stable_id('task', resume or result.run_id or '')} ({where})")
    if emit:
        typer.echo(
            "events: all delivered"
            if not result.events_pending
            else f"events: {result.events_pending} not delivered yet (kept in the outbox; `agentparty events relay` sends them)"
        )


def register(app: typer.Typer) -> None:
    app.command()(run)
