"""Training on real history: keyless runs of the examples with varied inputs, then the training flow on what they wrote.

    python bench/real_history.py [--runs 300] [--quick] [--concurrency 3] [--failure-rate 0.3] [--seed 7] [--json]

In a fresh ``AGENTPARTY_HOME`` (a temporary directory) with its own local
Prefect server and Bolt graph server (ArcadeDB) on free ports, it runs ``--runs``
keyless runs (the ``simulated`` provider, no key) of ``examples/research-report.yaml``,
``examples/nightly-digest.yaml`` and ``examples/webhook-triage.yaml`` (which runs
``enrich-ticket.yaml`` as its subgraph), a few at once through the Python API,
each with inputs drawn from ``--seed``: topics, 1–4 subtopics and a source
threshold (which branch the coverage decision takes, so whether the writer joins
the team), a channel and 1–12 items (how many summariser slots), a ticket's text
and customer tier (which branch triage takes). The engine records every run in
the graph as it does for any run. Then the ``train_gnn`` flow (extract → train →
evaluate → promote, the scheduled training) trains on that graph alone, and the
table shows its figures beside those of the synthetic seed history
(``generate(SyntheticDataConfig())`` → ``GraphSnapshot.from_batch`` →
``train_candidate`` with its hidden truth), trained in the same process.

**Where outcomes come from.** The simulated provider answers every call, so with
no faults every run succeeds and there is nothing to learn. Here its existing
fault knob ``AGENTPARTY_SIMULATED__FAILURE_RATE`` (``--failure-rate``) makes that
share of calls fail with a 503; the n-th call of a given request fails or not
the same way on every run, so which slots fail is a function of the run's
inputs (its prompts) and the simulator's seed. The engine's own retry policies
then retry them, and what still fails is recorded as it would be for a real
provider: failed slots, failed tasks and teams, a performance score below 1,
lower proficiency and reliability. A research report whose step still fails
pauses for an operator (``fallbackAction: human_intervention``); the benchmark's
operator answers ``abort`` through the same Prefect calls as the API's
approvals, so the run fails instead of waiting 30 minutes. Each run gets its own
store for the workflows' circuit breakers (a SQLite file per run): the simulated
faults are independent draws, not an outage, and a breaker shared across runs
would turn three unlucky draws into five minutes of failed runs for every later
run of that agent. The model router's own breaker (per model, 30 s) stays the
home's, as in production.

**The limit.** These outcomes are a function of the inputs and the simulator,
not of how good an agent is: every agent answers with the same simulator and
the same fault rate. Whatever the model learns from them (mostly which agents
serve which kind of task, and which tasks make more calls and so fail more) says
nothing about who staffs a real task well. The benchmark shows that the path
works on a graph only real runs wrote and what its figures look like, not that
the recommender is any good on real work; for that the graph needs runs on real
providers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
QUICK_RUNS = 24
TOPICS = [
    "Graph neural networks for team formation",
    "Link prediction in collaboration networks",
    "Evaluating recommender systems offline",
    "Human-AI teaming in software projects",
    "Cold-start problems in staffing",
    "Knowledge graphs for expertise finding",
    "Temporal splits for graph learning",
    "Team diversity and task outcomes",
]
SUBTOPICS = [
    "history",
    "current methods",
    "open problems",
    "benchmarks",
    "failure modes",
    "datasets",
    "industrial use",
    "evaluation metrics",
]
CHANNELS = ["engineering", "support", "research", "product", "ops"]
TICKETS = [
    ("Cannot log in", "Since this morning the login page says my password is wrong."),
    ("Invoice is wrong", "We were charged twice for November; please refund one charge."),
    ("Feature request: dark mode", "It would be great to have a dark theme in the dashboard."),
    ("Data export fails", "Exporting the project to CSV stops at 40% with an error."),
    ("Outage in EU region", "All our API calls from Frankfurt time out since 10:02 UTC."),
    ("How do I add a user?", "I am the admin and cannot find where to invite a colleague."),
    ("Slow search", "Searching tickets takes more than ten seconds."),
    ("Security question", "Do you encrypt backups at rest, and with which keys?"),
]
TIERS = ["free", "pro", "enterprise"]


@dataclass(frozen=True)
class PlannedRun:
    index: int
    workflow: str
    """The example's file name under ``examples/``."""
    inputs: dict[str, Any]


