"""Scraping /metrics with 1,000 runs recorded, against the same scrape with none, in the same run.

    python bench/metrics_scrape.py [--json] [--runs N] [--scrapes N]

API rows: the real API (uvicorn, a viewer key, ``exportFormats: [prometheus]``) in this process. Its scrape is
timed over HTTP before anything is recorded (baseline), then after N runs were recorded through the engine's
``record_*`` functions the way a run records them: per run its start and end (20 workflows, one in ten failed),
six steps (task, decision, parallel, subgraph), three model calls on four models with tokens and cost, two tool
calls, budgets at three levels, and one agent of its own (two gauges per agent: the worst case, a new agent id
in every run).

Worker rows: a worker's keyless listener over a multiprocess directory (``runtime/telemetry_multiproc.py``). The
baseline has no files; then N exited flow-run processes are stood in for by N sets of metric files written with
``prometheus_client``'s own file format under pids that no process has (each set what one run's process writes:
the same samples as above). The first scrape folds them into the archives (timed alone); the median is of the
scrapes after it. For comparison, ``prometheus_client``'s plain ``MultiProcessCollector`` over the same files
without folding (what a worker would read every scrape without compaction).

Each row: median and p90 of ``--scrapes`` scrapes (default 50), and the exposition's size. Target: the scrape
with 1,000 runs under 50 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector

from agentparty.api import create_app
from agentparty.api.security import key_digest
from agentparty.api.serve import serving
from agentparty.models.access import ApiAccessConfig
from agentparty.models.agent import PerformanceMetrics
from agentparty.models.sdk_config import MetricsConfig
from agentparty.models.tools import ToolCallRecord
from agentparty.runtime import telemetry_metrics as tm
from agentparty.runtime.local_service import free_port
from agentparty.runtime.settings import Settings
from agentparty.runtime.telemetry_export import MetricsExporter, start_listener

KEY = "bench-viewer-key"
MODELS = ("simulated", "simulated-fast", "simulated-large", "gpt-4o-mini")
KINDS = ("task", "task", "task", "decision", "parallel", "subgraph")
FAKE_PID = 5_000_000
"""Above Linux's largest pid (4,194,304): no process has these, so they read as exited."""


def record_run(i: int) -> None:
    """What one run records, through the engine's own functions."""
    workflow = f"workflow-{i % 20}"
    tm.record_run_started(workflow)
    for kind in KINDS:
        tm.record_step(kind, "completed", 0.05 * (1 + i % 7))
    for turn in range(3):
        model = MODELS[(i + turn) % len(MODELS)]
        tm.record_model_call("simulated", model, 0.02 * (1 + turn), ok=(i + turn) % 25 != 0)
        tm.record_model_usage("simulated", model, 400 + i % 50, 120 + i % 30, 0.0004)
    for tool in ("search", "calculator"):
        tm.record_tool_call(tool, ToolCallRecord(call_id="c", name=tool, arguments="{}", ok=True, duration_ms=10))
    for level in ("task", "agent", "user"):
        tm.record_budget(level, 500 + i, 10_000)
    tm.record_agent_performance(f"agent-{i:05d}", PerformanceMetrics(response_time=150.0 + i % 100))
    tm.record_run_finished(workflow, "failed" if i % 10 == 0 else "completed")


def timed(scrape: Callable[[], bytes], n: int) -> dict[str, float]:
    durations, size = [], 0
    for _ in range(n):
        started = time.perf_counter()
        size = len(scrape())
        durations.append((time.perf_counter() - started) * 1000)
    durations.sort()
    return {"median_ms": statistics.median(durations), "p90_ms": durations[int(0.9 * (n - 1))], "bytes": size}


def api_rows(home: Path, runs: int, scrapes: int) -> list[dict[str, Any]]:
    config = home / "sdk.yaml"
    config.write_text(yaml.safe_dump({"monitoring": {"metrics": {"exportFormats": ["prometheus", "json"]}}}))
    access = ApiAccessConfig.model_validate(
        {
            "accessControl": {"rateLimiting": {"enabled": False}},  # a hundred scrapes in a second: no limit here
            "apiKeys": [{"name": "b", "role": "viewer", "keySha256": key_digest(KEY)}],
        }
    )
    app = create_app(access, settings=Settings(home=home, sdk_config=config))
    rows = []
    with serving(app, free_port()) as base, httpx.Client(base_url=base, headers={"X-API-Key": KEY}) as client:

        def scrape() -> bytes:
            response = client.get("/metrics")
            response.raise_for_status()
            return response.content

        scrape()  # warm: the first request opens the connection and reads the stores
        rows.append({"row": "API /metrics (key), 0 runs (baseline)", **timed(scrape, scrapes)})
        started = time.perf_counter()
        for i in range(runs):
            record_run(i)
        recording = (time.perf_counter() - started) / runs * 1e6
        scrape()
        rows.append(
            {"row": f"API /metrics (key), {runs} runs", **timed(scrape, scrapes), "record_us_per_run": recording}
        )
    return rows


