"""Compiled workflows run from a deployment: a real runner process serves one on the session's Prefect server
and its flow run re-imports the module-level entrypoint.

Entrypoint names and rebuilding a flow from the search path are the unit half:
``tests/unit/flows/test_deployed.py``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from agentparty.flows import deployed


def _write_definition(directory: Path, workflow_id: str, name: str) -> Path:
    doc = {
        "id": workflow_id,
        "name": name,
        "inputs": {"topic": {"type": "string"}},
        "steps": [
            {
                "id": "echo",
                "type": "task",
                "configuration": {"handler": "handlers:echo"},
                "inputs": {"text": "${inputs.topic}"},
            }
        ],
        "triggers": [{"type": "manual"}],
    }
    (directory / "handlers.py").write_text("def echo(text):\n    return {'echo': text}\n")
    path = directory / f"{workflow_id}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.slow
def test_served_deployment_runs_the_workflow(tmp_path: Path, prefect_server: str) -> None:
    """A real runner process serves the deployment; its flow run re-imports the entrypoint."""
    from prefect.deployments import run_deployment

    _write_definition(tmp_path, "served-workflow", "Served workflow")
    script = textwrap.dedent(
        """
        from prefect import serve
        from prefect.types.entrypoint import EntrypointType
        from agentparty.flows.deployed import entrypoint_for
        from prefect.flows import load_flow_from_entrypoint
        flow = load_flow_from_entrypoint(entrypoint_for("served-workflow"))
        serve(flow.to_deployment(name="test", entrypoint_type=EntrypointType.MODULE_PATH), print_starting_message=False)
        """
    )
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        deployed.WORKFLOWS_ENV: str(tmp_path),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    }
    server = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=tmp_path, start_new_session=True)
    try:
        asyncio.run(_wait_for_deployment("Served workflow/test", server))
        flow_run = run_deployment(
            "Served workflow/test", parameters={"inputs": {"topic": "graphs"}}, timeout=150, poll_interval=1
        )
        assert flow_run.state is not None and flow_run.state.is_completed(), flow_run.state
        result = asyncio.run(flow_run.state.aresult())
        assert result.steps["echo"].output == {"echo": "graphs"}
    finally:
        server.terminate()
        server.wait(timeout=30)


async def _wait_for_deployment(name: str, server: subprocess.Popen[bytes], timeout: float = 120) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        for _ in range(int(timeout * 2)):
            assert server.poll() is None, "the serving process exited"
            try:
                await client.read_deployment_by_name(name)
                return
            except ObjectNotFound:
                await asyncio.sleep(0.5)
    raise AssertionError(f"deployment {name!r} was never registered")