def plan_runs(n: int, seed: int) -> list[PlannedRun]:
    """``n`` runs of the examples with inputs drawn from ``seed`` (research 40%, digest 30%, triage 30%)."""
    rng = random.Random(seed)
    runs: list[PlannedRun] = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.4:
            inputs: dict[str, Any] = {
                "topic": rng.choice(TOPICS),
                "subtopics": rng.sample(SUBTOPICS, rng.randint(1, 4)),
                "min_sources": rng.randint(1, 8),
            }
            runs.append(PlannedRun(i, "research-report.yaml", inputs))
        elif roll < 0.7:
            inputs = {"channel": rng.choice(CHANNELS), "max_items": rng.randint(1, 12)}
            runs.append(PlannedRun(i, "nightly-digest.yaml", inputs))
        else:
            subject, body = rng.choice(TICKETS)
            inputs = {
                "ticket_id": f"T-{seed}-{i}",
                "subject": subject,
                "body": body,
                "customer_tier": rng.choice(TIERS),
            }
            runs.append(PlannedRun(i, "webhook-triage.yaml", inputs))
    return runs


@contextlib.contextmanager
def fresh_home(failure_rate: float, simulator_seed: int) -> Iterator[Path]:
    """A temporary AGENTPARTY_HOME with its own Prefect and graph servers on free ports (set in this process's
    environment before Prefect is imported, so it and the engine find them); events off (no broker needed)."""
    from agentparty.runtime.local_service import free_port  # deferred: the environment is set first

    with tempfile.TemporaryDirectory(prefix="agentparty-real-history-") as home:
        os.environ.update(
            {
                "AGENTPARTY_HOME": home,
                "AGENTPARTY_PREFECT_PORT": str(free_port()),
                "AGENTPARTY_GRAPH_PORT": str(free_port()),
                "AGENTPARTY_GRAPH_HTTP_PORT": str(free_port()),
                "AGENTPARTY_GRAPH": "on",
                "AGENTPARTY_EVENTS": "off",
                "AGENTPARTY_SIMULATED__FAILURE_RATE": str(failure_rate),
                "AGENTPARTY_SIMULATED__SEED": str(simulator_seed),
            }
        )
        os.environ.pop("PREFECT_API_URL", None)
        os.environ.pop("AGENTPARTY_DATABASE__URI", None)
        from agentparty.runtime.local_services import local_services, use_prefect_api  # deferred: env set above
        from agentparty.runtime.settings import get_settings  # deferred: env set above

        settings = get_settings()
        servers = local_services(settings)
        try:
            use_prefect_api(settings)
            servers.graph.start()
            yield Path(home)
        finally:
            _drain_prefect()
            servers.graph.stop()
            servers.prefect.stop()


def _drain_prefect() -> None:
    """Send buffered logs and events before the server goes away (else Prefect prints errors at exit)."""
    with contextlib.suppress(Exception):
        from prefect.events.worker import EventsWorker  # deferred: Prefect reads its settings at import
        from prefect.logging.handlers import APILogWorker  # deferred: Prefect reads its settings at import

        APILogWorker.drain_all(timeout=10)
        EventsWorker.drain_all(timeout=10)


async def run_one(planned: PlannedRun, home: Path) -> str:
    """One run through the Python API, as ``agentparty run`` makes it; its final status."""
    from agentparty.flows import CompileOptions, WorkflowFailed, compile_workflow  # deferred: Prefect at import
    from agentparty.flows.services import run_services  # deferred: Prefect at import
    from agentparty.runtime.breakers import SqliteBreakerStore  # deferred: Prefect at import
    from agentparty.runtime.documents import load_workflow  # deferred: Prefect at import
    from agentparty.runtime.settings import get_settings  # deferred: Prefect at import

    settings = get_settings()
    path = EXAMPLES / planned.workflow
    definition = load_workflow(path, settings.model_registry())
    breakers = SqliteBreakerStore(home / "bench-breakers" / f"run-{planned.index}.sqlite")
    options = CompileOptions(services=run_services(settings, breakers=breakers), max_concurrency=4)
    flow = compile_workflow(definition, source=path, options=options)
    try:
        result = await flow(inputs=planned.inputs)
    except WorkflowFailed as exc:
        result = exc.result
    return str(result.status.value)


