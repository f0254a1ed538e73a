"""``agentparty run``: one workflow run on the local Prefect server, reported step by step."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agentparty.cli._bootstrap import check_providers, local, settings, use_prefect

if TYPE_CHECKING:
    from agentparty.cli.run_stream import ConsoleStream
    from agentparty.models.run_results import StepResult, WorkflowResult
    from agentparty.models.tools import ToolCallRecord, TurnRecord

CLIP = 120
"""Characters of a tool call's arguments and result that ``-v`` shows."""


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
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Also stream each agent's text, turns and tool calls as they happen, show Prefect's own log lines, "
            "and each tool call's arguments and the start of its result.",
        ),
    ] = False,
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
    check_providers()
    ui_url = use_prefect(quiet=not verbose).removesuffix("/api")
    record, emit = _start_servers(graph, events)

    from agentparty.cli.run_stream import ConsoleStream  # deferred with the engine: it imports the agent loop
    from agentparty.flows import CompileOptions, WorkflowFailed, compile_workflow
    from agentparty.flows.services import run_services
    from agentparty.models.step_errors import RunInputError

    console = ConsoleStream() if verbose and not as_json else None
    services = run_services(
        settings(),
        **({} if record else {"recorder": None}),
        **({} if emit else {"events": None}),
        observers=(console,) if console is not None else (),
    )
    options = CompileOptions(
        services=services,
        max_concurrency=settings().max_concurrency,
        on_step_finished=None if as_json else partial(_progress, verbose=verbose, console=console),
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
    finally:
        if console is not None:
            console.close()
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


def _progress(step: StepResult, verbose: bool = False, console: ConsoleStream | None = None) -> None:
    if console is not None:
        console.end_line()
    for line in step_lines(step, verbose):
        typer.echo(line)


def step_lines(step: StepResult, verbose: bool = False) -> list[str]:
    """A finished step as the CLI reports it: its line, then its model turns and tool calls (a fan-out step's
    under each item's label); ``verbose`` adds each call's arguments and the start of its result."""
    mark = {"completed": "✓", "skipped": "-", "failed": "✗"}[step.status.value]
    detail = f"{step.attempts} attempt{'s' if step.attempts != 1 else ''}, {step.duration_s:.2f}s, {step.tokens} tokens"
    if step.model:
        # The simulated models are named so already; a real model's answer is never labelled simulated.
        labelled = step.simulated and "simulated" not in step.model
        detail += f", {step.model}{' (simulated)' if labelled else ''}"
    note = f" [{step.reason}]" if step.reason else ""
    lines = [f"  {mark} {step.step_id}: {step.status.value} ({detail}){' cached' if step.cached else ''}{note}"]
    lines += _turn_lines(step.turns, "      ", verbose)
    for item in step.items or []:
        if item.turns:
            lines.append(f"      {item.step_id}")
            lines += _turn_lines(item.turns, "        ", verbose)
    return lines


def _turn_lines(turns: list[TurnRecord], indent: str, verbose: bool) -> list[str]:
    lines: list[str] = []
    for turn in turns:
        tokens = f"{turn.input_tokens}+{turn.output_tokens} tokens"
        lines.append(f"{indent}turn {turn.turn} · model {turn.model} · {tokens}{' (cached)' if turn.cached else ''}")
        for call in turn.tool_calls:
            lines.append(f"{indent}  → {_call_summary(call)}")
            if verbose:
                lines.append(f"{indent}      arguments: {_clip(call.arguments)}")
                lines.append(f"{indent}      result: {_clip(call.result)}{' (truncated)' if call.truncated else ''}")
    return lines


def _call_summary(call: ToolCallRecord) -> str:
    """``search_docs ok 3 ms``: the tool (and its MCP server), how it ended, how long it took or that it was reused."""
    name = f"{call.name} [mcp {call.server}]" if call.source == "mcp" and call.server else call.name
    outcome = "refused" if call.refused else "ok" if call.ok else "error"
    if call.cached:
        return f"{name} {outcome} (cached)"
    return f"{name} {outcome}" if call.refused else f"{name} {outcome} {call.duration_ms:.0f} ms"


def _clip(text: str, limit: int = CLIP) -> str:
    """One line of at most ``limit`` characters (arguments and results may span many)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


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
