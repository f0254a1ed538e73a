"""Helpers for the deployment tests: definitions written to a folder, and waiting on the Prefect server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

HANDLERS = """
import os, time, json

def stamp(label: str, sleep: float = 0.0) -> dict:
    started = time.time()
    time.sleep(sleep)
    return {"label": label, "worker_pid": os.getppid(), "pid": os.getpid(), "started": started, "ended": time.time()}

def always_fails(log: str) -> dict:
    with open(log, "a") as f:
        f.write(f"{os.getppid()} {os.getpid()}\\n")
    raise ConnectionError("downstream is down")
"""


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
                "id": "stamp",
                "type": "task",
                "configuration": {"handler": "deploy_handlers:stamp"},
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


PROBE = "probe"


def wait_until_automation_reacts(deployment_id: str, emit_probe: Callable[[int], None], timeout: float = 60) -> None:
    """Emit probe events until one of them starts a run of the deployment: its automation is live from then on.

    Prefect answers an automation's creation before its trigger service has loaded it
    (on SQLite the load is a task scheduled after the commit; under load it has taken
    longer than the 17 ms a test took to emit its event), and an event evaluated before
    then matches nothing. Tests emit their real events after a probe has reacted; a
    probe's run carries ``PROBE`` in its ``label`` input (see :func:`runs_not_probed`).
    """
    from prefect.events.worker import EventsWorker

    deadline = time.monotonic() + timeout
    attempt = 0
    while time.monotonic() < deadline:
        emit_probe(attempt)
        EventsWorker.drain_all()
        attempt += 1
        try:
            wait_for(lambda: flow_runs_of(deployment_id), 2, "a probe's run")
        except AssertionError:
            continue
        return
    raise AssertionError(f"timed out after {timeout:.0f}s: {attempt} probe events started no run of {deployment_id}")


def runs_not_probed(deployment_id: str) -> list[Any]:
    """The deployment's runs other than those the probes of :func:`wait_until_automation_reacts` started."""
    return [run for run in flow_runs_of(deployment_id) if PROBE not in str(run.parameters["inputs"].get("label", ""))]
