"""Beyond one machine: run creation on a SQLite-backed against a PostgreSQL-backed Prefect server, and the
engine's budget and breaker operations on SQLite against PostgreSQL, in the same run on the same machine.

    python bench/scale.py [--json] [--requests N] [--repeat R] [--concurrency 2,4,16] [--seconds S]
                          [--sections a,b,c] [--runs R] [--limit L] [--step-seconds S]

(a) Flow runs created per second through the webhook path. For each arm a
    throwaway local Prefect server is started (``runtime/prefect_server.py``):
    on SQLite under a temporary home, or on a temporary PostgreSQL cluster
    (``runtime/postgres_server.py``, database ``prefect``), as ``agentparty up
    --state-db postgres`` runs it. A workflow with a webhook trigger
    (``waitForRunSeconds: 0``) is deployed and ``agentparty api`` runs as its
    own process; N signed posts are released at once and the burst lasts until
    the last of their N flow runs exists in Prefect. The API's dispatcher keeps
    ``AGENTPARTY_API_PREFECT_CONCURRENCY`` creates in flight (the concurrency
    column; the API is restarted for each level). The "client" rows make the
    same N runs with ``create_flow_run_from_deployment`` from a Prefect client
    in this process, as many in flight: the server alone, without the API. Only Prefect's database
    differs between the arms: the API's own delivery store stays SQLite in both,
    so the figure is Prefect's. CPU is read from ``/proc/<pid>/stat`` (user +
    system, with reaped children) over each burst: the Prefect server's process
    tree, the PostgreSQL cluster's (the database work SQLite does inside the
    server) and the API's; "busy" is all three (plus this load generator) over
    wall time and the machine's cores, so near 100% the cores cap the figure.
    Each arm runs in a process of its own: Prefect reads its API URL once.
    The late-runs service is off, as in ``bench/webhooks.py`` (no worker runs them).

(c) Budget and breaker operations per second: ``BudgetLedger`` reserve + settle
    of one call on two budgets (its run's and its user's), and a breaker's
    ``record_failure`` (a locked read-modify-write of one record), for S seconds,
    on ``SqliteBackend`` (one file, ``BEGIN IMMEDIATE``; WAL with
    ``synchronous=NORMAL``) and ``PostgresBackend`` (row locks; the cluster's
    defaults, so every commit is flushed; and again with ``synchronous_commit =
    off``, which is what SQLite's setting risks: the last commits on an OS crash),
    from one process and from 4 processes on the same budget and breaker (the
    contended case) or on one each.

(b) Completed 10-step runs per minute with one ``agentparty worker`` against two
    (``bench/_scale_workers.py``): a PostgreSQL-backed server, engine state in the
    same cluster, R runs of a 10-step workflow whose steps wait ``--step-seconds``,
    each worker at ``--limit`` runs at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg

from agentparty.runtime.local_service import free_port
from agentparty.runtime.postgres_server import LocalPostgres
from agentparty.runtime.prefect_database import PrefectDatabase
from agentparty.runtime.prefect_server import LocalPrefectServer

TICK = os.sysconf("SC_CLK_TCK")
MULTI_API = 2
MULTI_API_ARM = f"postgresql-{MULTI_API}api"
"""The third arm: Prefect's multi-process server (``bench/_prefect_ha.py``), one API process per core here."""


def hooks() -> Any:
    """``bench/webhooks.py``, imported only once an arm's server address is in the environment: Prefect reads
    its settings at import."""
    import webhooks

    return webhooks


def tree_cpu(root: int) -> float:
    """CPU seconds of a process and all its live descendants, each with its reaped children's (PostgreSQL's
    backends start trees of their own, so a session is not enough)."""
    parents: dict[int, int] = {}
    cpu: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid], cpu[pid] = int(fields[1]), sum(int(f) for f in fields[11:15])
    total = 0
    for pid, ticks in cpu.items():
        ancestor = pid
        while ancestor > 1 and ancestor != root:
            ancestor = parents.get(ancestor, 0)
        if ancestor == root:
            total += ticks
    return total / TICK


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def count_runs(deployment_id: str) -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async with get_client() as client:
        ids = DeploymentFilterId(any_=[uuid.UUID(deployment_id)])
        return await client.count_flow_runs(deployment_filter=DeploymentFilter(id=ids))


