"""Webhooks against a real Prefect server: signature, staleness, size, replay, inputs, and 100 at once."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api_support import SECRET, SECRET_ENV, HookWorkflows, access_config, signed
from fastapi.testclient import TestClient

from agentparty.api.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER
from agentparty.api.webhook_receipts import WebhookReceipts, prefect_idempotency_key


@pytest.fixture
def client(make_app: Any, hook_workflows: HookWorkflows) -> Iterator[TestClient]:
    with TestClient(make_app()) as test_client:
        yield test_client


def flow_run(run_id: str) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:
        return prefect.read_flow_run(uuid.UUID(run_id))


def runs_of(deployment_id: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    found: list[Any] = []
    with get_client(sync_client=True) as prefect:
        while True:  # the API pages at 200
            page = prefect.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[uuid.UUID(deployment_id)])),
                limit=200, offset=len(found),
            )
            found.extend(page)
            if len(page) < 200:
                return found


def ticket() -> dict[str, Any]:
    return {"ticket_id": f"T-{uuid.uuid4().hex[:6]}", "priority": 2}


def test_a_signed_delivery_creates_a_scheduled_run_with_the_inputs(client: TestClient, hook_workflows: HookWorkflows) -> None:
    payload = ticket()
    response = client.post(f"/webhooks/{hook_workflows.deployed}", **signed(payload))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["deployment"] == hook_workflows.deployment
    run = flow_run(body["flow_run_id"])
    assert run.parameters == {"inputs": payload}
    assert str(run.deployment_id) == hook_workflows.deployment_id
    assert run.state.is_scheduled()
    assert "webhook" in run.tags


def test_a_missing_or_wrong_signature_is_401(client: TestClient, hook_workflows: HookWorkflows) -> None:
    url = f"/webhooks/{hook_workflows.deployed}"
    wrong_secret = signed(ticket(), secret="not-the-secret")
    assert client.post(url, **wrong_secret).status_code == 401
    tampered = signed(ticket())
    tampered["content"] = tampered["content"].replace(b"}", b', "extra": 1}')
    response = client.post(url, **tampered)
    assert response.status_code == 401 and "bad" in response.json()["detail"]
    unsigned = signed(ticket())
    del unsigned["headers"][SIGNATURE_HEADER]
    assert client.post(url, **unsigned).status_code == 401


@pytest.mark.parametrize("skew", [-3600, 3600])
def test_a_stale_timestamp_is_401(client: TestClient, hook_workflows: HookWorkflows, skew: int) -> None:
    response = client.post(f"/webhooks/{hook_workflows.deployed}", **signed(ticket(), timestamp=int(time.time()) - skew))
    assert response.status_code == 401
    assert "stale" in response.json()["detail"]


def test_a_replay_is_409_naming_the_original_run(client: TestClient, hook_workflows: HookWorkflows) -> None:
    delivery = signed(ticket())
    first = client.post(f"/webhooks/{hook_workflows.deployed}", **delivery)
    assert first.status_code == 202
    replay = client.post(f"/webhooks/{hook_workflows.deployed}", **delivery)
    assert replay.status_code == 409
    assert replay.json()["flow_run_id"] == first.json()["flow_run_id"]


def test_an_idempotency_key_identifies_a_delivery_across_signatures(client: TestClient, hook_workflows: HookWorkflows) -> None:
    key = f"delivery-{uuid.uuid4()}"
    first = client.post(f"/webhooks/{hook_workflows.deployed}", **signed(ticket(), **{IDEMPOTENCY_HEADER: key}))
    again = client.post(f"/webhooks/{hook_workflows.deployed}", **signed(ticket(), **{IDEMPOTENCY_HEADER: key}))
    assert (first.status_code, again.status_code) == (202, 409)
    assert again.json()["flow_run_id"] == first.json()["flow_run_id"]


def test_a_crash_before_the_acknowledgement_neither_loses_nor_duplicates_the_run(
    client: TestClient, hook_workflows: HookWorkflows, api_home: Any
) -> None:
    """Key recorded but no run (crash before creating it), and run created but not recorded (crash after)."""
    from prefect.client.orchestration import get_client

    workflow = hook_workflows.deployed
    receipts = WebhookReceipts.at(api_home)
    lost = signed(ticket(), **{IDEMPOTENCY_HEADER: f"crash-before-{uuid.uuid4()}"})
    assert receipts.claim(workflow, lost["headers"][IDEMPOTENCY_HEADER]).fresh  # the crashed attempt got this far
    retried = client.post(f"/webhooks/{workflow}", **lost)
    assert retried.status_code == 202
    assert flow_run(retried.json()["flow_run_id"]).parameters["inputs"] == json.loads(lost["content"])

    key = f"crash-after-{uuid.uuid4()}"
    payload = ticket()
    receipts.claim(workflow, key)
    with get_client(sync_client=True) as prefect:  # the crashed attempt created the run, then died before recording it
        made = prefect.create_flow_run_from_deployment(
            uuid.UUID(hook_workflows.deployment_id), parameters={"inputs": payload}, idempotency_key=prefect_idempotency_key(workflow, key)
        )
    before = len(runs_of(hook_workflows.deployment_id))
    retried = client.post(f"/webhooks/{workflow}", **signed(payload, **{IDEMPOTENCY_HEADER: key}))
    assert retried.status_code == 202
    assert retried.json()["flow_run_id"] == str(made.id)
    assert len(runs_of(hook_workflows.deployment_id)) == before
    assert client.post(f"/webhooks/{workflow}", **signed(payload, **{IDEMPOTENCY_HEADER: key})).status_code == 409


def test_a_body_over_max_body_bytes_is_413(client: TestClient, hook_workflows: HookWorkflows) -> None:
    big = {"ticket_id": "x" * 4096}
    url = f"/webhooks/{hook_workflows.deployed}"
    assert client.post(url, **signed(big)).status_code == 413
    delivery = signed(big)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while the stream is read
        body = delivery["content"]
        for start in range(0, len(body), 512):
            yield body[start : start + 512]

    response = client.post(url, content=chunks(), headers=delivery["headers"])
    assert response.status_code == 413


def test_unknown_workflows_and_workflows_without_a_webhook_are_404(client: TestClient, hook_workflows: HookWorkflows) -> None:
    assert client.post("/webhooks/no-such-workflow", **signed(ticket())).status_code == 404
    assert client.post(f"/webhooks/{hook_workflows.manual}", **signed(ticket())).status_code == 404


def test_a_workflow_without_a_deployment_is_404_saying_how_to_deploy(client: TestClient, hook_workflows: HookWorkflows) -> None:
    response = client.post(f"/webhooks/{hook_workflows.undeployed}", **signed(ticket()))
    assert response.status_code == 404
    assert "agentparty deploy" in response.json()["detail"]


def test_invalid_inputs_are_422_naming_the_field(client: TestClient, hook_workflows: HookWorkflows) -> None:
    url = f"/webhooks/{hook_workflows.deployed}"
    response = client.post(url, **signed({"ticket_id": "T-1", "priority": 9}))
    assert response.status_code == 422
    assert [p["field"] for p in response.json()["detail"]] == ["inputs.priority"]
    response = client.post(url, **signed({"priority": 1, "colour": "red"}))
    assert response.status_code == 422
    assert {p["field"] for p in response.json()["detail"]} == {"inputs.colour", "inputs.ticket_id"}
    assert client.post(url, **signed([1, 2])).status_code == 422
    assert client.post(url, **signed(b"{not json")).status_code == 400


def test_a_webhook_without_its_secret_configured_is_refused(
    client: TestClient, hook_workflows: HookWorkflows, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV)
    assert client.post(f"/webhooks/{hook_workflows.deployed}", **signed(ticket())).status_code == 503


def test_webhooks_are_rate_limited_per_workflow(make_app: Any, hook_workflows: HookWorkflows) -> None:
    limited = access_config(rate_limiting={"enabled": True, "requestsPerMinute": 1, "burstLimit": 2, "penaltyStrategy": "reject"})
    with TestClient(make_app(limited)) as client:
        codes = [client.post(f"/webhooks/{hook_workflows.deployed}", **signed(ticket())).status_code for _ in range(3)]
        assert codes == [202, 202, 429]
        refused = client.post(f"/webhooks/{hook_workflows.deployed}", **signed(ticket()))
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        # another workflow has its own bucket (and answers 404 here, past the limiter)
        assert client.post(f"/webhooks/{hook_workflows.undeployed}", **signed(ticket())).status_code == 404


def test_the_example_webhook_triage_accepts_a_ticket(make_app: Any, prefect_server: str, monkeypatch: pytest.MonkeyPatch, examples_dir: Any) -> None:
    from api_support import deploy

    from agentparty.flows.deployed import WORKFLOWS_ENV

    deploy(examples_dir / "webhook-triage.yaml")
    monkeypatch.setenv(WORKFLOWS_ENV, str(examples_dir))
    monkeypatch.setenv("AGENTPARTY_WEBHOOK_SECRET_TRIAGE", SECRET)
    payload = {"ticket_id": "T-42", "subject": "Login fails", "body": "Since this morning", "customer_tier": "pro"}
    with TestClient(make_app()) as client:
        accepted = client.post("/webhooks/webhook-triage", **signed(payload))
        assert accepted.status_code == 202, accepted.text
        assert flow_run(accepted.json()["flow_run_id"]).parameters == {"inputs": payload}
        refused = client.post("/webhooks/webhook-triage", **signed({**payload, "customer_tier": "gold"}))
        assert refused.status_code == 422 and refused.json()["detail"][0]["field"] == "inputs.customer_tier"


@pytest.mark.slow
def test_100_concurrent_deliveries_make_exactly_100_runs(make_app: Any, hook_workflows: HookWorkflows) -> None:
    """A real uvicorn server; every delivery distinct: none lost, none duplicated."""
    from agentparty.api.serve import serving
    from agentparty.runtime.local_service import free_port

    before = {str(r.id) for r in runs_of(hook_workflows.deployment_id)}
    payloads = [{"ticket_id": f"C-{i}", "priority": 1 + i % 5} for i in range(100)]

    async def deliver(base_url: str) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120) as http:
            return await asyncio.gather(*(http.post(f"/webhooks/{hook_workflows.deployed}", **signed(p)) for p in payloads))

    with serving(make_app(), free_port()) as base_url:
        responses = asyncio.run(deliver(base_url))
    assert [r.status_code for r in responses] == [202] * 100, {r.status_code: r.text for r in responses}
    acknowledged = {r.json()["flow_run_id"] for r in responses}
    assert len(acknowledged) == 100
    new = {str(r.id): r for r in runs_of(hook_workflows.deployment_id) if str(r.id) not in before}
    assert set(new) == acknowledged
    assert sorted(r.parameters["inputs"]["ticket_id"] for r in new.values()) == sorted(p["ticket_id"] for p in payloads)


def test_a_redeployed_workflow_is_found_under_its_new_deployment_id(client: TestClient, hook_workflows: HookWorkflows) -> None:
    """The API remembers deployment ids; one deleted and re-created (a new id) is looked up again."""
    import yaml
    from api_support import deploy, hook_definition
    from prefect.client.orchestration import get_client

    workflow_id = f"api-redeployed-{uuid.uuid4().hex[:6]}"
    path = hook_workflows.folder / f"{workflow_id}.yaml"
    path.write_text(yaml.safe_dump(hook_definition(workflow_id)))
    first_id = deploy(path)
    assert client.post(f"/webhooks/{workflow_id}", **signed(ticket())).status_code == 202
    with get_client(sync_client=True) as prefect:
        prefect.delete_deployment(uuid.UUID(first_id))
    second_id = deploy(path)
    assert second_id != first_id
    accepted = client.post(f"/webhooks/{workflow_id}", **signed(ticket()))
    assert accepted.status_code == 202
    assert str(flow_run(accepted.json()["flow_run_id"]).deployment_id) == second_id
    with get_client(sync_client=True) as prefect:
        prefect.delete_deployment(uuid.UUID(second_id))
    gone = client.post(f"/webhooks/{workflow_id}", **signed(ticket()))
    assert gone.status_code == 404 and "agentparty deploy" in gone.json()["detail"]
