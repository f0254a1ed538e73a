"""PostgreSQL restarted in the middle of a run: the run goes on, and no budget reservation or delivery is lost.

The run's process keeps a connection pool to the state database; the restart
breaks every connection in it. The pool checks a connection before lending it
(``runtime/state_backend.py``), so the calls after the restart open new ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from agentparty.runtime.budgets import Budget, BudgetLedger
from agentparty.runtime.local_service import free_port
from agentparty.runtime.postgres_server import LocalPostgres
from agentparty.runtime.state_backend import PostgresBackend
from agentparty.runtime.webhook_deliveries import WebhookDeliveries

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

TESTS = Path(__file__).resolve().parents[2]
LIMIT = 1_000_000


@pytest.fixture
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPostgres]:
    """A cluster of this test's own: the session's must not be restarted under other tests."""
    cluster = LocalPostgres(tmp_path_factory.mktemp("restarted-postgres"), preferred_port=free_port())
    cluster.start()
    cluster.ensure_database("state")
    try:
        yield cluster
    finally:
        cluster.remove()


def _definition(folder: Path) -> Path:
    started, flag = folder / "started", folder / "release"
    agent = {"agent": "analyst", "model": "simulated", "prompt": "Summarise the day."}
    doc = {
        "id": "restart-survivor",
        "name": "Restart survivor",
        "steps": [
            {"id": "before", "type": "task", "configuration": agent},
            {
                "id": "wait",
                "type": "task",
                "configuration": {"handler": "support.step_handlers:block_until", "dependsOn": ["before"]},
                "inputs": {"path": str(started), "flag": str(flag)},
            },
            {"id": "after", "type": "task", "configuration": {**agent, "dependsOn": ["wait"]}},
        ],
        "triggers": [{"type": "manual"}],
        "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
    }
    path = folder / "restart.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_run_goes_on_after_postgres_restarts(tmp_path: Path, restartable: LocalPostgres, prefect_server: str) -> None:
    url = restartable.url("state", driver="postgresql")
    deliveries = WebhookDeliveries(PostgresBackend(url))
    queued = deliveries.accept("restart-survivor", "delivery-1", "Restart survivor/restart-survivor", {})
    path = _definition(tmp_path)
    script = textwrap.dedent(f"""
        import asyncio, json
        from agentparty.flows import compile_workflow
        from agentparty.runtime.documents import load_workflow
        flow = compile_workflow(load_workflow({str(path)!r}), source={str(path)!r})
        result = asyncio.run(flow())
        print(json.dumps({{name: step.status.value for name, step in result.steps.items()}}))
    """)
    env = {
        **os.environ,
        "PYTHONPATH": str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "PREFECT_API_URL": prefect_server,
        "AGENTPARTY_HOME": str(tmp_path / "home"),
        "AGENTPARTY_STATE_DB_URL": url,
        "AGENTPARTY_USER_ID": "restart-user",
        "AGENTPARTY_USER_TOKEN_BUDGET": str(LIMIT),
        "AGENTPARTY_GRAPH": "off",
        "AGENTPARTY_EVENTS": "off",
    }
    run = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while not (tmp_path / "started").exists():
        assert run.poll() is None, run.stderr.read().decode()[-3000:] if run.stderr else ""
        assert time.monotonic() < deadline, "the run never reached its waiting step"
        time.sleep(0.1)
    ledger = BudgetLedger(PostgresBackend(url))
    before = ledger.usage(Budget("user", "restart-user", LIMIT))
    assert before.used > 0 and before.reserved == 0, "the first agent step charged the user's budget"

    restartable.stop()  # every connection of the run's pool breaks
    restartable.start()
    (tmp_path / "release").write_text("go")
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err.decode()[-3000:]
    statuses = json.loads(out.decode().strip().splitlines()[-1])
    assert statuses == {"before": "completed", "wait": "completed", "after": "completed"}

    after = BudgetLedger(PostgresBackend(url)).usage(Budget("user", "restart-user", LIMIT))
    assert after.used > before.used, "the step after the restart charged the budget too"
    assert after.reserved == 0, "no reservation was left behind"
    kept = WebhookDeliveries(PostgresBackend(url)).recent("restart-survivor")
    assert [d.delivery_id for d in kept] == [queued.delivery.delivery_id], "the queued delivery survived the restart"
