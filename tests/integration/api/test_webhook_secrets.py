"""A webhook delivery's ``writeOnly`` inputs reach the delivery store and Prefect sealed, and Prefect's parameter
check (``enforce_parameter_schema``) still accepts them; the run's home opens them."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient
from support.api_support import HookWorkflows, deploy, hook_definition, signed
from support.disk_scan import files_holding

from agentparty.runtime.documents import load_workflow
from agentparty.runtime.sealing import sealer_at
from agentparty.runtime.secret_inputs import open_secret_inputs


def test_a_secret_input_of_a_delivery_is_sealed_before_it_is_stored_or_sent(
    make_app: Any, hook_workflows: HookWorkflows, api_home: Path
) -> None:
    from prefect.client.orchestration import get_client

    workflow_id = f"api-hook-secret-{uuid.uuid4().hex[:8]}"
    doc = hook_definition(workflow_id)
    doc["inputs"]["api_token"] = {"type": "string", "writeOnly": True, "minLength": 20}
    doc["inputs"]["attempts"] = {"type": "integer", "writeOnly": True, "default": 1}
    path = hook_workflows.folder / f"{workflow_id}.yaml"
    path.write_text(yaml.safe_dump(doc))
    deploy(path)
    token = f"tok-{secrets.token_hex(16)}"
    payload = {"ticket_id": "T-1", "api_token": token, "attempts": 3}
    with TestClient(make_app()) as client:
        response = client.post(f"/webhooks/{workflow_id}", **signed(payload))
    assert response.status_code == 202, response.text  # Prefect's parameter check let the sealed values through
    with get_client(sync_client=True) as prefect:
        inputs = prefect.read_flow_run(uuid.UUID(response.json()["flow_run_id"])).parameters["inputs"]
    assert inputs["api_token"].startswith("ap1:") and inputs["attempts"].startswith("ap1:")
    assert inputs["ticket_id"] == "T-1" and token not in str(inputs)
    assert open_secret_inputs(load_workflow(path), inputs, sealer_at(api_home)) == payload
    assert not files_holding(token, api_home)
