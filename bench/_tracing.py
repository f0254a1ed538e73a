"""Tracing on against off for ``bench/orchestration.py --tracing`` (section (d)).

A process installs OpenTelemetry's tracer provider once and for good, so each
side runs in processes of its own: every round starts one child with tracing
off (no endpoint anywhere: the no-op API, ``runtime/tracing.py``) and one with
tracing on (OTLP/HTTP to a real collector), in alternating order, each timing
the same workflows against the bench's Prefect server after a warm-up run:

* the 50-step sequential no-op workflow of (a) (Prefect's run and task spans,
  our step annotations);
* four sequential agent steps on the keyless simulated model, each calling the
  ``lookup`` tool it is offered (invoke_agent, chat and execute_tool spans, and
  the checkpoint task runs they sit in).

The collector is the trace viewer ``agentparty up --traces`` runs (Phoenix),
``--traces-endpoint`` when given, else a stand-in OTLP/HTTP receiver started
here that accepts and counts what it is sent (named as such in the output).

With ``metrics=True`` (``bench/orchestration.py --with-metrics``) the "off" side
also turns Prometheus recording off (an SDK configuration with
``monitoring.metrics.enabled: false``), so the comparison is all of
observability on against all of it off; otherwise metrics stay on (the default)
on both sides and only tracing differs.

    python bench/_tracing.py child on|off RUNS     (what each round starts)
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

HERE = Path(__file__).resolve().parent
AGENT_STEPS = 4


def agent_definition(count: int) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for i in range(count):
        step: dict[str, Any] = {
            "id": f"a{i}",
            "type": "task",
            "configuration": {
                "agent": "bench-analyst",
                "model": "simulated",
                "prompt": f"What is the temperature in city {i}?",
                "tools": ["bench_handlers:lookup"],
                "maxTurns": 4,
            },
        }
        if i:
            step["inputs"] = {"previous": f"${{steps.a{i - 1}.output}}"}
        steps.append(step)
    return {
        "id": "bench-agents",
        "name": "bench agents",
        "steps": steps,
        "triggers": [{"type": "manual"}],
        "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
    }


class _Receiver(BaseHTTPRequestHandler):
    counts: ClassVar[dict[str, int]] = {"requests": 0, "bytes": 0}

    def do_POST(self) -> None:
        size = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(size)
        _Receiver.counts["requests"] += 1
        _Receiver.counts["bytes"] += size
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")  # an empty ExportTraceServiceResponse: everything accepted
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        return None


@contextlib.contextmanager
def stand_in_receiver() -> Iterator[tuple[str, dict[str, int]]]:
    """A stand-in OTLP/HTTP traces receiver (not a trace viewer): accepts every export, keeps only counts."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", _Receiver.counts
    finally:
        server.shutdown()


@contextlib.contextmanager
def started_viewer(database: str) -> Iterator[str]:
    """Phoenix started the way ``agentparty up --traces`` starts it, in a throwaway home; yields its OTLP endpoint.

    ``database`` ``postgres``: on the home's own PostgreSQL cluster (what ``up --traces`` does where PostgreSQL is
    installed); ``sqlite``: Phoenix's default SQLite file (its fallback).
    """
    import dataclasses

    from agentparty.runtime.local_service import free_port
    from agentparty.runtime.postgres_server import LocalPostgres
    from agentparty.runtime.trace_viewer import LocalTraceViewer

    with tempfile.TemporaryDirectory(prefix="agentparty-bench-viewer-") as folder:
        home = Path(folder)
        postgres = LocalPostgres(home)
        viewer = LocalTraceViewer(home, port=free_port())
        try:
            if database == "postgres":
                postgres.start()
                postgres.ensure_database("phoenix")
                viewer = dataclasses.replace(viewer, database_url=postgres.url("phoenix", driver="postgresql"))
            viewer.start()
            yield viewer.otlp_endpoint
        finally:
            viewer.stop()
            postgres.remove()


