"""(b) of ``bench/scale.py``: completed 10-step runs per minute with one ``agentparty worker`` against two.

One PostgreSQL-backed Prefect server (as ``agentparty up --state-db postgres``
runs it) and engine state in the same cluster; a 10-step workflow whose steps
each wait ``--step-seconds`` (what an agent step mostly does: wait for a model);
``agentparty deploy`` it; start 1 or 2 ``agentparty worker --limit L``
processes on its pool; create R runs at once and time until the last one is
Completed. Workers are what scale out: each runs at most ``L`` flow runs at once
(its ``--limit``), so a second worker doubles what can run at once, until the
machine's cores (busy column) or the Prefect server cap it. Both worker counts
run in the same invocation, against servers set up the same way.

    python bench/scale.py --sections b [--runs 16] [--limit 4] [--step-seconds 0.5]
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from agentparty.runtime.local_service import free_port
from agentparty.runtime.postgres_server import LocalPostgres
from agentparty.runtime.prefect_database import PrefectDatabase
from agentparty.runtime.prefect_server import LocalPrefectServer

HERE = Path(__file__).resolve().parent
AGENTPARTY = str(Path(sys.executable).with_name("agentparty"))
STEPS = 10
TICK = os.sysconf("SC_CLK_TCK")


def _definition(folder: Path, step_seconds: float) -> Path:
    steps: list[dict[str, Any]] = []
    for i in range(STEPS):
        step: dict[str, Any] = {
            "id": f"s{i}",
            "type": "task",
            "configuration": {"handler": "bench_handlers:wait"},
            "inputs": {"seconds": step_seconds},
        }
        if i:
            step["configuration"]["dependsOn"] = [f"s{i - 1}"]
        steps.append(step)
    doc = {"id": "ten-steps", "name": "Ten steps", "steps": steps, "triggers": [{"type": "manual"}],
           "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"}}  # fmt: skip
    path = folder / "ten-steps.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _machine_busy() -> float:
    """CPU seconds the whole machine spent (all processes), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    idle = int(fields[3]) + int(fields[4])
    return (sum(int(f) for f in fields[:8]) - idle) / TICK


async def _create_runs(api: str, count: int) -> list[Any]:
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api) as client:
        deployment = await client.read_deployment_by_name("Ten steps/ten-steps")
        return [
            await client.create_flow_run_from_deployment(deployment.id, parameters={"inputs": {}}) for _ in range(count)
        ]


async def _completed(api: str, ids: list[Any]) -> tuple[int, int]:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with PrefectClient(api) as client:
        runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids))
    done = sum(1 for r in runs if r.state is not None and r.state.is_completed())
    failed = sum(1 for r in runs if r.state is not None and r.state.is_final() and not r.state.is_completed())
    return done, failed


def one_setup(workers: int, runs: int, limit: int, step_seconds: float) -> dict[str, Any]:
    """Fresh cluster, server and deployment; ``workers`` workers; the runs' wall time and the machine's CPU."""
    with tempfile.TemporaryDirectory(prefix=f"agentparty-scale-b{workers}-") as tmp:
        home = Path(tmp)
        cluster = LocalPostgres(home / "pg", preferred_port=free_port())
        server = LocalPrefectServer(home / "prefect-home", port=free_port(), database=PrefectDatabase(cluster=cluster))
        started: list[subprocess.Popen[bytes]] = []
        try:
            server.start()
            pool = f"scale-b-{uuid.uuid4().hex[:6]}"
            env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTPARTY_", "PREFECT_"))}
            env |= server.client_env() | {
                "PYTHONPATH": str(HERE),
                "AGENTPARTY_HOME": str(home / "engine"),
                "AGENTPARTY_STATE_DB_URL": cluster.url("agentparty", driver="postgresql"),
                "AGENTPARTY_GRAPH": "off",
                "AGENTPARTY_EVENTS": "off",
                "PREFECT_WORKER_QUERY_SECONDS": "1",
                "PREFECT_LOGGING_LEVEL": "WARNING",
            }
            folder = home / "workflows"
            folder.mkdir()
            path = _definition(folder, step_seconds)
            subprocess.run([AGENTPARTY, "deploy", str(path), "--pool", pool, "--no-training"], env=env,
                           check=True, capture_output=True, timeout=300)  # fmt: skip
            for i in range(workers):
                started.append(subprocess.Popen(
                    [AGENTPARTY, "worker", "--pool", pool, "--limit", str(limit), "--name", f"w{i}"], env=env,
                    stdout=(home / f"worker-{i}.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
                ))  # fmt: skip
            time.sleep(5)  # the workers register and poll before the runs exist
            cpu0, wall0 = _machine_busy(), time.perf_counter()
            ids = [run.id for run in asyncio.run(_create_runs(server.api_url, runs))]
            while True:
                done, failed = asyncio.run(_completed(server.api_url, ids))
                if done + failed == runs:
                    break
                time.sleep(0.5)
            wall, cpu = time.perf_counter() - wall0, _machine_busy() - cpu0
        finally:
            for process in started:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(timeout=60)
            server.stop()
            cluster.remove()
    return {
        "workers": workers,
        "runs": runs,
        "failed": failed,
        "wall_s": wall,
        "runs_per_min": 60.0 * done / wall,
        "busy": cpu / wall / (os.cpu_count() or 1),
        "cpu_s_per_run": cpu / runs,
        "floor_s": STEPS * step_seconds * -(-runs // (workers * limit)),
    }


def section_b(runs: int, limit: int, step_seconds: float, repeat: int) -> list[dict[str, Any]]:
    """One worker and two, alternating, ``repeat`` times each; every setup's row."""
    rows: list[dict[str, Any]] = []
    for _ in range(repeat):
        for workers in (1, 2):
            rows.append(one_setup(workers, runs, limit, step_seconds))
    return rows
