"""``monitoring.logging`` in a flow-run process a worker started: JSON lines that carry the run, step and agent ids.

A real ``agentparty worker`` (its configuration file sets ``level: info``,
``format: json``) runs a deployed workflow in a process of its own. A task step's
handler and an agent's tool (the keyless simulated model calls it) log through
``agentparty.*`` loggers; the worker passes the flow-run process's output on, and
the test reads the lines from the worker's log: each a JSON object naming the
Prefect flow run, the step and, inside the agent step, the agent. Every line the
flow-run process writes is JSON, Prefect's own included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.deploy_support import flow_runs_of, wait_for, write_definition

from agentparty.deployments.build import deploy_workflows, load_sources
from agentparty.runtime.log_context import ID_FIELDS

pytestmark = pytest.mark.slow

TOOLS = '''
import logging

def stamp(label: str) -> dict:
    logging.getLogger("agentparty.tests.handler").info("stamping %s", label)
    return {"label": label}

def note(topic: str) -> str:
    """Note a topic down."""
    logging.getLogger("agentparty.tests.tool").warning("noting %s", topic)
    return f"noted {topic}"
'''


@pytest.fixture
def worker(prefect_server: str, agentparty_home: Path, workflow_dir: Path, tmp_path: Path) -> Iterator[dict[str, Any]]:
    (workflow_dir / "log_tools.py").write_text(TOOLS)
    config = tmp_path / "sdk.yaml"
    config.write_text(
        yaml.safe_dump({"monitoring": {"logging": {"level": "info", "format": "json", "structured": True}}})
    )
    pool = f"logs-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_LOGGING_LEVEL": "INFO",  # Prefect's run lines too ("Beginning flow run", "Finished in state")
        "AGENTPARTY_HOME": str(agentparty_home),
        "AGENTPARTY_SDK_CONFIG": str(config),
        "AGENTPARTY_TOOL_MODULES": "log_tools",
        "AGENTPARTY_GRAPH": "off",
        "AGENTPARTY_EVENTS": "off",
    }
    command = str(Path(sys.executable).with_name("agentparty"))
    process = subprocess.Popen(
        [command, "worker", "--pool", pool, "--limit", "1"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield {"pool": pool, "log": log}
    finally:
        process.terminate()
        process.wait(timeout=30)


def definition() -> dict[str, Any]:
    return {
        "id": "logging-run",
        "name": "Logging Run",
        "triggers": [{"type": "manual"}],
        "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
        "steps": [
            {
                "id": "stamp",
                "type": "task",
                "configuration": {"handler": "log_tools:stamp"},
                "inputs": {"label": "first"},
            },
            {
                "id": "ask",
                "type": "task",
                "configuration": {
                    "agent": "noter",
                    "prompt": "Note the topic structured logging",
                    "tools": ["log_tools:note"],
                    "maxTurns": 4,
                },
            },
        ],
    }


def lines_of(log: Path) -> list[dict[str, Any]]:
    found = []
    for raw in log.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            try:
                found.append(json.loads(raw))
            except ValueError:
                continue
    return found


@pytest.mark.timeout(300)
def test_json_lines_from_a_flow_run_process_carry_the_run_step_and_agent_ids(
    worker: dict[str, Any], workflow_dir: Path
) -> None:
    from prefect.deployments import run_deployment

    write_definition(workflow_dir, definition())
    (deployment,) = deploy_workflows(load_sources([workflow_dir]), work_pool=worker["pool"])
    run_deployment("Logging Run/logging-run", parameters={"inputs": {}}, timeout=0)
    runs = wait_for(
        lambda: (
            [r for r in flow_runs_of(deployment.deployment_id) if r.state is not None and r.state.is_final()] or None
        ),
        240,
        "the flow run to finish",
    )
    (run,) = runs
    assert run.state.is_completed(), run.state
    run_id = str(run.id)

    lines = lines_of(worker["log"])
    (handler,) = [line for line in lines if line["logger"] == "agentparty.tests.handler"]
    assert handler["message"] == "stamping first" and handler["level"] == "info", "level info lets info through"
    assert (handler["run_id"], handler["step_id"], handler["agent_id"]) == (run_id, "stamp", None)

    tool = [line for line in lines if line["logger"] == "agentparty.tests.tool"]
    assert tool, "the simulated model called the tool"
    for line in tool:
        assert (line["run_id"], line["step_id"]) == (run_id, "ask")
        assert line["agent_id"], "inside the agent step a line names its agent"
    for line in lines:
        assert set(ID_FIELDS) <= set(line), f"every structured line has every id field: {line}"
    from_the_run = [line for line in lines if line["run_id"] == run_id]
    assert any(line["logger"].startswith("prefect.") for line in from_the_run), "Prefect's run lines are JSON too"