def wait_for_runs(deployment_id: str, expected: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while (made := asyncio.run(count_runs(deployment_id))) < expected:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {made} of {expected} flow runs exist after {timeout:.0f} s")
        time.sleep(0.1)


def burst(send: Callable[[], int], deployment_id: str, trees: dict[str, int]) -> dict[str, Any]:
    """``send()`` asks for runs (returns how many); until they exist: the time, and CPU by process tree."""
    before_runs = asyncio.run(count_runs(deployment_id))
    cpu_before = {name: tree_cpu(pid) for name, pid in trees.items()}
    load_before, started = own_cpu(), time.perf_counter()
    runs = send()
    wait_for_runs(deployment_id, before_runs + runs)
    wall = time.perf_counter() - started
    cpu = {name: tree_cpu(pid) - cpu_before[name] for name, pid in trees.items()}
    cpu["load generator"] = own_cpu() - load_before
    return {"runs": runs, "wall_s": wall, "cpu_s": cpu}


def senders(port: int, deployment_id: str, n: int, tag: str) -> dict[str, Callable[[], int]]:
    """The webhook path (N signed posts at once to the API), and the same creates from a Prefect client here
    (N ``create_flow_run_from_deployment`` at once, as many in flight as the API allows: the server alone)."""

    def webhook() -> int:
        return len(hooks().ours(port, hooks().UNWAITED, n, tag)[1])

    def client() -> int:
        failed = sum(hooks().BASELINE_FAILED.values())
        asyncio.run(hooks().baseline(deployment_id, n, tag))
        return n - (sum(hooks().BASELINE_FAILED.values()) - failed)

    return {"webhook": webhook, "client": client}


def run_arm(arm: str, requests: int, repeat: int, levels: list[int]) -> list[dict[str, Any]]:
    """One server (SQLite, PostgreSQL, or PostgreSQL with ``MULTI_API`` API processes), one deployment, the API
    at each concurrency level: bursts."""
    os.environ["PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED"] = "false"
    rows = []
    with tempfile.TemporaryDirectory(prefix=f"agentparty-scale-{arm}-") as tmp:
        home = Path(tmp)
        cluster = LocalPostgres(home / "pg", preferred_port=free_port()) if arm != "sqlite" else None
        try:
            with _server(arm, home, cluster) as trees:
                if cluster is not None:
                    trees["postgresql"] = int(cluster.pid_file.read_text())
                folder = home / "workflows"
                folder.mkdir()
                deployment_id = hooks().deploy(hooks().write_workflows(folder)[0])
                for level in levels:
                    rows.extend(_level(arm, home, folder, trees, deployment_id, level, requests, repeat))
        finally:
            if cluster is not None:
                cluster.remove()
    return rows


@contextlib.contextmanager
def _server(arm: str, home: Path, cluster: LocalPostgres | None) -> Iterator[dict[str, int]]:
    """The arm's Prefect server, made this process's API; the process trees whose CPU counts as the server's."""
    if arm == MULTI_API_ARM:
        from _prefect_ha import multi_process_server

        assert cluster is not None
        with multi_process_server(home / "prefect-home", cluster, MULTI_API) as multi:
            os.environ.update(multi.client_env(home / "prefect-home"))
            yield dict(multi.pids)
        return
    server = LocalPrefectServer(
        home / "prefect-home", port=free_port(), database=PrefectDatabase(cluster=cluster) if cluster else None
    )
    try:
        server.start()
        os.environ.update(server.client_env())
        yield {"prefect server": int(server.pid_file.read_text())}
    finally:
        server.stop()


def _level(
    arm: str,
    home: Path,
    folder: Path,
    servers: dict[str, int],
    deployment_id: str,
    level: int,
    requests: int,
    repeat: int,
) -> list[dict[str, Any]]:
    os.environ["AGENTPARTY_API_PREFECT_CONCURRENCY"] = str(level)
    api_home = home / f"api-{level}"
    api_home.mkdir()
    port = free_port()
    api = hooks().start_api(api_home, folder, port)
    try:
        trees = {**servers, "api": api.pid}
        bursts: dict[str, list[dict[str, Any]]] = {"webhook": [], "client": []}
        for send in senders(port, deployment_id, 10, f"warm-{level}").values():
            burst(send, deployment_id, trees)
        for rep in range(repeat):
            for path, send in senders(port, deployment_id, requests, f"c{level}-{rep}").items():
                hooks().wait_for_quiet(list(trees.values()))
                bursts[path].append(burst(send, deployment_id, trees))
    finally:
        api.terminate()
        try:
            api.wait(30)
        except subprocess.TimeoutExpired:
            api.kill()
            api.wait()
    return [_row(arm, path, level, done) for path, done in bursts.items()]


def _row(arm: str, path: str, level: int, bursts: list[dict[str, Any]]) -> dict[str, Any]:
    runs = sum(b["runs"] for b in bursts)
    if not runs:
        raise SystemExit(f"no run was made by the {path} path: refused {hooks().REFUSED}")
    wall = sum(b["wall_s"] for b in bursts)
    cpu = {name: sum(b["cpu_s"][name] for b in bursts) for name in bursts[0]["cpu_s"]}
    return {
        "arm": arm,
        "path": path,
        "concurrency": level,
        "runs": runs,
        "runs_per_s": statistics.median(b["runs"] / b["wall_s"] for b in bursts),
        "server_cpu_ms_per_run": 1000
        * sum(v for k, v in cpu.items() if k.startswith("prefect") or k == "redis")
        / runs,
        "postgres_cpu_ms_per_run": 1000 * cpu.get("postgresql", 0.0) / runs,
        "api_cpu_ms_per_run": 1000 * cpu["api"] / runs,
        "busy": sum(cpu.values()) / wall / (os.cpu_count() or 1),
        "refused": dict(hooks().REFUSED),
        "client_failed": dict(hooks().BASELINE_FAILED),
    }


def section_a(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each arm in a child process of its own (``--arm``), SQLite first."""
    rows: list[dict[str, Any]] = []
    from _prefect_ha import missing

    absent = missing()
    for arm in ("sqlite", "postgresql", MULTI_API_ARM):
        if arm == MULTI_API_ARM and absent:
            print(f"the {arm} arm is left out: it needs {absent}", file=sys.stderr)
            continue
        command = [sys.executable, __file__, "--arm", arm, "--requests", str(args.requests)]
        command += ["--repeat", str(args.repeat), "--concurrency", args.concurrency]
        ran = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        if ran.returncode != 0:
            raise SystemExit(f"the {arm} arm failed:\n{ran.stdout[-4000:]}\n{ran.stderr[-4000:]}")
        rows += json.loads(ran.stdout.strip().splitlines()[-1])
    return rows


# (c) budget and breaker operations


def _backend(kind: str, where: str) -> Any:
    from agentparty.runtime.state_backend import PostgresBackend, SqliteBackend

    return SqliteBackend(Path(where)) if kind == "sqlite" else PostgresBackend(where)


def _operation(kind: str, where: str, op: str, key: str) -> Callable[[], None]:
    from agentparty.models import CircuitBreakerConfig
    from agentparty.runtime.breakers import CircuitBreaker, SharedBreakerStore
    from agentparty.runtime.budgets import Budget, BudgetLedger

    backend = _backend(kind, where)
    if op == "budget":
        ledger = BudgetLedger(backend)
        budgets = [Budget("task", f"run-{key}", 10**15), Budget("user", f"user-{key}", 10**15)]

        def call() -> None:
            ledger.settle(ledger.reserve(budgets, 700), budgets, 650)

        return call
    config = CircuitBreakerConfig(failure_threshold=10**9, recovery_timeout=60)
    breaker = CircuitBreaker(f"model:{key}", config, SharedBreakerStore(backend))
    return breaker.record_failure


def _worker(kind: str, where: str, op: str, key: str, seconds: float, ready: Any, go: Any, out: Any) -> None:
    call = _operation(kind, where, op, key)
    call()  # connected, migrated, warm
    ready.put(None)
    go.wait()
    done, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        call()
        done += 1
    out.put(done)


def ops_per_second(kind: str, where: str, op: str, processes: int, shared: bool, seconds: float) -> float:
    context = multiprocessing.get_context("spawn")
    ready, out, go = context.Queue(), context.Queue(), context.Event()
    workers = [
        context.Process(
            target=_worker, args=(kind, where, op, "shared" if shared else f"p{i}", seconds, ready, go, out)
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.get(timeout=120)
    go.set()
    total = sum(out.get(timeout=seconds + 120) for _ in workers)
    for worker in workers:
        worker.join(30)
    return total / seconds


def section_c(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="agentparty-scale-state-") as tmp:
        cluster = LocalPostgres(Path(tmp) / "pg", preferred_port=free_port())
        cluster.start()
        try:
            for name in ("bench", "bench_async"):
                cluster.ensure_database(name)
            with psycopg.connect(cluster.url("postgres", driver="postgresql"), autocommit=True) as db:
                db.execute("ALTER DATABASE bench_async SET synchronous_commit = off")
            places = {
                "sqlite": str(Path(tmp) / "state"),
                "postgresql": cluster.url("bench", driver="postgresql"),
                "postgresql_async": cluster.url("bench_async", driver="postgresql"),
            }
            for op in ("budget", "breaker"):
                for processes, shared in ((1, True), (4, True), (4, False)):
                    row: dict[str, Any] = {"operation": op, "processes": processes, "same_key": shared}
                    for kind, where in places.items():
                        row[kind] = ops_per_second(kind, where, op, processes, shared, args.seconds)
                    rows.append(row)
        finally:
            cluster.remove()
    return rows


def print_b(b_rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"\n(b) completed 10-step runs per minute: {args.runs} runs at once, steps of {args.step_seconds:g} s, "
        f"each worker --limit {args.limit}"
    )
    print(f"{'workers':>7} {'runs/min':>9} {'wall s':>7} {'floor s':>7} {'busy':>5} {'CPU s/run':>9} {'failed':>6}")
    for r in b_rows:
        print(
            f"{r['workers']:>7} {r['runs_per_min']:>9.1f} {r['wall_s']:>7.1f} {r['floor_s']:>7.1f} {r['busy']:>5.0%} "
            f"{r['cpu_s_per_run']:>9.1f} {r['failed']:>6}"
        )
    one = statistics.median(r["runs_per_min"] for r in b_rows if r["workers"] == 1)
    two = statistics.median(r["runs_per_min"] for r in b_rows if r["workers"] == 2)
    print(f"two workers over one: {two / one:.2f}x (medians); floor: the steps' waits alone at the workers' limits")
    print("CPU s/run: the whole machine's CPU over the burst per completed run (busy near 100%: the cores cap it)")


def print_tables(a_rows: list[dict[str, Any]], c_rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if a_rows:
        print(
            f"\n(a) flow runs created per second through the webhook path: {args.requests} posts at once, "
            f"{args.repeat} bursts per row (median); CPU ms per created run"
        )
        header = f"{'Prefect database':<17} {'path':<8} {'concurrency':>11} {'runs/s':>7} {'server':>7} {'postgres':>8}"
        print(header + f" {'api':>6} {'busy':>5}")
        for r in a_rows:
            print(
                f"{r['arm']:<17} {r['path']:<8} {r['concurrency']:>11} {r['runs_per_s']:>7.1f} "
                f"{r['server_cpu_ms_per_run']:>7.1f} {r['postgres_cpu_ms_per_run']:>8.1f} "
                f"{r['api_cpu_ms_per_run']:>6.1f} {r['busy']:>5.0%}"
            )
        for path in ("webhook", "client"):
            best = {r["arm"]: max(q["runs_per_s"] for q in a_rows if q["arm"] == r["arm"] and q["path"] == path)
                    for r in a_rows}  # fmt: skip
            for arm in (a for a in best if a != "sqlite"):
                print(f"{path}: best {arm} over best sqlite {best[arm] / best['sqlite']:.2f}x (target >= 3x)")
        print("busy: CPU of the server, PostgreSQL, the API and this load generator over wall time and all cores")
        refused = {k: v for r in a_rows for k, v in {**r["refused"], **r["client_failed"]}.items()}
        if refused:
            print(f"refused posts or failed creates, by status: {refused}")
    if c_rows:
        print(f"\n(c) budget and breaker operations per second, {args.seconds:.0f} s each")
        print(f"{'operation':<36} {'processes':>9} {'key':>4} {'SQLite':>7} {'PostgreSQL':>10} {'PG async':>8}")
        names = {"budget": "budget reserve + settle (2 budgets)", "breaker": "breaker record_failure"}
        for r in c_rows:
            key = "same" if r["same_key"] else "own"
            print(
                f"{names[r['operation']]:<36} {r['processes']:>9} {key:>4} {r['sqlite']:>7.0f} "
                f"{r['postgresql']:>10.0f} {r['postgresql_async']:>8.0f}"
            )
        print(
            "key: every process on the same budget and breaker, or one each; PG async: synchronous_commit off, "
            "the durability of SQLite's WAL with synchronous=NORMAL (a crash of the OS may lose the last commits)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--concurrency", default="2,4,16", help="the API's creates in flight, comma-separated")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sections", default="a,b,c")
    parser.add_argument("--runs", type=int, default=16, help="(b): runs created at once")
    parser.add_argument("--limit", type=int, default=4, help="(b): each worker's --limit")
    parser.add_argument("--step-seconds", type=float, default=0.5, help="(b): what each of the 10 steps waits")
    parser.add_argument("--arm", choices=["sqlite", "postgresql", MULTI_API_ARM], help=argparse.SUPPRESS)
    args = parser.parse_args()
    levels = [int(level) for level in args.concurrency.split(",")]
    if args.arm:
        print(json.dumps(run_arm(args.arm, args.requests, args.repeat, levels)))
        return
    sections = set(args.sections.split(","))
    a_rows = section_a(args) if "a" in sections else []
    b_rows: list[dict[str, Any]] = []
    if "b" in sections:
        from _scale_workers import section_b

        b_rows = section_b(args.runs, args.limit, args.step_seconds, args.repeat)
    c_rows = section_c(args) if "c" in sections else []
    if args.json:
        print(json.dumps({"a": a_rows, "b": b_rows, "c": c_rows}, indent=2))
        return
    print_tables(a_rows, c_rows, args)
    if b_rows:
        print_b(b_rows, args)


if __name__ == "__main__":
    main()
