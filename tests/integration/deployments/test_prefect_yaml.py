"""`prefect deploy --all` with the committed prefect.yaml matches `agentparty deploy`, on the session's Prefect server.

That the committed file is current (generated from the examples) is the unit half:
``tests/unit/deployments/test_prefect_yaml.py``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentparty.deployments.build import ensure_work_pool, load_sources, runner_deployment

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_prefect_deploy_all_creates_the_same_deployments(prefect_server: str, examples_dir: Path) -> None:
    from prefect.client.orchestration import get_client

    ensure_work_pool("agentparty")
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "AGENTPARTY_WORKFLOWS": "examples", "PWD": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", "prefect.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    async def read(name: str) -> Any:
        async with get_client() as client:
            return await client.read_deployment_by_name(name)

    for definition, source in load_sources([examples_dir]):
        expected = runner_deployment(definition, source)
        deployed = asyncio.run(read(f"{expected.flow_name}/{expected.name}"))
        assert deployed.entrypoint == expected.entrypoint
        schema = expected._parameter_openapi_schema.model_dump_for_openapi()
        assert {k: v for k, v in deployed.parameter_openapi_schema.items() if v} == {
            k: v for k, v in schema.items() if v
        }
        assert deployed.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}]
        assert deployed.job_variables == {"env": {"AGENTPARTY_WORKFLOWS": "examples"}}
        assert [(s.schedule.cron, s.schedule.timezone) for s in deployed.schedules] == [
            (s.schedule.cron, s.schedule.timezone) for s in expected.schedules
        ]
    training = asyncio.run(read("train-gnn/scheduled"))
    assert training.entrypoint == "agentparty.flows.train_gnn.train_gnn"
    assert [s.schedule.cron for s in training.schedules] == ["0 2 * * *"]
