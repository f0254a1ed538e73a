"""``agentparty gnn``: synthetic history, training, evaluation, recommendations and the training schedule."""

from __future__ import annotations

import contextlib
import json
from typing import Annotated, Any

import typer

from agentparty.cli._bootstrap import graph_store, settings, use_prefect

app = typer.Typer(help="The GNN team recommender (GraphSAGE on the results graph).", no_args_is_help=True)


def _synthetic_config(agents: int, capabilities: int, tasks: int, teams: int, seed: int) -> Any:
    from agentparty.models.config import SyntheticDataConfig

    return SyntheticDataConfig(
        num_agents=agents, num_capabilities=capabilities, num_tasks=tasks, num_teams=teams, random_seed=seed
    )


Agents = Annotated[int, typer.Option(help="SyntheticDataConfig.num_agents")]
Capabilities = Annotated[int, typer.Option(help="SyntheticDataConfig.num_capabilities")]
Tasks = Annotated[int, typer.Option(help="SyntheticDataConfig.num_tasks")]
Teams = Annotated[int, typer.Option(help="SyntheticDataConfig.num_teams")]
Seed = Annotated[int, typer.Option(help="SyntheticDataConfig.random_seed")]


@app.command()
def synth(
    agents: Agents = 50, capabilities: Capabilities = 20, tasks: Tasks = 100, teams: Teams = 30, seed: Seed = 42
) -> None:
    """Write a synthetic team history (seed 000 SyntheticDataConfig) into the graph; the same seed writes the same graph."""
    from agentparty.gnn.data import GraphSnapshot
    from agentparty.gnn.pipeline import synthesise

    config = _synthetic_config(agents, capabilities, tasks, teams, seed)
    history = synthesise(graph_store(), config)
    snapshot = GraphSnapshot.from_batch(history.batch)
    typer.echo(
        f"synthetic history (seed {seed}): {len(snapshot.agents)} agents, {len(snapshot.capabilities)} capabilities, "
        f"{len(snapshot.tasks)} tasks, {len(history.teams)} teams, {len(snapshot.worked_with)} WORKED_WITH pairs; "
        f"data {snapshot.digest()[:16]}"
    )


