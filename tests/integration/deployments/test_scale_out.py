"""Two `agentparty worker` processes on one pool: runs spread over both; rate limits, budgets and breakers hold across them."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.deploy_support import flow_runs_of, stamp_workflow, wait_for, write_definition

from agentparty.deployments.build import deploy_workflows, load_sources
from agentparty.runtime.budgets import Budget, BudgetLedger
from agentparty.runtime.local_service import free_port
from agentparty.runtime.postgres_server import LocalPostgres
from agentparty.runtime.prefect_database import PrefectDatabase
from agentparty.runtime.prefect_server import LocalPrefectServer

pytestmark = pytest.mark.slow
RUNS = 20
USER_BUDGET = 1500
LIMITED_MODEL = "simulated-large"
LIMITED_RUNS = 8
BURST = 3
RATE_LIMIT = {"provider": "simulated", "requests_per_minute": 1, "burst_limit": BURST, "penalty_strategy": "reject"}
"""The workers' only rate limit: three calls at once, then one a minute, refused beyond that."""


@pytest.fixture
def prefect_on_postgres(postgres_cluster: LocalPostgres, tmp_path: Path) -> Iterator[str]:
    """A Prefect server of this test's own on PostgreSQL (``agentparty up --state-db postgres``'s setup), made the
    API of this process too; its URL.

    Two workers with eight flow-run processes between them are the load Prefect's SQLite server answers with 503s
    and minute-long stalls while it waits for its write lock (seen here: a run creation refused, runs stuck a
    minute); several workers on one pool is what the PostgreSQL server is for (README "Beyond one machine").
    """
    from prefect.context import _temporary_global_settings_context, get_settings_context
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = LocalPrefectServer(
        tmp_path / "prefect-home", port=free_port(), database=PrefectDatabase(cluster=postgres_cluster)
    )
    server.start()
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with (
            temporary_settings(updates={PREFECT_API_URL: server.api_url}),
            _temporary_global_settings_context(get_settings_context()),
        ):
            yield server.api_url
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous
        server.stop()