def _child_env(endpoint: str | None, metrics_off: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "AGENTPARTY_TRACES_ENDPOINT"}
    if endpoint is not None:
        env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = endpoint
    if metrics_off is not None:
        env["AGENTPARTY_SDK_CONFIG"] = str(metrics_off)
    return env


def _round(mode: str, endpoint: str, runs: int, metrics_off: Path | None = None) -> dict[str, float]:
    command = [sys.executable, str(HERE / "_tracing.py"), "child", mode, str(runs)]
    env = _child_env(endpoint, None) if mode == "on" else _child_env(None, metrics_off)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"tracing {mode} child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def compare(
    rounds: int, runs: int, endpoint: str | None, *, metrics: bool = False, collector: str = "configured collector"
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows for the table (medians over rounds of each child's median) and the samples; needs the bench server."""
    samples: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        metrics_off = None
        if metrics:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="agentparty-bench-obs-")))
            metrics_off = folder / "metrics-off.yaml"
            metrics_off.write_text("monitoring:\n  metrics:\n    enabled: false\n")
        if endpoint is None:
            endpoint, counts = stack.enter_context(stand_in_receiver())
            collector = "stand-in OTLP/HTTP receiver"
        else:
            counts = {}
        for i in range(rounds):
            for mode in ("off", "on") if i % 2 == 0 else ("on", "off"):  # alternate who goes first
                for name, seconds in _round(mode, endpoint, runs, metrics_off).items():
                    samples.setdefault(f"{name}_{mode}", []).append(seconds)
    median = {name: statistics.median(values) for name, values in samples.items()}
    rows = []
    for name, label in (
        ("seq", "50 sequential no-op steps"),
        ("agents", f"{AGENT_STEPS} agent steps with a tool call"),
    ):
        off, on = median[f"{name}_off"], median[f"{name}_on"]
        what = "metrics and tracing" if metrics else "tracing"
        rows.append({"benchmark": f"(d) {label}: {what} off", "median_s": off, "ratio": None, "target": ""})
        rows.append(
            {"benchmark": f"    {what} on ({collector})", "median_s": on, "ratio": on / off, "target": "<= 1.05"}
        )
        # The local Prefect server (SQLite) now and then answers a run's first calls ~2 s late while it ingests
        # the previous run's events, whichever side is running: a bimodal spread the medians of few runs
        # cannot average out. The fastest run of each side has no such pause.
        fast_off, fast_on = min(samples[f"{name}-fastest_off"]), min(samples[f"{name}-fastest_on"])
        rows.append({"benchmark": "    fastest run: off", "median_s": fast_off, "ratio": None, "target": ""})
        rows.append(
            {"benchmark": "    fastest run: on", "median_s": fast_on, "ratio": fast_on / fast_off, "target": ""}
        )
    info = {"collector": collector, "endpoint": endpoint, "received": dict(counts), "samples": samples}
    return rows, info


def _child(mode: str, runs: int) -> None:
    sys.path.insert(0, str(HERE))
    from orchestration import sequential_definition, timed, warm_up

    from agentparty.flows import compile_workflow
    from agentparty.models import WorkflowDefinition
    from agentparty.runtime import tracing

    flows = {
        "seq": compile_workflow(WorkflowDefinition.model_validate(sequential_definition(50)), source=HERE / "s.yaml"),
        "agents": compile_workflow(
            WorkflowDefinition.model_validate(agent_definition(AGENT_STEPS)), source=HERE / "a.yaml"
        ),
    }
    if tracing.tracing_on() != (mode == "on"):
        raise SystemExit(f"tracing should be {mode} in this child")
    # warm: imports, registration, the exporter's connection; and how many task runs each flow makes
    task_runs = {name: warm_up(flow) for name, flow in flows.items()}
    figures: dict[str, float] = {}
    for name, flow in flows.items():
        times = [timed(flow, task_runs[name]) for _ in range(runs)]
        figures[name], figures[f"{name}-fastest"] = statistics.median(times), min(times)
    tracing.flush()
    print(json.dumps(figures))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "child":
        _child(sys.argv[2], int(sys.argv[3]))
    else:
        raise SystemExit(__doc__)