def write_exited_process(directory: Path, pid: int, i: int) -> None:
    """The files one exited flow-run process leaves: counters, histograms, mostrecent gauges."""
    files: dict[str, Any] = {}

    def put(typ: str, metric: str, name: str, labels: dict[str, str], value: float) -> None:
        if typ not in files:
            files[typ] = MmapedDict(str(directory / f"{typ}_{pid}.db"))
        key = mmap_key(metric, name, list(labels), list(labels.values()), metric)
        files[typ].write_value(key, value, time.time() if typ.startswith("gauge") else 0.0)

    workflow = f"workflow-{i % 20}"
    put("counter", "agentparty_runs_started", "agentparty_runs_started_total", {"workflow": workflow}, 1)
    put(
        "counter",
        "agentparty_runs_finished",
        "agentparty_runs_finished_total",
        {"workflow": workflow, "outcome": "completed"},
        1,
    )
    for kind in set(KINDS):
        labels = {"kind": kind, "outcome": "completed"}
        for le in ("0.1", "1.0", "+Inf"):
            put(
                "histogram",
                "agentparty_step_duration_seconds",
                "agentparty_step_duration_seconds_bucket",
                {**labels, "le": le},
                1,
            )
        put("histogram", "agentparty_step_duration_seconds", "agentparty_step_duration_seconds_sum", labels, 0.2)
    for model in MODELS[:3]:
        labels = {"provider": "simulated", "model": model}
        put("counter", "agentparty_model_calls", "agentparty_model_calls_total", {**labels, "outcome": "ok"}, 1)
        for direction, tokens in (("input", 400), ("output", 120)):
            put(
                "counter",
                "agentparty_model_tokens",
                "agentparty_model_tokens_total",
                {**labels, "direction": direction},
                tokens,
            )
    for level in ("task", "agent", "user"):
        put(
            "gauge_mostrecent",
            "agentparty_budget_remaining_tokens",
            "agentparty_budget_remaining_tokens",
            {"level": level},
            9000,
        )
    put(
        "gauge_mostrecent",
        "agentparty_agent_response_time_seconds",
        "agentparty_agent_response_time_seconds",
        {"agent": f"agent-{i:05d}"},
        0.15,
    )
    for mapped in files.values():
        mapped.close()


def worker_rows(home: Path, runs: int, scrapes: int) -> list[dict[str, Any]]:
    directory = home / "metrics" / "worker-bench"
    directory.mkdir(parents=True)
    config = MetricsConfig(export_formats=["prometheus"], collection_interval=1)  # fold on every scrape
    listener = start_listener(MetricsExporter.build(config, home, multiproc_dir=directory), "127.0.0.1:0")
    rows = []
    try:
        with httpx.Client(base_url=listener.url) as client:

            def scrape() -> bytes:
                response = client.get("/metrics")
                response.raise_for_status()
                return response.content

            scrape()
            rows.append({"row": "worker listener, 0 runs (baseline)", **timed(scrape, scrapes)})
            for i in range(runs):
                write_exited_process(directory, FAKE_PID + i, i)
            plain = CollectorRegistry()
            MultiProcessCollector(plain, str(directory))
            rows.append(
                {
                    "row": f"plain MultiProcessCollector, {runs} exited processes' files (no folding)",
                    **timed(lambda: generate_latest(plain), max(5, scrapes // 10)),
                }
            )
            rows.append({"row": f"worker listener, first scrape: folds {runs} processes' files", **timed(scrape, 1)})
            rows.append({"row": f"worker listener, {runs} runs (folded)", **timed(scrape, scrapes)})
    finally:
        listener.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / f"home-{uuid.uuid4().hex[:6]}"
        home.mkdir()
        rows = api_rows(home, args.runs, args.scrapes) + worker_rows(home, args.runs, args.scrapes)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| scrape | median ms | p90 ms | bytes |\n|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['row']} | {row['median_ms']:.2f} | {row['p90_ms']:.2f} | {row['bytes']:,} |")
    recording = next(r["record_us_per_run"] for r in rows if "record_us_per_run" in r)
    print(f"\nrecording one run's figures: {recording:.0f} µs; target: the scrape with {args.runs} runs < 50 ms")


if __name__ == "__main__":
    main()
