"""Helpers for the deployment tests: definitions written to a folder, and waiting on the Prefect server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

HANDLERS = '''
import os, time, json

def stamp(label: str, sleep: float = 0.0) -> dict:
    started = time.time()
    time.sleep(sleep)
    return {"label": label, "worker_pid": os.getppid(), "pid": os.getpid(), "started": started, "ended": time.time()}

def always_fails(log: str) -> dict:
    with open(log, "a") as f:
        f.write(f"{os.getppid()} {os.getpid()}\\n")
    raise ConnectionError("downstream is down")
'''


def workflow_folder(root: Path) -> Path:
    """A folder with the handlers module the test definitions call."""
    folder = root / "workflows"
    folder.mkdir()
    (folder / "deploy_handlers.py").write_text(HANDLERS)
    return folder


def write_definition(folder: Path, doc: dict[str, Any]) -> Path:
    path = folder / f"{doc['id']}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def stamp_workflow(workflow_id: str, triggers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": workflow_id,
        "name": workflow_id.replace("-", " ").title(),
        "inputs": {"label": {"type": "string", "default": "none"}, "sleep": {"type": "number", "default": 0}},
        "steps": [
            {
                "id": "stamp", "type": "task", "configuration": {"handler": "deploy_handlers:stamp"},
                "inputs": {"label": "${inputs.label}", "sleep": "${inputs.sleep}"},
            }
        ],
        "triggers": triggers,
        **extra,
    }


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def flow_runs_of(deployment_id: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async def read() -> list[Any]:
        async with get_client() as client:
            return await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])), limit=200
            )

    return asyncio.run(read())
