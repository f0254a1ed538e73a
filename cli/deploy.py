"""``agentparty deploy`` / ``worker`` / ``bridge`` / ``serve``: workflows as Prefect deployments, and who runs them."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from agentparty.cli._bootstrap import check_providers, fail, kafka, settings, use_prefect

PathsArgument = Annotated[
    list[Path], typer.Argument(exists=True, readable=True, help="Workflow definition files, or folders of them.")
]
PoolOption = Annotated[
    str | None, typer.Option("--pool", help="Process work pool (AGENTPARTY_WORK_POOL, default agentparty).")
]


def _pool(pool: str | None) -> str:
    return pool or settings().work_pool


def _deploy(paths: list[Path], pool: str, training: bool) -> list[Path]:
    from agentparty.deployments.build import deploy_training, deploy_workflows, load_sources
    from agentparty.runtime.documents import DocumentError

    try:
        sources = load_sources(paths)
    except DocumentError as exc:
        for error in exc.errors:
            typer.echo(error.render(str(exc.path)), err=True)
        raise fail("invalid workflow definitions; nothing deployed") from None
    if not sources:
        raise fail(f"no workflow definitions in {', '.join(map(str, paths))}")
    deployed = deploy_workflows(sources, work_pool=pool)
    if training:
        deployed.append(deploy_training(pool))
    from agentparty.cli.api import cli_actor

    audit = settings().audit_log()
    for item in deployed:
        triggers = [*item.schedules, *(f"on {e}" for e in item.event_triggers), *(["webhook"] if item.webhook else [])]
        typer.echo(f"{item.name}  ({item.deployment_id}) pool {pool}: {', '.join(triggers) or 'manual only'}")
        audit.append(cli_actor(), "deployment.create", item.name, deployment_id=str(item.deployment_id), pool=pool)
    return sorted({source.parent.resolve() for _, source in sources})


def deploy(
    paths: PathsArgument,
    pool: PoolOption = None,
    training: Annotated[
        bool, typer.Option("--training/--no-training", help="Also deploy the nightly GNN training flow.")
    ] = True,
    prefect_yaml: Annotated[
        Path | None,
        typer.Option("--prefect-yaml", help="Write these deployments as a prefect.yaml for `prefect deploy` instead."),
    ] = None,
) -> None:
    """Create or update one Prefect deployment per workflow definition (schedules and event triggers included)."""
    if prefect_yaml is not None:
        _write_prefect_yaml(paths, _pool(pool), prefect_yaml)
        return
    api = use_prefect(quiet=False, patient=True)
    _deploy(paths, _pool(pool), training)
    typer.echo(f"deployed to {api}; `agentparty worker` runs them", err=True)


def _write_prefect_yaml(paths: list[Path], pool: str, target: Path) -> None:
    from agentparty.deployments.build import load_sources
    from agentparty.deployments.prefect_yaml import render
    from agentparty.runtime.documents import DocumentError

    try:
        sources = load_sources(paths)
    except DocumentError as exc:
        for error in exc.errors:
            typer.echo(error.render(str(exc.path)), err=True)
        raise fail("invalid workflow definitions; nothing written") from None
    target.write_text(render(sources, target.resolve().parent, pool, [str(p) for p in paths]), encoding="utf-8")
    typer.echo(f"wrote {target}: {len(sources)} deployment(s) for `prefect deploy --all`", err=True)


def _workflow_dirs_env(dirs: list[Path]) -> None:
    """Put ``dirs`` first on the search path of this process and of the flow-run processes its worker starts
    (they inherit the environment), and let settings read it again."""
    from agentparty.flows.deployed import WORKFLOWS_ENV
    from agentparty.runtime.settings import get_settings

    current = settings().workflows
    os.environ[WORKFLOWS_ENV] = os.pathsep.join(dict.fromkeys([*map(str, dirs), *map(str, current)]))
    get_settings.cache_clear()


MetricsAddressOption = Annotated[
    str | None,
    typer.Option(
        "--metrics-address",
        help="host:port where this worker serves /metrics of its flow runs without a key (AGENTPARTY_METRICS_ADDRESS).",
    ),
]


def _worker_metrics(address: str | None) -> list[Any]:
    """The worker's metrics listener (when an address is given) and OTLP pusher (when ``exportFormats`` lists
    ``otlp``): its flow-run processes write their metrics to a directory of its own (``PROMETHEUS_MULTIPROC_DIR``,
    inherited), which both read merged (``runtime/telemetry_multiproc.py``)."""
    address = address or settings().metrics_address
    config = settings().load_sdk_configuration().monitoring.metrics
    if address is None and "otlp" not in config.export_formats:
        return []
    from agentparty.runtime.telemetry_export import HOURS, MetricsExporter, start_listener
    from agentparty.runtime.telemetry_multiproc import use_directory, worker_directory

    home = settings().home
    directory = None
    if config.enabled:
        directory = worker_directory(home, config.retention_period * HOURS)
        use_directory(directory)
    exporter = MetricsExporter.build(config, home, multiproc_dir=directory, state=settings().state_backend())
    running: list[Any] = [pusher] if (pusher := exporter.start_otlp("agentparty-worker")) else []
    if address is not None:
        try:
            running.append(listener := start_listener(exporter, address))
        except (OSError, ValueError) as exc:
            raise fail(f"metrics listener at {address}: {exc}") from None
        typer.echo(f"metrics of this worker's flow runs at {listener.url}/metrics", err=True)
    return running


def _run_worker(pool: str, limit: int | None, name: str | None, metrics_address: str | None = None) -> None:
    import asyncio

    from prefect.workers.process import ProcessWorker

    from agentparty.deployments.build import ensure_work_pool

    ensure_work_pool(pool)
    exports = _worker_metrics(metrics_address)

    async def main() -> None:
        async with ProcessWorker(work_pool_name=pool, limit=limit, name=name) as worker:
            await worker.start(printer=lambda *args, **_: typer.echo(" ".join(map(str, args)), err=True))

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        typer.echo("worker stopped", err=True)
    finally:
        for running in exports:
            running.close()


def worker(
    pool: PoolOption = None,
    limit: Annotated[int | None, typer.Option(help="Most flow runs this worker runs at once.")] = None,
    name: Annotated[str | None, typer.Option(help="Worker name shown in the UI (default: generated).")] = None,
    metrics_address: MetricsAddressOption = None,
) -> None:
    """Run a Prefect process worker on the work pool: it starts the deployed workflows' runs (run several to scale out)."""
    check_providers()
    use_prefect(quiet=False, patient=True)
    _run_worker(_pool(pool), limit, name, metrics_address)


