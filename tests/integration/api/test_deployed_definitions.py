"""An API without the definition files serves the deployed workflows from the copies stored with their deployments.

``agentparty deploy`` and ``serve`` store each definition with its deployment on the
Prefect server; the API reads them back, so a replica on another host (here: an empty
search path and another working directory) and ``agentparty api`` started after
``agentparty serve <dir>`` without ``AGENTPARTY_WORKFLOWS`` answer the webhook.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from support.api_support import (
    HANDLERS,
    SECRET,
    SECRET_ENV,
    access_config,
    auth,
    hook_definition,
    signed,
    wait_until_serving,
)
from support.deploy_support import wait_for

from agentparty.api import create_app
from agentparty.deployments.build import deploy_workflows, load_sources
from agentparty.deployments.definition_copies import WorkflowDefinitionCopy, block_name
from agentparty.flows.deployed import WORKFLOWS_ENV
from agentparty.runtime.local_service import free_port
from agentparty.runtime.settings import Settings

AGENTPARTY = str(Path(sys.executable).with_name("agentparty"))
EXAMPLE_FILES = ("webhook-triage.yaml", "enrich-ticket.yaml", "handlers.py")
TRIAGE_SECRET_ENV = "AGENTPARTY_WEBHOOK_SECRET_TRIAGE"


def flow_run(run_id: str) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:
        return prefect.read_flow_run(uuid.UUID(run_id))


def _deployed_folder(root: Path, *workflow_ids: str) -> dict[str, Any]:
    """Hook definitions in ``root/defs``, deployed with ``deploy_workflows`` (what ``agentparty deploy`` calls)."""
    folder = root / "defs"
    folder.mkdir()
    (folder / "api_handlers.py").write_text(HANDLERS)
    for workflow_id in workflow_ids:
        (folder / f"{workflow_id}.yaml").write_text(yaml.safe_dump(hook_definition(workflow_id)))
    deployed = deploy_workflows(load_sources([folder]), work_pool=f"copies-{uuid.uuid4().hex[:8]}")
    return {d.workflow_id: d for d in deployed}


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings of an API with an empty search path, run from a folder holding no definitions."""
    empty = tmp_path / "no-definitions"
    empty.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv(WORKFLOWS_ENV, raising=False)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    home = tmp_path / "api-home"
    home.mkdir()
    return Settings(home=home, workflows=[empty])


def test_an_api_without_the_files_serves_the_deployed_webhook_and_lists_it(
    prefect_server: str, tmp_path: Path, elsewhere: Settings
) -> None:
    workflow_id = f"copy-hook-{uuid.uuid4().hex[:6]}"
    deployed = _deployed_folder(tmp_path, workflow_id)[workflow_id]
    shutil.rmtree(tmp_path / "defs")  # the API host has no such files
    with TestClient(create_app(access_config(), settings=elsewhere)) as client:
        payload = {"ticket_id": "R-1", "priority": 2}
        accepted = client.post(f"/webhooks/{workflow_id}", **signed(payload))
        assert accepted.status_code == 202, accepted.text
        run = flow_run(accepted.json()["flow_run_id"])
        assert str(run.deployment_id) == deployed.deployment_id and run.parameters == {"inputs": payload}
        # validated as from the file: the inputs schema holds
        refused = client.post(f"/webhooks/{workflow_id}", **signed({"ticket_id": "R-2", "priority": 9}))
        assert refused.status_code == 422, refused.text
        assert client.post(f"/webhooks/never-deployed-{workflow_id}", **signed(payload)).status_code == 404

        listed = client.get("/workflows", headers=auth("viewer"))
        assert listed.status_code == 200, listed.text
        [summary] = [w for w in listed.json()["workflows"] if w["id"] == workflow_id]
        assert summary["stored_copy"] is True
        assert summary["deployment_id"] == deployed.deployment_id
        assert summary["webhook"] == f"/webhooks/{workflow_id}"
        assert summary["path"] == str(deployed.source)


def test_a_file_in_the_search_path_wins_over_the_stored_copy(
    prefect_server: str, tmp_path: Path, elsewhere: Settings
) -> None:
    workflow_id = f"copy-local-{uuid.uuid4().hex[:6]}"
    deployed = _deployed_folder(tmp_path, workflow_id)[workflow_id]
    settings = Settings(home=elsewhere.home, workflows=[tmp_path / "defs"])
    with TestClient(create_app(access_config(), settings=settings)) as client:
        listed = client.get("/workflows", headers=auth("viewer")).json()["workflows"]
        [summary] = [w for w in listed if w["id"] == workflow_id]
        assert summary["stored_copy"] is False and summary["deployment_id"] == deployed.deployment_id


def test_a_renamed_workflow_is_served_from_its_latest_deployment(
    prefect_server: str, tmp_path: Path, elsewhere: Settings
) -> None:
    """Renaming a definition makes a new deployment (``FLOW/ID``) beside the old one: the copy written last wins."""
    workflow_id = f"copy-renamed-{uuid.uuid4().hex[:6]}"
    first = _deployed_folder(tmp_path, workflow_id)[workflow_id]
    path = tmp_path / "defs" / f"{workflow_id}.yaml"
    path.write_text(yaml.safe_dump({**hook_definition(workflow_id), "name": f"Renamed {workflow_id}"}))
    [second] = deploy_workflows(load_sources([path]), work_pool=f"copies-{uuid.uuid4().hex[:8]}")
    assert second.deployment_id != first.deployment_id
    with TestClient(create_app(access_config(), settings=elsewhere)) as client:
        accepted = client.post(f"/webhooks/{workflow_id}", **signed({"ticket_id": "N-1"}))
        assert accepted.status_code == 202, accepted.text
        assert str(flow_run(accepted.json()["flow_run_id"]).deployment_id) == second.deployment_id


