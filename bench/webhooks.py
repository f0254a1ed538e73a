"""Webhook acknowledgement latency and run creation vs bare Prefect flow-run creation, in the same run.

    python bench/webhooks.py [--json] [--requests N] [--repeat R] [--sequential S]

A throwaway local Prefect server is started, two small workflows with webhook
triggers are deployed (``waitForRunSeconds: 0``, which acknowledges once the
delivery is stored, and the default 2 s, which waits to name the run), and
``agentparty api`` runs as its own process (uvicorn) on a free port.

- Baseline: N bare ``create_flow_run_from_deployment`` calls issued at once from
  this process through one Prefect client, at most ``api_prefect_concurrency``
  in flight as in the API: the work a webhook must get done anyway, without
  HTTP, signature, validation or the durable store. Its latency is per create.
- Ours: N signed posts sent at once (one pre-opened connection each, released
  together; see ``ours``). A post's latency is from sending it to its 202; the
  burst time runs until the last of its flow runs exists in Prefect (read from
  the API's delivery store), so it compares with the baseline's burst.
- One at a time (S requests each, no concurrency): a single bare create against
  a single delivery whose 202 names its run.

Repetitions rotate who goes first, and each burst starts once the servers are
quiet again. Target: p99 acknowledgement < 100 ms.
Every run made is counted at the end: exactly one per delivery, none lost.

The runs are never executed (no worker), so the server's late-run service is
turned off for the benchmark: marking hundreds of runs Late would measure that
service's writes, not run creation (with it on, bare creates took 3-10 times
longer here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml
from _server import benchmark_server

from agentparty.api.signing import signature_headers
from agentparty.runtime.local_service import free_port
from agentparty.runtime.webhook_deliveries import WebhookDeliveries

SECRET_ENV = "AGENTPARTY_BENCH_WEBHOOK_SECRET"
SECRET = uuid.uuid4().hex
UNWAITED, WAITED = "bench-webhook", "bench-webhook-waited"
REFUSED: dict[int, int] = {}
"""Webhook answers other than 202, by status code."""
BASELINE_FAILED: dict[int, int] = {}
"""Bare creates that failed after the client's retries, by status code."""


def write_workflows(folder: Path) -> list[Path]:
    (folder / "bench_hook_handlers.py").write_text("def echo(text):\n    return {'echo': text}\n")
    paths = []
    for workflow_id, wait in ((UNWAITED, {"waitForRunSeconds": 0}), (WAITED, {})):
        doc = {
            "id": workflow_id,
            "name": workflow_id.replace("-", " ").capitalize(),
            "inputs": {
                "ticket_id": {"type": "string"},
                "priority": {"type": "integer", "minimum": 1, "maximum": 5, "default": 3},
            },
            "steps": [
                {
                    "id": "echo",
                    "type": "task",
                    "configuration": {"handler": "bench_hook_handlers:echo"},
                    "inputs": {"text": "${inputs.ticket_id}"},
                }
            ],
            "triggers": [
                {"type": "webhook", "configuration": {"secretName": SECRET_ENV, "toleranceSeconds": 300, **wait}}
            ],
        }
        paths.append(folder / f"{workflow_id}.yaml")
        paths[-1].write_text(yaml.safe_dump(doc))
    return paths


def deploy(path: Path) -> str:
    from prefect.types.entrypoint import EntrypointType

    from agentparty.deployments.naming import deployment_name
    from agentparty.flows import compile_workflow
    from agentparty.runtime.documents import load_workflow

    definition = load_workflow(path)
    flow = compile_workflow(definition, source=path)
    return str(flow.to_deployment(name=deployment_name(definition), entrypoint_type=EntrypointType.MODULE_PATH).apply())