def _start_bridge(paths: list[Path]) -> tuple[threading.Event, threading.Thread] | None:
    from agentparty.deployments.build import load_sources
    from agentparty.deployments.kafka_bridge import KafkaEventBridge, routes_for

    routes = routes_for(definition for definition, _ in load_sources(paths))
    if not routes:
        return None
    bridge = KafkaEventBridge(routes, kafka())
    stop = threading.Event()

    def run() -> None:
        try:
            bridge.run(stop)
        finally:
            bridge.close()

    thread = threading.Thread(target=run, name="kafka-bridge", daemon=True)
    thread.start()
    typer.echo(
        f"bridging Kafka topics {', '.join(bridge.topics)} to Prefect events for {len(routes)} trigger(s)", err=True
    )
    return stop, thread


def bridge(paths: PathsArgument) -> None:
    """Turn Kafka messages into Prefect events for the definitions' Kafka-bridged event triggers (Ctrl-C stops)."""
    use_prefect(quiet=False, patient=True)
    started = _start_bridge(paths)
    if started is None:
        raise fail("none of these definitions has an event trigger with a 'kafka' section")
    stop, thread = started
    try:
        while thread.is_alive():
            thread.join(1.0)
    except KeyboardInterrupt:
        stop.set()
        thread.join(10)


def serve(
    paths: PathsArgument,
    pool: PoolOption = None,
    limit: Annotated[int | None, typer.Option(help="Most flow runs this worker runs at once.")] = None,
    training: Annotated[
        bool, typer.Option("--training/--no-training", help="Also deploy the nightly GNN training flow.")
    ] = True,
) -> None:
    """Deploy the definitions, then run a worker for them (and the Kafka bridge when a trigger needs it) until Ctrl-C."""
    check_providers()
    use_prefect(quiet=False, patient=True)
    pool = _pool(pool)
    dirs = _deploy(paths, pool, training)
    _workflow_dirs_env(dirs)
    started = _start_bridge(paths)
    try:
        _run_worker(pool, limit, None)
    finally:
        if started is not None:
            started[0].set()
            started[1].join(10)


def register(app: typer.Typer) -> None:
    for command in (deploy, worker, bridge, serve):
        app.command()(command)