async def operator(stop: asyncio.Event, answered: Counter[str]) -> None:
    """The on-call operator of ``fallbackAction: human_intervention`` (research-report): every run paused on a
    failed step is answered ``abort``, through the same Prefect calls as the API's approvals, so the run fails
    as it would if the operator gave up on it (nobody answering would hold it for ``humanInterventionTimeout``)."""
    from prefect.client.orchestration import get_client  # deferred: Prefect reads its settings at import

    from agentparty.api.paused_runs import PauseAnswered, PauseExpired, paused_runs, resume  # deferred: Prefect

    async with get_client() as client:
        while not stop.is_set():
            for paused in await paused_runs(client):
                if paused.input_type != "HumanDecision":
                    continue
                with contextlib.suppress(PauseAnswered, PauseExpired):
                    await resume(client, paused, {"action": "abort", "note": "benchmark operator: not rescued"})
                    answered["aborted by the operator"] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)


async def run_all(plans: list[PlannedRun], home: Path, concurrency: int) -> Counter[str]:
    """Every planned run, ``concurrency`` at a time in this process; how many ended in each status."""
    (home / "bench-breakers").mkdir(exist_ok=True)
    gate = asyncio.Semaphore(concurrency)
    statuses: Counter[str] = Counter()
    stop = asyncio.Event()
    on_call = asyncio.create_task(operator(stop, statuses))

    async def one(planned: PlannedRun) -> None:
        async with gate:
            statuses[f"{planned.workflow.removesuffix('.yaml')} {await run_one(planned, home)}"] += 1

    try:
        await asyncio.gather(*(one(p) for p in plans))
    finally:
        stop.set()
        await on_call
    return statuses


def graph_summary() -> dict[str, Any]:
    """What the training reads from the graph the runs wrote: agents, tasks, finished teams, successes."""
    from agentparty.gnn.pipeline import extract  # deferred: Prefect at import
    from agentparty.runtime.run_recorder import configured_store  # deferred: Prefect at import
    from agentparty.runtime.settings import get_settings  # deferred: Prefect at import

    snapshot = extract(configured_store(get_settings()))
    scores = [t.performance_score for t in snapshot.teams]
    return {
        "agents": len(snapshot.agents),
        "capabilities": len(snapshot.capabilities),
        "tasks": len(snapshot.tasks),
        "teams": len(snapshot.teams),
        "succeeded": sum(1 for t in snapshot.teams if t.succeeded),
        "imperfect": sum(1 for score in scores if score < 1.0),
        "mean_performance_score": sum(scores) / len(scores) if scores else None,
        "worked_with": len(snapshot.worked_with),
    }


def train_on_history() -> dict[str, Any]:
    """The scheduled training flow, run now on this home's graph (what ``agentparty gnn train`` runs)."""
    from agentparty.flows.train_gnn import train_gnn  # deferred: Prefect at import

    started = time.perf_counter()
    out = train_gnn()
    out["train_s"] = time.perf_counter() - started
    return out


def train_synthetic(home: Path) -> dict[str, Any]:
    """The synthetic seed history (default SyntheticDataConfig) trained with its truth, by the same code."""
    from agentparty.gnn.embeddings import default_embedder  # deferred: Prefect at import
    from agentparty.gnn.pipeline import train_candidate  # deferred: Prefect at import
    from agentparty.gnn.snapshot import GraphSnapshot  # deferred: Prefect at import
    from agentparty.gnn.synthetic import generate  # deferred: Prefect at import
    from agentparty.models.config import SyntheticDataConfig  # deferred: Prefect at import
    from agentparty.runtime.settings import get_settings  # deferred: Prefect at import

    started = time.perf_counter()
    history = generate(SyntheticDataConfig())
    snapshot = GraphSnapshot.from_batch(history.batch)
    candidate = train_candidate(snapshot, get_settings().gnn_training, default_embedder(home), history.truth)
    return {
        "metrics": [row.as_dict() for row in candidate.rows],
        "teams": len(snapshot.teams),
        "succeeded": sum(1 for t in snapshot.teams if t.succeeded),
        "agents": len(snapshot.agents),
        "epochs": len(candidate.run.curves),
        "train_s": time.perf_counter() - started,
    }


