"""Webhook acknowledgement latency vs bare Prefect flow-run creation, in the same run.

    python bench/webhooks.py [--json] [--requests N] [--repeat R]

A throwaway local Prefect server is started, a small workflow with a webhook
trigger is deployed, and ``agentparty api`` runs as its own process (uvicorn)
on a free port. Ours: N signed posts sent at once (httpx, one connection
each, bodies signed before the clock starts); a post's latency is from sending
it to its 202, which comes after the flow run exists in Prefect and its
idempotency key is recorded. Baseline: N bare ``create_flow_run_from_deployment``
calls issued at once from this process through one Prefect client, at most
``api_prefect_concurrency`` in flight as in the API (the work the webhook must
do anyway, without HTTP, signature, validation or the receipt); unbounded, a
burst of 100 fails with 503s from Prefect's SQLite server after the client's
retries. Repetitions alternate who goes first. Target: p99 of ours < 100 ms.
Also one at a time (``--sequential`` requests each, no concurrency): what a
single delivery costs over a single bare create.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import yaml
from _server import benchmark_server

from agentparty.api.signing import signature_headers
from agentparty.runtime.local_service import free_port

SECRET_ENV = "AGENTPARTY_BENCH_WEBHOOK_SECRET"
SECRET = uuid.uuid4().hex
REFUSED: dict[int, int] = {}
"""Webhook answers other than 202, by status code."""
BASELINE_FAILED: dict[int, int] = {}
"""Bare creates that failed after the client's retries, by status code."""


def write_workflow(folder: Path) -> Path:
    (folder / "bench_hook_handlers.py").write_text("def echo(text):\n    return {'echo': text}\n")
    doc = {
        "id": "bench-webhook",
        "name": "Bench webhook",
        "inputs": {"ticket_id": {"type": "string"}, "priority": {"type": "integer", "minimum": 1, "maximum": 5, "default": 3}},
        "steps": [{"id": "echo", "type": "task", "configuration": {"handler": "bench_hook_handlers:echo"}, "inputs": {"text": "${inputs.ticket_id}"}}],
        "triggers": [{"type": "webhook", "configuration": {"secretName": SECRET_ENV, "toleranceSeconds": 300}}],
    }
    path = folder / "bench-webhook.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def deploy(path: Path) -> str:
    from prefect.deployments.runner import EntrypointType

    from agentparty.deployments.naming import deployment_name
    from agentparty.flows import compile_workflow
    from agentparty.flows.definitions import load_workflow

    definition = load_workflow(path)
    flow = compile_workflow(definition, source=path)
    return str(flow.to_deployment(name=deployment_name(definition), entrypoint_type=EntrypointType.MODULE_PATH).apply())


def start_api(home: Path, folder: Path, port: int) -> subprocess.Popen[bytes]:
    access = home / "api-access.yaml"
    access.write_text(yaml.safe_dump({"accessControl": {"rateLimiting": {"enabled": False}}, "apiKeys": []}))
    env = {
        **os.environ, "AGENTPARTY_HOME": str(home), "AGENTPARTY_API_ACCESS": str(access),
        "AGENTPARTY_WORKFLOWS": str(folder), SECRET_ENV: SECRET, "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    log = (home / "api.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-c", "from agentparty.cli import app; app()", "api", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the API did not start; see {home / 'api.log'}")


