"""The ``agentparty`` command line.

Exit codes: 0 success, 1 invalid input or a failed run, 2 usage errors (click's convention).
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="agentparty",
    help="Agent Party: workflows for teams of AI agents, on Prefect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


from agentparty.cli.templates import app as templates_app  # noqa: E402

app.add_typer(templates_app, name="templates")

from agentparty.cli.gnn import app as gnn_app  # noqa: E402

app.add_typer(gnn_app, name="gnn")

from agentparty.cli.events import app as events_app  # noqa: E402
from agentparty.cli.events import init_topics, local_broker  # noqa: E402

app.add_typer(events_app, name="events")

from agentparty.cli.api import app as api_app  # noqa: E402

app.add_typer(api_app, name="api")

from agentparty.cli.deploy import register as register_deployment_commands  # noqa: E402

register_deployment_commands(app)


class Kind(StrEnum):
    AUTO = "auto"
    WORKFLOW = "workflow"
    SDK_CONFIG = "sdk-config"
    AGENT_TEMPLATE = "agent-template"


class SchemaKind(StrEnum):
    WORKFLOW = "workflow"
    SDK_CONFIG = "sdk-config"
    AGENT_TEMPLATE = "agent-template"


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True, help="Files to check.")],
    kind: Annotated[Kind, typer.Option(help="What the files are; 'auto' guesses from their keys.")] = Kind.AUTO,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Validate workflow definitions (and SDK configurations, agent templates).

    Every problem is printed on its own line as FILE:LINE: field.path: reason.
    """
    from agentparty.flows.definitions import validate_paths
    from agentparty.runtime.settings import get_settings

    reports = validate_paths(paths, kind.value, get_settings().model_registry())
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