@app.command()
def train(
    epochs: Annotated[
        int | None, typer.Option(help="GNNTrainingConfig.num_epochs (AGENTPARTY_GNN_TRAINING otherwise).")
    ] = None,
    truth_seed: Annotated[
        int | None,
        typer.Option(help="The graph came from `gnn synth --seed N` with default sizes: add ground-truth columns."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the flow's result as JSON.")] = False,
) -> None:
    """Run the train_gnn flow now (extract → train → evaluate → promote) on the local Prefect server."""
    use_prefect()
    graph_store()
    from agentparty.flows.train_gnn import train_gnn
    from agentparty.gnn.evaluate import MethodMetrics, table
    from agentparty.models.config import SyntheticDataConfig

    training = settings().gnn_training
    if epochs is not None:
        training = training.model_copy(update={"num_epochs": epochs})
    truth = SyntheticDataConfig(random_seed=truth_seed) if truth_seed is not None else None
    try:
        result = train_gnn(training=training, truth_from=truth)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    rows = [MethodMetrics.from_dict(m) for m in result["metrics"]]
    typer.echo(table(rows))
    promotion = result["promotion"]
    typer.echo(
        f"\nmodel {result['model_id']}: {'champion' if promotion['promoted'] else 'not promoted'} ({promotion['reason']})"
    )
    typer.echo(f"served: {promotion.get('served') or 'unchanged'}")
    typer.echo(
        f"{result['epochs']} epochs, {result['seconds_per_epoch'] * 1000:.1f} ms per epoch; data {result['snapshot'][:16]}"
    )


@app.command()
def evaluate(
    truth_seed: Annotated[
        int | None,
        typer.Option(help="The graph came from `gnn synth --seed N` with default sizes: add ground-truth columns."),
    ] = None,
) -> None:
    """Print the evaluation table: the champion and every baseline on the current validation window, and what is served."""
    from agentparty.gnn.baselines import fitted_baselines
    from agentparty.gnn.embeddings import default_embedder
    from agentparty.gnn.evaluate import table
    from agentparty.gnn.pipeline import evaluate_on_window, extract, rescore, synthetic_truth
    from agentparty.gnn.registry import ModelRegistry
    from agentparty.gnn.train import prepare
    from agentparty.models.config import SyntheticDataConfig

    config = settings()
    snapshot = extract(graph_store())
    if not snapshot.teams:
        typer.echo(
            "error: the graph holds no finished teams to evaluate on (`agentparty gnn synth` writes a history)",
            err=True,
        )
        raise typer.Exit(1)
    embedder = default_embedder(config.home)
    truth = synthetic_truth(SyntheticDataConfig(random_seed=truth_seed), snapshot) if truth_seed is not None else None
    registry = ModelRegistry(config.home, config.gnn_training)
    champion = registry.champion()
    rows = []
    if champion is not None:
        row = rescore(registry, champion, snapshot, champion.training_config(), embedder, truth)
        row.method = f"{row.method} ({champion.id})"
        rows.append(row)
    data = prepare(snapshot, champion.training_config() if champion else config.gnn_training, embedder)
    rows += [evaluate_on_window(method, data, truth) for method in fitted_baselines(data)]
    typer.echo(table(rows))
    typer.echo("\n(selection and val nDCG@k here: the current validation window only; promotion pools time folds)")
    served = registry.served()
    if served is not None:
        pooled = ", ".join(f"{k.removeprefix('selection_')} {v}" for k, v in served.selection.items())
        typer.echo(f"served: {served.method} ({served.kind}); pooled at promotion: {pooled}")
        if served.components:
            typer.echo(f"  ensemble of {', '.join(served.components)} with weights {served.weights}")
        typer.echo(f"  decided {served.decided_at:%Y-%m-%d %H:%M} UTC: {served.reason}")
    elif champion is None:
        typer.echo("\nno champion model yet: `agentparty gnn train` trains one")


@app.command()
def recommend(
    capability: Annotated[list[str], typer.Option("--capability", "-c", help="A required capability (repeat).")],
    size: Annotated[
        int | None, typer.Option(help="Most agents in the team (default: capabilities + 1, 2 to 5).")
    ] = None,
    budget: Annotated[int, typer.Option(help="Token budget (0: none).")] = 0,
    title: Annotated[str, typer.Option(help="Task title (its text embedding is a feature).")] = "ad-hoc task",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recommend a team for a task needing the given capabilities, with the reasons."""
    from agentparty.gnn.pipeline import recommend_team
    from agentparty.models.graph import Task, stable_id

    graph_store()  # started and migrated when it is the local one
    task = Task(
        id=stable_id("cli-task", title, *sorted(capability)),
        title=title,
        required_capabilities=sorted(set(capability)),
        token_budget=budget,
    )
    result = recommend_team(task, size=size, token_budget=budget)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    typer.echo(
        f"{result.note}\nmethod: {result.method}; coverage {result.coverage:.0%}; ~{result.estimated_tokens:,} tokens"
    )
    for member in result.members:
        typer.echo(f"  {member.handle or member.name}  ({member.agent_id})\n      {member.explanation}")
    if result.uncovered:
        typer.echo(f"uncovered: {', '.join(result.uncovered)}")


@app.command()
def schedule(
    cron: Annotated[
        str | None, typer.Option(help="Cron expression (AGENTPARTY_GNN_SCHEDULE, default nightly 02:00).")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(help="Timezone of the cron (AGENTPARTY_GNN_TIMEZONE, default UTC).")
    ] = None,
    work_pool: Annotated[
        str, typer.Option(help="Process work pool the runs go to (created when missing).")
    ] = "agentparty",
) -> None:
    """Create or update the cron-scheduled train-gnn deployment on the Prefect server."""
    use_prefect()
    import asyncio

    from agentparty.flows.train_gnn import FLOW_NAME, training_deployment

    asyncio.run(ensure_process_pool(work_pool))
    deployment = training_deployment(cron, timezone)
    deployment_id = deployment.apply(work_pool_name=work_pool)
    schedule_text = deployment.schedules[0].schedule
    typer.echo(
        f"deployment {FLOW_NAME}/{deployment.name} ({deployment_id}) on pool {work_pool!r}: "
        f"{schedule_text.cron} {schedule_text.timezone}"
    )


async def ensure_process_pool(name: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    async with get_client() as client:
        with contextlib.suppress(ObjectAlreadyExists):
            await client.create_work_pool(WorkPoolCreate(name=name, type="process"))