def table(real: list[dict[str, Any]], synthetic: list[dict[str, Any]]) -> str:
    """One markdown table: the columns of ``gnn/evaluate.py``, a row per method and history."""
    from agentparty.gnn.evaluate import COLUMNS  # deferred: Prefect at import

    head = "| history | " + " | ".join(label for _, label in COLUMNS) + " |"
    rule = "|---|" + "|".join("---" for _ in COLUMNS) + "|"
    rows = [
        "| " + " | ".join([name, str(m["method"]), *(_fmt(m.get(key)) for key, _ in COLUMNS[1:])]) + " |"
        for name, metrics in (("real runs", real), ("synthetic seed", synthetic))
        for m in metrics
    ]
    return "\n".join([head, rule, *rows])


def _fmt(value: object) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def benchmark(runs: int, concurrency: int, failure_rate: float, seed: int) -> dict[str, Any]:
    plans = plan_runs(runs, seed)
    with fresh_home(failure_rate, seed) as home:
        started = time.perf_counter()
        statuses = asyncio.run(run_all(plans, home, concurrency))
        runs_s = time.perf_counter() - started
        graph = graph_summary()
        real = train_on_history()
        synthetic = train_synthetic(home)
    return {
        "runs": runs,
        "concurrency": concurrency,
        "failure_rate": failure_rate,
        "seed": seed,
        "runs_s": runs_s,
        "seconds_per_run": runs_s / max(1, runs),
        "statuses": dict(sorted(statuses.items())),
        "graph": graph,
        "real": {k: real[k] for k in ("model_id", "metrics", "epochs", "train_s", "promotion")},
        "synthetic": synthetic,
    }


def report(result: dict[str, Any], wall_s: float) -> str:
    g, real, synth = result["graph"], result["real"], result["synthetic"]
    statuses = ", ".join(f"{k}: {v}" for k, v in result["statuses"].items())
    lines = [
        f"{result['runs']} keyless runs ({result['concurrency']} at a time, simulated failure rate "
        f"{result['failure_rate']}, seed {result['seed']}) in {result['runs_s']:.0f} s "
        f"({result['seconds_per_run']:.2f} s per run); total wall {wall_s:.0f} s",
        f"run statuses: {statuses}",
        f"graph the runs wrote: {g['agents']} agents, {g['capabilities']} capabilities, {g['tasks']} tasks, "
        f"{g['teams']} finished teams ({g['succeeded']} succeeded, i.e. half their slots or more completed; "
        f"{g['imperfect']} with a slot failed; mean performance score {_fmt(g['mean_performance_score'])}), "
        f"{g['worked_with']} WORKED_WITH pairs",
        f"train_gnn flow on it: model {real['model_id']}, {real['epochs']} epochs, {real['train_s']:.1f} s; "
        f"{real['promotion']['reason']}",
        f"synthetic seed history: {synth['agents']} agents, {synth['teams']} teams ({synth['succeeded']} succeeded), "
        f"{synth['epochs']} epochs, {synth['train_s']:.1f} s",
        "",
        table(real["metrics"], synth["metrics"]),
        "",
        "Simulated outcomes are a function of the inputs and the simulator (its seed and fault rate), not of agent",
        "quality: the real-run figures say the path works on a graph only runs wrote, not who staffs a task well.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300, help="keyless runs of the examples (default 300)")
    parser.add_argument("--quick", action="store_true", help=f"a smoke size: {QUICK_RUNS} runs")
    parser.add_argument("--concurrency", type=int, default=3, help="runs at once in this process (default 3)")
    parser.add_argument(
        "--failure-rate",
        type=float,
        default=0.3,
        help="AGENTPARTY_SIMULATED__FAILURE_RATE for the runs: the share of simulated calls that fail (default 0.3)",
    )
    parser.add_argument("--seed", type=int, default=7, help="draws the inputs and seeds the simulator (default 7)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not 0.0 <= args.failure_rate <= 1.0:
        parser.error("--failure-rate must be between 0 and 1")
    if args.runs < 1 or args.concurrency < 1:
        parser.error("--runs and --concurrency must be at least 1")
    started = time.perf_counter()
    result = benchmark(QUICK_RUNS if args.quick else args.runs, args.concurrency, args.failure_rate, args.seed)
    wall_s = time.perf_counter() - started
    if args.json:
        print(json.dumps({**result, "wall_s": wall_s}, indent=2, default=str))
    else:
        print(report(result, wall_s))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