async def ours(base_url: str, n: int, tag: str, concurrent: bool = True) -> list[float]:
    deliveries = []
    for i in range(n):
        body = json.dumps({"ticket_id": f"{tag}-{i}", "priority": 1 + i % 5}).encode()
        deliveries.append((body, signature_headers(SECRET, body)))
    latencies: list[float] = []

    async def post(http: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> None:
        started = time.perf_counter()
        response = await http.post("/webhooks/bench-webhook", content=body, headers=headers)
        latencies.append(time.perf_counter() - started)
        if response.status_code != 202:  # 503 when Prefect stays locked: a sender would retry later
            REFUSED[response.status_code] = REFUSED.get(response.status_code, 0) + 1

    async with httpx.AsyncClient(base_url=base_url, limits=httpx.Limits(max_connections=n), timeout=120) as http:
        await http.get("/openapi.json")  # one connection open before the clock, as in the baseline's client
        if concurrent:
            await asyncio.gather(*(post(http, body, headers) for body, headers in deliveries))
        else:
            for body, headers in deliveries:
                await post(http, body, headers)
    return latencies


async def baseline(deployment_id: str, n: int, tag: str, concurrent: bool = True) -> list[float]:
    from prefect.client.orchestration import get_client

    from agentparty.runtime.settings import Settings

    slots = asyncio.Semaphore(Settings().api_prefect_concurrency)
    latencies: list[float] = []

    async with get_client() as client:
        await client.read_deployment(uuid.UUID(deployment_id))  # warm connection

        async def create(i: int) -> None:
            started = time.perf_counter()
            async with slots:
                try:
                    await client.create_flow_run_from_deployment(
                        uuid.UUID(deployment_id), parameters={"inputs": {"ticket_id": f"{tag}-{i}", "priority": 1 + i % 5}}
                    )
                except Exception as exc:  # 503 after the client's retries
                    code = getattr(getattr(exc, "response", None), "status_code", 0)
                    BASELINE_FAILED[code] = BASELINE_FAILED.get(code, 0) + 1
            latencies.append(time.perf_counter() - started)

        if concurrent:
            await asyncio.gather(*(create(i) for i in range(n)))
        else:
            for i in range(n):
                await create(i)
    return latencies


async def count_runs(deployment_id: str) -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async with get_client() as client:
        return await client.count_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[uuid.UUID(deployment_id)])))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sequential", type=int, default=20)
    args = parser.parse_args()

    base: list[float] = []
    mine: list[float] = []
    bursts: dict[str, list[float]] = {"baseline": [], "ours": []}
    with benchmark_server() as server, tempfile.TemporaryDirectory(prefix="agentparty-webhook-bench-") as tmp:
        folder = Path(tmp) / "workflows"
        folder.mkdir()
        deployment_id = deploy(write_workflow(folder))
        port = free_port()
        api = start_api(Path(tmp), folder, port)
        try:
            base_url = f"http://127.0.0.1:{port}"
            asyncio.run(ours(base_url, 5, "warm"))
            asyncio.run(baseline(deployment_id, 5, "warm"))
            before = asyncio.run(count_runs(deployment_id))
            for rep in range(args.repeat):
                order = ("baseline", "ours") if rep % 2 == 0 else ("ours", "baseline")
                for who in order:
                    started = time.perf_counter()
                    if who == "baseline":
                        base += asyncio.run(baseline(deployment_id, args.requests, f"b{rep}"))
                    else:
                        mine += asyncio.run(ours(base_url, args.requests, f"o{rep}"))
                    bursts[who].append(time.perf_counter() - started)
            single_base = asyncio.run(baseline(deployment_id, args.sequential, "sb", concurrent=False))
            single_ours = asyncio.run(ours(base_url, args.sequential, "so", concurrent=False))
            made = asyncio.run(count_runs(deployment_id)) - before
            expected = 2 * (args.requests * args.repeat + args.sequential) - sum(REFUSED.values()) - sum(BASELINE_FAILED.values())
            if made != expected:
                raise SystemExit(f"expected {expected} new flow runs, found {made}")
        finally:
            api.terminate()
            try:
                api.wait(30)
            except subprocess.TimeoutExpired:  # requests still waiting on Prefect
                api.kill()
                api.wait()
        del server

    rows = [
        {"benchmark": "bare create_flow_run_from_deployment", "p50_s": statistics.median(base), "p99_s": percentile(base, 0.99),
         "burst_s": statistics.median(bursts["baseline"]), "ratio_p99": None, "target": ""},
        {"benchmark": "signed webhook post -> 202", "p50_s": statistics.median(mine), "p99_s": percentile(mine, 0.99),
         "burst_s": statistics.median(bursts["ours"]), "ratio_p99": percentile(mine, 0.99) / percentile(base, 0.99),
         "target": "p99 < 0.100"},
        {"benchmark": "one at a time: bare create", "p50_s": statistics.median(single_base),
         "p99_s": percentile(single_base, 0.99), "burst_s": None, "ratio_p99": None, "target": ""},
        {"benchmark": "one at a time: webhook post -> 202", "p50_s": statistics.median(single_ours),
         "p99_s": percentile(single_ours, 0.99), "burst_s": None,
         "ratio_p99": percentile(single_ours, 0.99) / percentile(single_base, 0.99), "target": ""},
    ]
    if args.json:
        print(json.dumps({"requests": args.requests, "repeat": args.repeat, "rows": rows, "refused": REFUSED, "baseline_failed": BASELINE_FAILED,
                          "samples": {"baseline": base, "ours": mine, "bursts": bursts,
                                      "sequential_baseline": single_base, "sequential_ours": single_ours}}, indent=2))
        return
    print(f"{args.requests} concurrent requests, {args.repeat} bursts each (latency over all {args.requests * args.repeat}); "
          f"{args.sequential} one at a time; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'benchmark':<38} {'p50 s':>8} {'p99 s':>8} {'burst s':>8} {'p99 ratio':>9}  target")
    for row in rows:
        ratio = f"{row['ratio_p99']:.2f}" if row["ratio_p99"] else ""
        burst = f"{row['burst_s']:.3f}" if row["burst_s"] else ""
        print(f"{row['benchmark']:<38} {row['p50_s']:>8.4f} {row['p99_s']:>8.4f} {burst:>8} {ratio:>9}  {row['target']}")
    if REFUSED:
        print("webhook answers other than 202: " + ", ".join(f"{n} x {code}" for code, n in sorted(REFUSED.items())))
    if BASELINE_FAILED:
        print("bare creates failed: " + ", ".join(f"{n} x {code}" for code, n in sorted(BASELINE_FAILED.items())))


if __name__ == "__main__":
    main()
