"""Workflow engine overhead, measured against plain Prefect in the same run.

    python bench/orchestration.py [--json] [--repeat N]

(a) a compiled 50-step sequential no-op workflow vs a hand-written Prefect flow
    with the same 50 tasks (target ratio <= 1.10);
(b) 32 parallel steps that each wait 0.5 s (target flow wall time <= 1.5 s);
(c) validate + compile a 1,000-step DAG (target < 1 s);
(d) with --tracing: the workflows of (a) and four agent steps with tool calls, tracing on (OTLP to the trace
    viewer `agentparty up --traces` runs, --traces-endpoint, else a stand-in receiver) against off, in
    alternating child processes, --rounds of each (target: on <= 1.05 x off; see bench/_tracing.py).
Both flows of (a) are async and run against the same local Prefect server.

    python bench/orchestration.py --tracing [--tracing-only] [--rounds 5] [--traces-endpoint URL] [--with-metrics]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _server import benchmark_server, wait_until_recorded


def sequential_definition(count: int) -> dict[str, Any]:
    steps = [{"id": "s0", "type": "task", "configuration": {"handler": "bench_handlers:noop"}}]
    for i in range(1, count):
        steps.append(
            {
                "id": f"s{i}",
                "type": "task",
                "configuration": {"handler": "bench_handlers:noop"},
                "inputs": {"previous": f"${{steps.s{i - 1}.output}}"},
            }
        )
    return {
        "id": "bench-seq",
        "name": "bench sequential",
        "steps": steps,
        "triggers": [{"type": "manual"}],
        "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
    }


def parallel_definition(count: int, seconds: float) -> dict[str, Any]:
    steps = [
        {
            "id": f"p{i}",
            "type": "task",
            "configuration": {"handler": "bench_handlers:wait"},
            "inputs": {"seconds": seconds},
        }
        for i in range(count)
    ]
    return {
        "id": "bench-par",
        "name": "bench parallel",
        "steps": steps,
        "triggers": [{"type": "manual"}],
        "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
    }


def dag_definition(count: int, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    steps = []
    for i in range(count):
        refs = {f"x{j}": f"${{steps.s{k}.output}}" for j, k in enumerate(rng.sample(range(i), min(i, 2)))}
        steps.append(
            {"id": f"s{i}", "type": "task", "configuration": {"handler": "bench_handlers:noop"}, "inputs": refs}
        )
    return {
        "id": "bench-dag",
        "name": "bench dag",
        "steps": steps,
        "triggers": [{"type": "manual"}],
        "errorHandling": {"retryAttempts": 1, "backoffStrategy": "exponential"},
    }


def hand_written_flow(count: int, resumable: bool) -> Any:
    """The same 50 tasks written by hand; ``resumable`` adds persisted results with cache keys, as ours have."""
    import bench_handlers
    from prefect import flow, task

    options: dict[str, Any] = {}
    if resumable:
        options = {"persist_result": True, "cache_key_fn": lambda _ctx, params: f"{params['run']}-{params['i']}"}

    @task(**options)
    async def noop(run: str, i: int, previous: Any = None) -> dict[str, int]:
        return await bench_handlers.noop(previous)

    @flow(name="bench hand-written" + (" resumable" if resumable else ""))
    async def hand() -> Any:
        run = uuid.uuid4().hex
        value = None
        for i in range(count):
            value = await noop.with_options(name=f"s{i}")(run, i, value)
        return value

    return hand


def timed(flow: Any, task_runs: int, settle: bool = True) -> float:
    """Wall time of one flow call; then (untimed) wait until the server has recorded its task runs."""
    started = time.perf_counter()
    state = asyncio.run(flow(return_state=True))
    elapsed = time.perf_counter() - started
    if not state.is_completed():
        raise SystemExit(f"benchmark flow {flow.name!r} ended {state.type.value}: {state.message}")
    if settle:
        asyncio.run(wait_until_recorded(state.state_details.flow_run_id, task_runs))
    return elapsed


def warm_up(flow: Any) -> int:
    """Run ``flow`` once untimed and return how many task runs the server recorded for it.

    A deterministic flow makes as many task runs every time, so timed runs then
    wait for all of them (an agent step's turns and tool calls are task runs of
    their own, more than one per step) before the next run starts.
    """
    state = asyncio.run(flow(return_state=True))
    if not state.is_completed():
        raise SystemExit(f"benchmark flow {flow.name!r} ended {state.type.value}: {state.message}")
    return asyncio.run(wait_until_recorded(state.state_details.flow_run_id, None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tracing", action="store_true", help="add (d): tracing on against off")
    parser.add_argument("--tracing-only", action="store_true", help="(d) alone")
    parser.add_argument("--rounds", type=int, default=5, help="(d): child processes of each side")
    parser.add_argument("--traces-endpoint", help="(d): OTLP/HTTP traces URL of the collector to export to")
    parser.add_argument("--with-metrics", action="store_true", help="(d): the off side turns metrics off too")
    parser.add_argument(
        "--viewer",
        choices=("postgres", "sqlite"),
        help="(d): start Phoenix as `agentparty up --traces` does (on PostgreSQL, or on its SQLite fallback) and "
        "export to it",
    )
    args = parser.parse_args()
    if args.tracing_only:
        _print(*_tracing_rows(args), as_json=args.json)
        return

    from agentparty.models import WorkflowDefinition

    dag = dag_definition(1000)
    compile_times = []
    samples: dict[str, list[float]] = {
        "compiled": [],
        "hand_default": [],
        "hand_resumable": [],
        "parallel": [],
        "parallel_back_to_back": [],
    }
    with benchmark_server():
        from agentparty.flows import compile_workflow

        for _ in range(args.repeat):
            started = time.perf_counter()
            compile_workflow(WorkflowDefinition.model_validate(dag), source=HERE / "dag.yaml")
            compile_times.append(time.perf_counter() - started)

        flows = {
            "compiled": compile_workflow(
                WorkflowDefinition.model_validate(sequential_definition(50)), source=HERE / "seq.yaml"
            ),
            "hand_default": hand_written_flow(50, resumable=False),
            "hand_resumable": hand_written_flow(50, resumable=True),
        }
        for flow in flows.values():  # warm every path (imports, flow registration) before measuring
            timed(flow, 50)
        for _ in range(args.repeat):  # interleave so drift affects all equally
            for name, flow in flows.items():
                samples[name].append(timed(flow, 50))

        parallel = compile_workflow(
            WorkflowDefinition.model_validate(parallel_definition(32, 0.5)), source=HERE / "par.yaml"
        )
        timed(parallel, 32)
        samples["parallel"] = [timed(parallel, 32) for _ in range(args.repeat)]
        samples["parallel_back_to_back"] = [timed(parallel, 32, settle=False) for _ in range(args.repeat)]

    median = {name: statistics.median(values) for name, values in samples.items()}
    rows = [
        _row("50 sequential no-op steps: compiled workflow", median["compiled"]),
        _row("50 sequential no-op tasks: hand-written, Prefect defaults", median["hand_default"]),
        _row("50 sequential no-op tasks: hand-written, persisted + keyed", median["hand_resumable"]),
        _row("(a) compiled / hand-written (defaults)", None, median["compiled"] / median["hand_default"], "<= 1.10"),
        _row(
            "    compiled / hand-written (persisted + keyed)", None, median["compiled"] / median["hand_resumable"], ""
        ),
        _row("(b) 32 parallel steps x 0.5 s, flow wall time", median["parallel"], median["parallel"] / 0.5, "<= 1.5 s"),
        _row(
            "    same, back to back (server still ingesting)",
            median["parallel_back_to_back"],
            median["parallel_back_to_back"] / 0.5,
            "",
        ),
        _row("(c) validate + compile 1,000-step DAG", statistics.median(compile_times), None, "< 1 s"),
    ]
    info: dict[str, Any] = {"repeat": args.repeat, "samples": {**samples, "compile": compile_times}}
    if args.tracing:
        tracing_rows, tracing_info = _tracing_rows(args)
        rows += tracing_rows
        info["tracing"] = tracing_info
    _print(rows, info, as_json=args.json)


def _tracing_rows(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(d), against a bench server of its own; the collector: --traces-endpoint, the running viewer, a stand-in."""
    from _tracing import compare, started_viewer

    from agentparty.runtime.settings import Settings
    from agentparty.runtime.trace_viewer import recorded_endpoint

    with contextlib.ExitStack() as stack:
        if args.viewer:
            endpoint: str | None = stack.enter_context(started_viewer(args.viewer))
        else:
            endpoint = args.traces_endpoint or recorded_endpoint(Settings().home)
        stack.enter_context(benchmark_server())
        collector = f"Phoenix on {args.viewer}" if args.viewer else "configured collector"
        return compare(args.rounds, args.repeat, endpoint, metrics=args.with_metrics, collector=collector)


def _print(rows: list[dict[str, Any]], info: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"rows": rows, **info}, indent=2))
        return
    print(f"{'benchmark':<58} {'median s':>9} {'ratio':>7}  target")
    for row in rows:
        seconds = f"{row['median_s']:.3f}" if row["median_s"] is not None else ""
        ratio = f"{row['ratio']:.2f}" if row["ratio"] is not None else ""
        print(f"{row['benchmark']:<58} {seconds:>9} {ratio:>7}  {row['target']}")
    print(
        "ratios of (b) are against the 0.5 s a step waits; each timed run starts once the server has recorded the previous one"
    )
    if "tracing" in info or "collector" in info:
        tracing = info.get("tracing", info)
        print(f"(d) collector: {tracing['collector']} at {tracing['endpoint']}; {tracing['received'] or ''}")


def _row(name: str, seconds: float | None, ratio: float | None = None, target: str = "") -> dict[str, Any]:
    return {"benchmark": name, "median_s": seconds, "ratio": ratio, "target": target}


if __name__ == "__main__":
    main()