@app.command()
def schema(
    kind: Annotated[SchemaKind, typer.Argument(help="Which document's JSON Schema to print.")] = SchemaKind.WORKFLOW,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of a document kind (for editor completion and CI checks)."""
    from agentparty.flows.schema import json_schema_text

    text = json_schema_text(kind.value)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


def _server():  # type: ignore[no-untyped-def]
    from agentparty.runtime.prefect_server import LocalPrefectServer
    from agentparty.runtime.settings import get_settings

    settings = get_settings()
    return LocalPrefectServer(settings.home, port=settings.prefect_port)


def _graph_server():  # type: ignore[no-untyped-def]
    from agentparty.runtime.graph_server import LocalBoltServer
    from agentparty.runtime.settings import get_settings

    settings = get_settings()
    return LocalBoltServer(settings.home, port=settings.graph_port, http_port=settings.graph_http_port)


@app.command()
def up() -> None:
    """Start the local services under AGENTPARTY_HOME: the Prefect server with its UI, the Bolt graph server, the Kafka broker."""
    from agentparty.runtime.settings import get_settings

    server = _server()
    started = server.start()
    typer.echo(f"Prefect server {'started' if started else 'already running'}: UI {server.ui_url}, API {server.api_url}")
    typer.echo(f"state: {server.home}  log: {server.log_file}")
    if get_settings().database is None:
        graph = _graph_server()
        started = graph.start()
        typer.echo(f"graph server {'started' if started else 'already running'}: {graph.uri}  log: {graph.log_file}")
        _migrate_graph(graph.database_config())
    else:
        typer.echo(f"graph: using {get_settings().database.uri} (AGENTPARTY_DATABASE)")  # type: ignore[union-attr]
    if get_settings().kafka is None:
        broker = local_broker()
        started = broker.start()
        typer.echo(f"Kafka broker {'started' if started else 'already running'}: {broker.bootstrap_servers}  log: {broker.log_file}")
    else:
        typer.echo(f"events: using {','.join(get_settings().kafka.bootstrap_servers)} (AGENTPARTY_KAFKA)")  # type: ignore[union-attr]
    created = init_topics()
    typer.echo(f"event topics: created {', '.join(created)}" if created else "event topics: up to date")


@app.command()
def down() -> None:
    """Stop the local services started by `agentparty up`."""
    typer.echo("Prefect server stopped" if _server().stop() else "Prefect server was not running")
    typer.echo("graph server stopped" if _graph_server().stop() else "graph server was not running")
    typer.echo("Kafka broker stopped" if local_broker().stop() else "Kafka broker was not running")


@app.command()
def status() -> None:
    """Show whether the local services are running."""
    from agentparty.runtime.settings import get_settings

    server = _server()
    healthy = server.healthy()
    typer.echo(f"Prefect server: {'running' if healthy else 'stopped'} ({server.api_url}, pid {server.pid() or '-'})")
    graph = _graph_server()
    graph_healthy = graph.healthy()
    typer.echo(f"graph server: {'running' if graph_healthy else 'stopped'} ({graph.uri}, pid {graph.pid() or '-'})")
    broker = local_broker()
    typer.echo(f"Kafka broker: {'running' if broker.accepting() else 'stopped'} ({broker.bootstrap_servers}, pid {broker.pid() or '-'})")
    from agentparty.runtime.outbox import Outbox

    pending = Outbox.at(get_settings().home).pending_count()
    typer.echo(f"event outbox: {pending} pending")
    raise typer.Exit(0 if healthy else 1)


graph_app = typer.Typer(help="The results graph (Neo4j 5 or the local Bolt server).", no_args_is_help=True)
app.add_typer(graph_app, name="graph")


def _database_config():  # type: ignore[no-untyped-def]
    from agentparty.runtime.settings import get_settings

    return get_settings().database or _graph_server().database_config()


def _migrate_graph(config) -> list[int]:  # type: ignore[no-untyped-def]
    from neo4j import GraphDatabase

    from agentparty.runtime.graph_schema import migrate
    from agentparty.runtime.graph_server import DATABASE_NAME

    with GraphDatabase.driver(config.uri, auth=(config.username, config.password.get_secret_value())) as driver:
        driver.verify_connectivity()  # fail at once, not after the managed transactions' retries
        applied = migrate(driver, DATABASE_NAME)
    typer.echo(f"graph schema: {'applied migrations ' + ', '.join(map(str, applied)) if applied else 'up to date'}")
    return applied


@graph_app.command("migrate")
def graph_migrate() -> None:
    """Apply the graph schema migrations (constraints and indexes); safe to run again."""
    from neo4j.exceptions import ServiceUnavailable

    config = _database_config()
    try:
        _migrate_graph(config)
    except ServiceUnavailable as exc:
        typer.echo(f"error: no graph server at {config.uri} ({exc}); start one with `agentparty up`", err=True)
        raise typer.Exit(1) from None


@graph_app.command("task")
def graph_task(task_id: Annotated[str, typer.Argument(help="The Task id `agentparty run` printed.")]) -> None:
    """Show a recorded run: the task with its status and token usage, and every output, as JSON."""
    from neo4j.exceptions import ServiceUnavailable

    from agentparty.runtime.graph_reads import GraphReader
    from agentparty.runtime.graph_server import DATABASE_NAME
    from agentparty.runtime.graph_store import GraphStore

    config = _database_config()
    try:
        with GraphStore(config, DATABASE_NAME) as store:
            view = GraphReader(store).task(task_id)
    except ServiceUnavailable as exc:
        typer.echo(f"error: no graph server at {config.uri} ({exc}); start one with `agentparty up`", err=True)
        raise typer.Exit(1) from None
    if view is None:
        typer.echo(f"error: no task {task_id} in the graph at {config.uri}", err=True)
        raise typer.Exit(1)
    typer.echo(view.model_dump_json(indent=2))


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


@app.command()
def run(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="Workflow definition file.")],
    inputs: Annotated[list[str] | None, typer.Option("--input", "-i", help="Run input as key=value (value parsed as JSON when it can be).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the WorkflowResult as JSON.")] = False,
    resume: Annotated[str | None, typer.Option(help="Resume a failed or crashed run: its flow run id (completed steps are not run again).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show Prefect's own log lines.")] = False,
    graph: Annotated[bool, typer.Option(help="Record the run in the results graph (the local graph server is started when needed).")] = True,
    events: Annotated[bool, typer.Option(help="Emit lifecycle events (the local Kafka broker is started when needed).")] = True,
) -> None:
    """Run a workflow on the local Prefect server (started when needed), record it in the graph, report every step."""
    import asyncio
    import os

    if not verbose:  # must be set before Prefect reads its settings
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

    from agentparty.flows.definitions import DocumentError, load_workflow
    from agentparty.runtime.settings import get_settings

    values = _parse_inputs(inputs or [])
    try:
        definition = load_workflow(path, get_settings().model_registry())
    except DocumentError as exc:
        for error in exc.errors:
            typer.echo(error.render(str(path)), err=True)
        raise typer.Exit(1) from None

    server = _server()
    if "PREFECT_API_URL" not in os.environ:
        if server.start():
            typer.echo(f"started the Prefect server at {server.ui_url}", err=True)
        os.environ.update(server.client_env())
    ui_url = os.environ["PREFECT_API_URL"].removesuffix("/api")
    settings = get_settings()
    record = graph and settings.graph != "off"
    if record and settings.database is None:
        graph_server = _graph_server()
        if graph_server.start():
            typer.echo(f"started the graph server at {graph_server.uri}", err=True)
    emit = events and settings.events != "off"
    if emit and settings.kafka is None:
        broker = local_broker()
        if broker.start():
            typer.echo(f"started the Kafka broker at {broker.bootstrap_servers}", err=True)

    from agentparty.flows import CompileOptions, StepResult, WorkflowFailed, compile_workflow
    from agentparty.tasks.errors import RunInputError

    def progress(step: StepResult) -> None:
        if as_json:
            return
        mark = {"completed": "✓", "skipped": "-", "failed": "✗"}[step.status.value]
        detail = f"{step.attempts} attempt{'s' if step.attempts != 1 else ''}, {step.duration_s:.2f}s, {step.tokens} tokens"
        if step.model:
            detail += f", {step.model}{' (simulated)' if step.simulated else ''}"
        note = f" [{step.reason}]" if step.reason else ""
        typer.echo(f"  {mark} {step.step_id}: {step.status.value} ({detail}){' cached' if step.cached else ''}{note}")

    flow = compile_workflow(
        definition, source=path,
        options=CompileOptions(
            on_step_finished=progress, max_concurrency=settings.max_concurrency, record_graph=record, emit_events=emit
        ),
    )
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
        cost = f", {result.cost:.4f} USD" if result.cost else ""
        typer.echo(f"{result.status.value} in {result.duration_s:.2f}s, {result.tokens} tokens{cost}" + (f": {result.reason}" if result.reason else ""))
        if result.run_id:
            typer.echo(f"UI: {ui_url}/runs/flow-run/{result.run_id}")
        if record and (resume or result.run_id):
            from agentparty.models.graph import stable_id

            typer.echo(f"graph: Task {stable_id('task', resume or result.run_id or '')} ({settings.database.uri if settings.database else _graph_server().uri})")
        if emit:
            typer.echo(
                "events: all delivered" if not result.events_pending
                else f"events: {result.events_pending} not delivered yet (kept in the outbox; `agentparty events relay` sends them)"
            )
    raise typer.Exit(1 if failed else 0)


def main() -> None:  # pragma: no cover - console script shim
    app()