def test_a_stored_copy_that_no_longer_validates_is_reported_and_skipped(
    prefect_server: str, tmp_path: Path, elsewhere: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    good, broken = (f"copy-{kind}-{uuid.uuid4().hex[:6]}" for kind in ("good", "broken"))
    deployed = _deployed_folder(tmp_path, good, broken)
    document = hook_definition(broken)
    document["steps"][0]["type"] = "teleport"  # no such step type: what an older engine might have accepted
    WorkflowDefinitionCopy(
        deployment=deployed[broken].name,
        workflow_id=broken,
        source=str(deployed[broken].source),
        text=yaml.safe_dump(document),
    ).save(block_name(deployed[broken].deployment_id), overwrite=True)

    with caplog.at_level(logging.WARNING), TestClient(create_app(access_config(), settings=elsewhere)) as client:
        listed = client.get("/workflows", headers=auth("viewer"))
        assert listed.status_code == 200, listed.text
        assert {w["id"] for w in listed.json()["workflows"]} >= {good}
        assert broken not in {w["id"] for w in listed.json()["workflows"]}
        [invalid] = [i for i in listed.json()["invalid"] if deployed[broken].name in " ".join(i["errors"])]
        assert invalid["path"] == str(deployed[broken].source)
        assert any("steps[0]" in error or "steps" in error for error in invalid["errors"]), invalid
        assert client.post(f"/webhooks/{broken}", **signed({"ticket_id": "B-1"})).status_code == 404
        assert client.post(f"/webhooks/{good}", **signed({"ticket_id": "G-1"})).status_code == 202
    assert any(
        deployed[broken].name in record.getMessage() and "no longer validates" in record.getMessage()
        for record in caplog.records
    )


@pytest.fixture
def served_examples(
    prefect_server: str, agentparty_home: Path, tmp_path: Path, examples_dir: Path
) -> Iterator[dict[str, Any]]:
    """``agentparty serve <folder>`` (the webhook-triage example and what it needs) in a process of its own."""
    folder = tmp_path / "examples"
    folder.mkdir()
    for name in EXAMPLE_FILES:
        shutil.copy(examples_dir / name, folder / name)
    env = {k: v for k, v in os.environ.items() if k != WORKFLOWS_ENV}
    env |= {
        "PREFECT_API_URL": prefect_server,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "AGENTPARTY_HOME": str(agentparty_home),
        "AGENTPARTY_GRAPH": "off",
        "AGENTPARTY_EVENTS": "off",
    }
    pool = f"serve-{uuid.uuid4().hex[:8]}"
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [AGENTPARTY, "serve", str(folder), "--pool", pool, "--no-training"],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield {"env": env, "log": tmp_path / "serve.log", "process": process}
    finally:
        process.terminate()
        process.wait(30)
        log.close()


@pytest.mark.slow
def test_serve_then_api_answers_the_webhook_without_agentparty_workflows(
    served_examples: dict[str, Any], tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    def triage_deployed() -> Any:
        if served_examples["process"].poll() is not None:
            raise AssertionError(f"agentparty serve exited:\n{served_examples['log'].read_text()}")
        with get_client(sync_client=True) as prefect:
            try:
                return prefect.read_deployment_by_name("Webhook triage/webhook-triage")  # FLOW (its name)/ID
            except ObjectNotFound:
                return None

    deployment = wait_for(triage_deployed, 120, "agentparty serve to deploy webhook-triage")
    api_home = tmp_path / "api-home"
    api_home.mkdir()
    access = api_home / "api-access.yaml"
    access.write_text(yaml.safe_dump(access_config().model_dump(mode="json", by_alias=True, exclude_none=True)))
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    port = free_port()
    env = {
        **served_examples["env"],
        "AGENTPARTY_HOME": str(api_home),
        "AGENTPARTY_API_ACCESS": str(access),
        TRIAGE_SECRET_ENV: SECRET,
    }
    with (tmp_path / "api.log").open("wb") as log:
        api = subprocess.Popen(
            [AGENTPARTY, "api", "--port", str(port)], env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_serving(url, api, tmp_path / "api.log")
            payload = {"ticket_id": "T-7", "subject": "Login fails", "body": "Since today", "customer_tier": "pro"}
            accepted = httpx.post(f"{url}/webhooks/webhook-triage", timeout=60, **signed(payload))
            assert accepted.status_code == 202, accepted.text
            run_id = accepted.json()["flow_run_id"] or _delivered_run(url, accepted)
            run = flow_run(run_id)
            assert run.deployment_id == deployment.id and run.parameters == {"inputs": payload}
            listed = httpx.get(f"{url}/workflows", headers=auth("viewer"), timeout=30).json()
            stored = {w["id"]: w["stored_copy"] for w in listed["workflows"]}
            assert stored.get("webhook-triage") is True and stored.get("enrich-ticket") is True, listed
        finally:
            api.terminate()
            api.wait(30)


def _delivered_run(url: str, accepted: httpx.Response) -> str:
    """The run a 202 that did not wait for it names in its delivery (a loaded machine)."""

    def created() -> str | None:
        view = httpx.get(f"{url}{accepted.headers['Location']}", headers=auth("viewer"), timeout=30).json()
        return view["flow_run_id"] if view["status"] == "created" else None

    return str(wait_for(created, 120, "the delivery's run"))