@pytest.fixture
def two_workers(prefect_on_postgres: str, agentparty_home: Path, tmp_path: Path) -> Iterator[dict[str, Any]]:
    pool = f"scale-{uuid.uuid4().hex[:8]}"
    user = f"scale-user-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_on_postgres,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "AGENTPARTY_HOME": str(agentparty_home),
        "AGENTPARTY_USER_ID": user,
        "AGENTPARTY_USER_TOKEN_BUDGET": str(USER_BUDGET),
        "AGENTPARTY_GRAPH": "off",
        "AGENTPARTY_EVENTS": "off",
        "AGENTPARTY_AGENT_RUNTIME": json.dumps({"models": {LIMITED_MODEL: RATE_LIMIT}}),
    }
    command = str(Path(sys.executable).with_name("agentparty"))
    workers = [
        subprocess.Popen(
            [command, "worker", "--pool", pool, "--limit", "4", "--name", f"worker-{i}"],
            env=env,
            stdout=(tmp_path / f"worker-{i}.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for i in range(2)
    ]
    try:
        yield {"pool": pool, "user": user, "pids": {w.pid for w in workers}, "home": agentparty_home}
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)


def _small_template(home: Path) -> str:
    """A published template on the rate-limited model whose calls reserve little of the user budget
    (an ad-hoc agent reserves ~550 tokens a call: eight at once would be refused by the budget first)."""
    from agentparty.models.api import CreateAgentTemplateRequest
    from agentparty.tasks.templates import TemplateRegistry

    name = f"scale-limited-{uuid.uuid4().hex[:6]}"
    templates = TemplateRegistry.at(home)
    templates.create(
        CreateAgentTemplateRequest(
            name=name,
            description="Answers in a few words",
            model=LIMITED_MODEL,
            parameters={"max_tokens": 16},
            personality="terse",
            capabilities=["summarisation"],
            approval_required=False,
            governance_rules={"transitions": {}},
        )
    )
    templates.publish(name, "1.0.0")
    return name


def _submit(name: str, inputs: dict[str, Any]) -> Any:
    from prefect.deployments import run_deployment

    return run_deployment(name, parameters={"inputs": inputs}, timeout=0)


def _finished(deployment_id: str, expected: int) -> list[Any] | None:
    runs = flow_runs_of(deployment_id)
    done = [r for r in runs if r.state is not None and r.state.is_final()]
    return done if len(done) == expected else None


def _result(run: Any) -> Any:
    """The run's WorkflowResult, read back from the persisted result (a failed run persisted WorkflowFailed)."""
    from agentparty.models.run_results import WorkflowFailed

    value = asyncio.run(run.state.aresult(raise_on_failure=False))
    return value.result if isinstance(value, WorkflowFailed) else value


@pytest.mark.timeout(900)
def test_two_workers_share_the_runs_the_budget_and_the_breaker(two_workers: dict[str, Any], workflow_dir: Path) -> None:
    work = stamp_workflow(
        "scale-work",
        [{"type": "manual"}],
        errorHandling={"retryAttempts": 0, "backoffStrategy": "fixed", "fallbackAction": "abort"},
    )
    work["steps"].append(
        {
            "id": "ask",
            "type": "task",
            "configuration": {"agent": "scaler", "model": "simulated", "prompt": "Summarise run ${inputs.label}"},
        }
    )
    write_definition(workflow_dir, work)
    flaky = {
        "id": "scale-flaky",
        "name": "Scale flaky",
        "inputs": {"log": {"type": "string"}},
        "steps": [
            {
                "id": "call",
                "type": "task",
                "configuration": {"handler": "deploy_handlers:always_fails"},
                "inputs": {"log": "${inputs.log}"},
            }
        ],
        "triggers": [{"type": "manual"}],
        "errorHandling": {
            "retryAttempts": 0,
            "backoffStrategy": "fixed",
            "fallbackAction": "abort",
            "circuitBreaker": {"failureThreshold": 3, "recoveryTimeout": 600, "halfOpenMaxCalls": 1},
        },
    }
    write_definition(workflow_dir, flaky)
    limited = stamp_workflow(
        "scale-limited",
        [{"type": "manual"}],
        errorHandling={"retryAttempts": 0, "backoffStrategy": "fixed", "fallbackAction": "abort"},
    )
    limited["steps"].append(
        {
            "id": "ask",
            "type": "task",
            "configuration": {"agent": _small_template(two_workers["home"]), "prompt": "Summarise ${inputs.label}"},
        }
    )
    write_definition(workflow_dir, limited)
    deployed = {d.workflow_id: d for d in deploy_workflows(load_sources([workflow_dir]), work_pool=two_workers["pool"])}

    # one rate limit across both workers: the burst is shared, so only BURST calls (and what decays back
    # meanwhile, one a minute) get through, where two per-process limits would have let 2 x BURST through
    started = time.monotonic()
    for i in range(LIMITED_RUNS):
        _submit("Scale Limited/scale-limited", {"label": f"limited-{i}", "sleep": 1.5})
    limited_runs = wait_for(
        lambda: _finished(deployed["scale-limited"].deployment_id, LIMITED_RUNS), 600, "rate-limited runs", interval=1
    )
    elapsed = time.monotonic() - started
    limited_results = [_result(run) for run in limited_runs]
    admitted = [r for r in limited_results if r.status.value == "completed"]
    limited_out = [r for r in limited_results if r.status.value == "failed"]
    print(f"rate-limited: {len(admitted)} of {LIMITED_RUNS} calls admitted in {elapsed:.0f} s across both workers")
    assert {r.steps["stamp"].output["worker_pid"] for r in limited_results} == two_workers["pids"]
    assert 1 <= len(admitted) <= BURST + math.ceil(elapsed / 60), (len(admitted), elapsed)
    assert len(admitted) + len(limited_out) == LIMITED_RUNS
    assert all("rate limit reached" in (r.steps["ask"].reason or "") for r in limited_out)

    for i in range(RUNS):
        _submit("Scale Work/scale-work", {"label": f"run-{i}", "sleep": 1.5})
    runs = wait_for(
        lambda: _finished(deployed["scale-work"].deployment_id, RUNS), 600, f"{RUNS} finished runs", interval=1
    )
    for run in sorted(runs, key=lambda r: r.start_time):
        print(
            f"{run.name}: started {run.start_time:%H:%M:%S} after {run.estimated_start_time_delta}, "
            f"ran {run.total_run_time}, attempts {run.run_count}"
        )

    crashed = [f"{run.name}: {run.state.message}" for run in runs if run.state.is_crashed()]
    assert not crashed, crashed
    results = [_result(run) for run in runs]
    completed = [r for r in results if r.status.value == "completed"]
    refused = [r for r in results if r.status.value == "failed"]
    assert len(completed) + len(refused) == RUNS
    stamps = [r.steps["stamp"].output for r in results]
    # both workers started runs, and runs overlapped in time across them
    assert {s["worker_pid"] for s in stamps} == two_workers["pids"]
    by_worker = {pid: [s for s in stamps if s["worker_pid"] == pid] for pid in two_workers["pids"]}
    a, b = by_worker.values()
    assert any(x["started"] < y["ended"] and y["started"] < x["ended"] for x in a for y in b)
    # one user budget across both workers (the rate-limited calls that got through spent from it too):
    # never overspent, and the runs past it were refused before calling
    used = BudgetLedger(two_workers["home"] / "state" / "budgets.sqlite").usage(
        Budget("user", two_workers["user"], USER_BUDGET)
    )
    assert used.used == sum(r.tokens for r in [*completed, *admitted]) <= USER_BUDGET
    assert completed and refused
    assert all("user budget" in (r.steps["ask"].reason or "") for r in refused)

    # one circuit breaker across both workers: three failures open it, the later runs fail fast without calling
    # (one run at a time, so that the count is exact; whichever worker takes a run reads the shared state)
    log = workflow_dir / "calls.log"
    for n in range(1, 5):
        _submit("Scale flaky/scale-flaky", {"log": str(log)})
        wait_for(lambda n=n: _finished(deployed["scale-flaky"].deployment_id, n), 120, f"flaky run {n}", interval=0.5)
    flaky_runs = flow_runs_of(deployed["scale-flaky"].deployment_id)
    assert all(run.state.is_failed() for run in flaky_runs)
    reasons = [_result(run).steps["call"].reason or "" for run in flaky_runs]
    assert len(log.read_text().splitlines()) == 3
    assert sum("circuit" in reason.lower() for reason in reasons) == 1