def start_api(home: Path, folder: Path, port: int) -> subprocess.Popen[bytes]:
    access = home / "api-access.yaml"
    access.write_text(yaml.safe_dump({"accessControl": {"rateLimiting": {"enabled": False}}, "apiKeys": []}))
    env = {
        **os.environ,
        "AGENTPARTY_HOME": str(home),
        "AGENTPARTY_API_ACCESS": str(access),
        "AGENTPARTY_WORKFLOWS": str(folder),
        SECRET_ENV: SECRET,
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    log = (home / "api.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-c", "from agentparty.cli import app; app()", "api", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
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


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 response (uvicorn always sends Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the response ended")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        (int(v) for k, _, v in (line.partition(":") for line in lines[1:]) if k.strip().lower() == "content-length"), 0
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the body ended")
        body += chunk
    return int(lines[0].split()[1]), body


def ours(
    port: int, workflow_id: str, n: int, tag: str, concurrent: bool = True
) -> tuple[list[float], list[dict[str, Any]]]:
    """Latencies to the 202 and the accepted bodies.

    The load comes from plain threads on pre-opened sockets released together, with each request signed
    and encoded beforehand: an HTTP client library doing that work in the measured window (httpx took
    about 1 ms of CPU per request here) would be measured alongside the API on the same two cores.
    """
    requests = []
    for i in range(n):
        body = json.dumps({"ticket_id": f"{tag}-{i}", "priority": 1 + i % 5}).encode()
        headers = {**signature_headers(SECRET, body), "Host": f"127.0.0.1:{port}", "Content-Length": str(len(body))}
        head = (
            f"POST /webhooks/{workflow_id} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        )
        requests.append(head.encode() + body)
    latencies: list[float] = [0.0] * n
    answers: list[tuple[int, bytes]] = [(0, b"")] * n
    start = threading.Barrier(n + 1 if concurrent else 1)

    def send(i: int, raw: bytes) -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if concurrent:
                start.wait()
            started = time.perf_counter()
            sock.sendall(raw)
            answers[i] = _read_response(sock)
            latencies[i] = time.perf_counter() - started

    if concurrent:
        threads = [threading.Thread(target=send, args=(i, raw)) for i, raw in enumerate(requests)]
        for thread in threads:
            thread.start()
        start.wait()
        for thread in threads:
            thread.join()
    else:
        for i, raw in enumerate(requests):
            send(i, raw)
    accepted = []
    for code, body in answers:
        if code == 202:
            accepted.append(json.loads(body))
        else:
            REFUSED[code] = REFUSED.get(code, 0) + 1
    return latencies, accepted


def wait_until_created(store: WebhookDeliveries, accepted: list[dict[str, Any]], timeout: float = 600) -> None:
    ids = [a["delivery_id"] for a in accepted]
    deadline = time.monotonic() + timeout
    while True:
        statuses = [d.status if (d := store.get(i)) else "missing" for i in ids]
        if all(s != "queued" for s in statuses):
            if set(statuses) != {"created"}:
                raise SystemExit(f"deliveries not created: {sorted(set(statuses))}")
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"{statuses.count('queued')} deliveries still queued after {timeout:.0f} s")
        time.sleep(0.05)


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
                        uuid.UUID(deployment_id),
                        parameters={"inputs": {"ticket_id": f"{tag}-{i}", "priority": 1 + i % 5}},
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


async def count_runs(deployment_ids: list[str]) -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async with get_client() as client:
        ids = [uuid.UUID(d) for d in deployment_ids]
        return await client.count_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=ids)))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(pids: list[int], window: float = 0.5, busy: float = 0.1, timeout: float = 60.0) -> None:
    """Until the servers use under ``busy`` of a core over ``window`` (Prefect persists a burst's events for
    seconds after its runs exist): each burst starts on quiet servers, whoever went before it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = [cpu_seconds(pid) for pid in pids]
        time.sleep(window)
        if all(cpu_seconds(pid) - b < busy * window for pid, b in zip(pids, before, strict=True)):
            return


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

    os.environ["PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED"] = "false"  # see the module docstring
    latency: dict[str, list[float]] = {"baseline": [], "unwaited": [], "waited": []}
    bursts: dict[str, list[float]] = {"baseline": [], "unwaited": [], "waited": []}
    named = 0
    with benchmark_server() as server, tempfile.TemporaryDirectory(prefix="agentparty-webhook-bench-") as tmp:
        folder = Path(tmp) / "workflows"
        folder.mkdir()
        unwaited_path, waited_path = write_workflows(folder)
        deployment_ids = {"unwaited": deploy(unwaited_path), "waited": deploy(waited_path)}
        home = Path(tmp)
        port = free_port()
        api = start_api(home, folder, port)
        try:
            store = WebhookDeliveries.at(home)
            for workflow_id in (UNWAITED, WAITED):
                wait_until_created(store, ours(port, workflow_id, 5, f"warm-{workflow_id}")[1])
            asyncio.run(baseline(deployment_ids["unwaited"], 5, "warm"))
            quiet = [int(server.pid_file.read_text().split()[0]), api.pid]
            wait_for_quiet(quiet)
            before = asyncio.run(count_runs(list(deployment_ids.values())))
            for rep in range(args.repeat):
                order = ["baseline", "unwaited", "waited"]
                order = order[rep % 3 :] + order[: rep % 3]
                for who in order:
                    started = time.perf_counter()
                    if who == "baseline":
                        latency[who] += asyncio.run(baseline(deployment_ids["unwaited"], args.requests, f"b{rep}"))
                    else:
                        workflow_id = UNWAITED if who == "unwaited" else WAITED
                        took, accepted = ours(port, workflow_id, args.requests, f"{who[0]}{rep}")
                        latency[who] += took
                        named += sum(1 for a in accepted if a["flow_run_id"]) if who == "waited" else 0
                        wait_until_created(store, accepted)
                    bursts[who].append(time.perf_counter() - started)
                    wait_for_quiet(quiet)
            single_base = asyncio.run(baseline(deployment_ids["unwaited"], args.sequential, "sb", concurrent=False))
            wait_for_quiet(quiet)
            single_ours, accepted = ours(port, WAITED, args.sequential, "so", concurrent=False)
            single_named = sum(1 for a in accepted if a["flow_run_id"])
            wait_until_created(store, accepted)
            made = asyncio.run(count_runs(list(deployment_ids.values()))) - before
            expected = (
                3 * args.requests * args.repeat
                + 2 * args.sequential
                - sum(REFUSED.values())
                - sum(BASELINE_FAILED.values())
            )
            if made != expected:
                raise SystemExit(f"expected {expected} new flow runs, found {made}")
        finally:
            api.terminate()
            try:
                api.wait(30)
            except subprocess.TimeoutExpired:
                api.kill()
                api.wait()
        del server

    base_p99, base_burst = percentile(latency["baseline"], 0.99), statistics.median(bursts["baseline"])
    rows: list[dict[str, Any]] = [
        {
            "benchmark": "bare create_flow_run_from_deployment",
            "p50_s": statistics.median(latency["baseline"]),
            "p99_s": base_p99,
            "burst_s": base_burst,
            "ratio": None,
            "target": "",
        },
        {
            "benchmark": "webhook 202, waitForRunSeconds 0",
            "p50_s": statistics.median(latency["unwaited"]),
            "p99_s": percentile(latency["unwaited"], 0.99),
            "burst_s": statistics.median(bursts["unwaited"]),
            "ratio": statistics.median(bursts["unwaited"]) / base_burst,
            "target": "p99 < 0.100",
        },
        {
            "benchmark": "webhook 202, waitForRunSeconds 2",
            "p50_s": statistics.median(latency["waited"]),
            "p99_s": percentile(latency["waited"], 0.99),
            "burst_s": statistics.median(bursts["waited"]),
            "ratio": statistics.median(bursts["waited"]) / base_burst,
            "target": "",
        },
        {
            "benchmark": "one at a time: bare create",
            "p50_s": statistics.median(single_base),
            "p99_s": percentile(single_base, 0.99),
            "burst_s": None,
            "ratio": None,
            "target": "",
        },
        {
            "benchmark": "one at a time: webhook 202 naming its run",
            "p50_s": statistics.median(single_ours),
            "p99_s": percentile(single_ours, 0.99),
            "burst_s": None,
            "ratio": statistics.median(single_ours) / statistics.median(single_base),
            "target": "",
        },
    ]
    waited_total = args.requests * args.repeat
    if args.json:
        print(
            json.dumps(
                {
                    "requests": args.requests,
                    "repeat": args.repeat,
                    "rows": rows,
                    "refused": REFUSED,
                    "baseline_failed": BASELINE_FAILED,
                    "waited_named_run": [named, waited_total],
                    "sequential_named_run": [single_named, args.sequential],
                    "samples": {
                        "latency": latency,
                        "bursts": bursts,
                        "sequential_baseline": single_base,
                        "sequential_ours": single_ours,
                    },
                },
                indent=2,
            )
        )
        return
    print(
        f"{args.requests} concurrent requests, {args.repeat} bursts each (latency over all {waited_total}); "
        f"{args.sequential} one at a time; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(f"{'benchmark':<42} {'p50 s':>8} {'p99 s':>8} {'burst s':>8} {'ratio':>6}  target")
    for row in rows:
        ratio = f"{row['ratio']:.2f}" if row["ratio"] else ""
        burst = f"{row['burst_s']:.2f}" if row["burst_s"] else ""
        print(
            f"{row['benchmark']:<42} {row['p50_s']:>8.4f} {row['p99_s']:>8.4f} {burst:>8} {ratio:>6}  {row['target']}"
        )
    print(
        "burst s: until every run of the burst exists; ratio: burst time over the bare creates' (one at a time: p50 over p50)"
    )
    print(
        f"202s naming their run: {named} of {waited_total} in bursts (waitForRunSeconds 2), "
        f"{single_named} of {args.sequential} one at a time; {made} runs made, one per delivery"
    )
    if REFUSED:
        print("webhook answers other than 202: " + ", ".join(f"{n} x {code}" for code, n in sorted(REFUSED.items())))
    if BASELINE_FAILED:
        print("bare creates failed: " + ", ".join(f"{n} x {code}" for code, n in sorted(BASELINE_FAILED.items())))


if __name__ == "__main__":
    main()
