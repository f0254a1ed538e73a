"""Webhooks against a real Prefect server: signature, staleness, size, replay, inputs, durability, and 100 at once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from support.api_support import SECRET, SECRET_ENV, HookWorkflows, access_config, auth, delivery_of, signed

from agentparty.api.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER
from agentparty.runtime.webhook_deliveries import WebhookDeliveries, delivery_id_for


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
                limit=200,
                offset=len(found),
            )
            found.extend(page)
            if len(page) < 200:
                return found


def ticket() -> dict[str, Any]:
    return {"ticket_id": f"T-{uuid.uuid4().hex[:6]}", "priority": 2}


def test_a_signed_delivery_creates_a_scheduled_run_with_the_inputs(
    client: TestClient, hook_workflows: HookWorkflows
) -> None:
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
    status = delivery_of(client, response)
    assert (status["delivery_id"], status["status"], status["flow_run_id"]) == (
        body["delivery_id"],
        "created",
        body["flow_run_id"],
    )
    assert status["attempts"] == 1 and status["failed_reason"] is None


def test_an_unwaited_acknowledgement_names_the_delivery_whose_run_follows(
    client: TestClient, hook_workflows: HookWorkflows
) -> None:
    payload = ticket()
    response = client.post(f"/webhooks/{hook_workflows.unwaited}", **signed(payload))
    assert response.status_code == 202, response.text
    body = response.json()
    assert response.headers["Location"] == f"/webhooks/{hook_workflows.unwaited}/deliveries/{body['delivery_id']}"
    status = delivery_of(client, response)
    assert status["status"] == "created"
    assert body["flow_run_id"] in (None, status["flow_run_id"])
    run = flow_run(status["flow_run_id"])
    assert run.parameters == {"inputs": payload} and str(run.deployment_id) == hook_workflows.unwaited_deployment_id
    listed = client.get(f"/webhooks/{hook_workflows.unwaited}/deliveries?status=created", headers=auth("viewer")).json()
    assert status["delivery_id"] in [d["delivery_id"] for d in listed]


def test_delivery_status_needs_a_key_and_names_only_the_workflow_s_own(
    client: TestClient, hook_workflows: HookWorkflows
) -> None:
    accepted = client.post(f"/webhooks/{hook_workflows.deployed}", **signed(ticket()))
    location = accepted.headers["Location"]
    assert client.get(location).status_code == 401
    assert client.get(location, headers=auth("viewer")).status_code == 200
    elsewhere = location.replace(hook_workflows.deployed, hook_workflows.unwaited)
    assert client.get(elsewhere, headers=auth("viewer")).status_code == 404
    assert (
        client.get(f"/webhooks/{hook_workflows.deployed}/deliveries?status=lost", headers=auth("viewer")).status_code
        == 422
    )


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
    response = client.post(
        f"/webhooks/{hook_workflows.deployed}", **signed(ticket(), timestamp=int(time.time()) - skew)
    )
    assert response.status_code == 401
    assert "stale" in response.json()["detail"]


def test_a_replay_is_409_naming_the_original_run(client: TestClient, hook_workflows: HookWorkflows) -> None:
    delivery = signed(ticket())
    first = client.post(f"/webhooks/{hook_workflows.deployed}", **delivery)
    assert first.status_code == 202
    replay = client.post(f"/webhooks/{hook_workflows.deployed}", **delivery)
    assert replay.status_code == 409
    assert replay.json()["flow_run_id"] == first.json()["flow_run_id"]


def test_an_idempotency_key_identifies_a_delivery_across_signatures(
    client: TestClient, hook_workflows: HookWorkflows
) -> None:
    key = f"delivery-{uuid.uuid4()}"
    first = client.post(f"/webhooks/{hook_workflows.deployed}", **signed(ticket(), **{IDEMPOTENCY_HEADER: key}))
    again = client.post(f"/webhooks/{hook_workflows.deployed}", **signed(ticket(), **{IDEMPOTENCY_HEADER: key}))
    assert (first.status_code, again.status_code) == (202, 409)
    assert again.json()["flow_run_id"] == first.json()["flow_run_id"]


def _settled(deliveries: WebhookDeliveries, delivery_id: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while (found := deliveries.get(delivery_id)) is None or found.status == "queued":
        assert time.monotonic() < deadline, f"delivery {delivery_id} still queued after {timeout:.0f}s"
        time.sleep(0.2)
    return found


def test_a_crash_after_the_acknowledgement_neither_loses_nor_duplicates_the_run(
    make_app: Any, hook_workflows: HookWorkflows, api_home: Any
) -> None:
    """Stored but no run (the process died before creating it), and run created but not recorded (died after)."""
    from prefect.client.orchestration import get_client

    workflow, deployment = hook_workflows.deployed, hook_workflows.deployment
    deliveries = WebhookDeliveries.at(api_home)
    lost_key, lost = f"crash-before-{uuid.uuid4()}", ticket()
    assert deliveries.accept(workflow, lost_key, deployment, lost).fresh  # acknowledged, then the process died
    made_key, made_payload = f"crash-after-{uuid.uuid4()}", ticket()
    stored = deliveries.accept(workflow, made_key, deployment, made_payload).delivery
    with get_client(sync_client=True) as prefect:  # this one's run was created just before the process died
        made = prefect.create_flow_run_from_deployment(
            uuid.UUID(hook_workflows.deployment_id),
            parameters={"inputs": made_payload},
            idempotency_key=stored.prefect_idempotency_key,
        )
    before = len(runs_of(hook_workflows.deployment_id))

    with TestClient(make_app()) as client:  # the next start's dispatcher finishes both
        recovered = _settled(deliveries, delivery_id_for(workflow, lost_key))
        recorded = _settled(deliveries, delivery_id_for(workflow, made_key))
        assert recovered.status == recorded.status == "created"
        assert flow_run(recovered.flow_run_id).parameters == {"inputs": lost}
        assert recorded.flow_run_id == str(made.id)
        assert len(runs_of(hook_workflows.deployment_id)) == before + 1
        # the senders' retries of the same deliveries are replays naming those runs
        replay = client.post(f"/webhooks/{workflow}", **signed(lost, **{IDEMPOTENCY_HEADER: lost_key}))
        assert replay.status_code == 409 and replay.json()["flow_run_id"] == recovered.flow_run_id


def test_a_delivery_stored_while_prefect_is_down_is_created_once_it_is_back(
    make_app: Any, hook_workflows: HookWorkflows, api_home: Any
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    from agentparty.api.deployment_directory import DeploymentDirectory
    from agentparty.api.webhook_dispatch import DeliveryDispatcher
    from agentparty.runtime.local_service import free_port

    deliveries = WebhookDeliveries.at(api_home)
    key, payload = f"outage-{uuid.uuid4()}", ticket()
    delivery_id = deliveries.accept(
        hook_workflows.deployed, key, hook_workflows.deployment, payload
    ).delivery.delivery_id

    async def dispatch_while_down() -> None:
        nobody = f"http://127.0.0.1:{free_port()}/api"
        with temporary_settings(updates={PREFECT_API_URL: nobody, PREFECT_CLIENT_MAX_RETRIES: 0}):
            async with get_client() as down:
                dispatcher = DeliveryDispatcher(down, deliveries, DeploymentDirectory(), 2)
                dispatcher.start()
                deadline = time.monotonic() + 60
                while deliveries.get(delivery_id).attempts < 2:  # type: ignore[union-attr]
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.1)
                await dispatcher.stop()

    asyncio.run(dispatch_while_down())
    waiting = deliveries.get(delivery_id)
    assert waiting is not None and waiting.status == "queued" and waiting.last_error
    with TestClient(make_app()):
        created = _settled(deliveries, delivery_id)
    assert created.status == "created" and flow_run(created.flow_run_id).parameters == {"inputs": payload}


def test_a_delivery_whose_deployment_cannot_be_looked_up_is_503_and_not_stored(
    make_app: Any, hook_workflows: HookWorkflows, api_home: Any
) -> None:
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    from agentparty.runtime.local_service import free_port

    with (
        temporary_settings(
            updates={PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api", PREFECT_CLIENT_MAX_RETRIES: 0}
        ),
        TestClient(make_app()) as client,
    ):
        response = client.post(f"/webhooks/{hook_workflows.deployed}", **signed(ticket()))
    assert response.status_code == 503 and "retry" in response.json()["detail"]
    assert WebhookDeliveries.at(api_home).recent(hook_workflows.deployed) == []


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


def test_unknown_workflows_and_workflows_without_a_webhook_are_404(
    client: TestClient, hook_workflows: HookWorkflows
) -> None:
    assert client.post("/webhooks/no-such-workflow", **signed(ticket())).status_code == 404
    assert client.post(f"/webhooks/{hook_workflows.manual}", **signed(ticket())).status_code == 404


def test_a_workflow_without_a_deployment_is_404_saying_how_to_deploy(
    client: TestClient, hook_workflows: HookWorkflows
) -> None:
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
    limited = access_config(
        rate_limiting={"enabled": True, "requestsPerMinute": 1, "burstLimit": 2, "penaltyStrategy": "reject"}
    )
    with TestClient(make_app(limited)) as client:
        codes = [client.post(f"/webhooks/{hook_workflows.deployed}", **signed(ticket())).status_code for _ in range(3)]
        assert codes == [202, 202, 429]
        refused = client.post(f"/webhooks/{hook_workflows.deployed}", **signed(ticket()))
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        # another workflow has its own bucket (and answers 404 here, past the limiter)
        assert client.post(f"/webhooks/{hook_workflows.undeployed}", **signed(ticket())).status_code == 404


def test_the_example_webhook_triage_accepts_a_ticket(
    make_app: Any, prefect_server: str, monkeypatch: pytest.MonkeyPatch, examples_dir: Any
) -> None:
    from support.api_support import deploy

    from agentparty.flows.deployed import WORKFLOWS_ENV

    deploy(examples_dir / "webhook-triage.yaml")
    monkeypatch.setenv(WORKFLOWS_ENV, str(examples_dir))
    monkeypatch.setenv("AGENTPARTY_WEBHOOK_SECRET_TRIAGE", SECRET)
    payload = {"ticket_id": "T-42", "subject": "Login fails", "body": "Since this morning", "customer_tier": "pro"}
    with TestClient(make_app()) as client:
        accepted = client.post("/webhooks/webhook-triage", **signed(payload))
        assert accepted.status_code == 202, accepted.text
        # the example waits 2 s for its run (the default): on a loaded machine the delivery's status names it
        run_id = accepted.json()["flow_run_id"] or delivery_of(client, accepted)["flow_run_id"]
        assert flow_run(run_id).parameters == {"inputs": payload}
        refused = client.post("/webhooks/webhook-triage", **signed({**payload, "customer_tier": "gold"}))
        assert refused.status_code == 422 and refused.json()["detail"][0]["field"] == "inputs.customer_tier"


@pytest.mark.slow
def test_100_concurrent_deliveries_make_exactly_100_runs(
    make_app: Any, hook_workflows: HookWorkflows, api_home: Any
) -> None:
    """A real uvicorn server; every delivery distinct and acknowledged once stored: none lost, none duplicated."""
    from agentparty.api.serve import serving
    from agentparty.runtime.local_service import free_port

    workflow = hook_workflows.unwaited
    before = {str(r.id) for r in runs_of(hook_workflows.unwaited_deployment_id)}
    payloads = [{"ticket_id": f"C-{i}", "priority": 1 + i % 5} for i in range(100)]

    async def deliver(base_url: str) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120) as http:
            return await asyncio.gather(*(http.post(f"/webhooks/{workflow}", **signed(p)) for p in payloads))

    deliveries = WebhookDeliveries.at(api_home)
    with serving(make_app(), free_port()) as base_url:
        responses = asyncio.run(deliver(base_url))
        assert [r.status_code for r in responses] == [202] * 100, {r.status_code: r.text for r in responses}
        acknowledged = [r.json()["delivery_id"] for r in responses]
        assert len(set(acknowledged)) == 100
        settled = [_settled(deliveries, delivery_id, timeout=300) for delivery_id in acknowledged]
    assert {d.status for d in settled} == {"created"}
    created = {d.flow_run_id for d in settled}
    assert len(created) == 100
    new = {str(r.id): r for r in runs_of(hook_workflows.unwaited_deployment_id) if str(r.id) not in before}
    assert set(new) == created
    assert sorted(r.parameters["inputs"]["ticket_id"] for r in new.values()) == sorted(p["ticket_id"] for p in payloads)


def test_a_redeployed_workflow_is_found_under_its_new_deployment_id(
    client: TestClient, hook_workflows: HookWorkflows
) -> None:
    """The API remembers deployment ids; one deleted and re-created (a new id) is looked up again."""
    import yaml
    from prefect.client.orchestration import get_client
    from support.api_support import deploy, hook_definition

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
    delivery = signed(ticket())
    gone = client.post(f"/webhooks/{workflow_id}", **delivery)
    assert gone.status_code == 404 and "agentparty deploy" in gone.json()["detail"]
    failed = client.get(gone.headers["Location"], headers=auth("viewer")).json()
    assert failed["status"] == "failed" and "agentparty deploy" in failed["failed_reason"]
    # deployed again, the sender's retry of the refused delivery runs it
    third_id = deploy(path)
    retried = client.post(f"/webhooks/{workflow_id}", **delivery)
    assert retried.status_code == 202, retried.text
    assert str(flow_run(retried.json()["flow_run_id"]).deployment_id) == third_id


def test_an_operator_requeues_a_failed_delivery_once_its_workflow_is_deployed_again(
    client: TestClient, hook_workflows: HookWorkflows
) -> None:
    """For senders that do not retry: the failed delivery runs with the inputs it was accepted with, once."""
    import yaml
    from prefect.client.orchestration import get_client
    from support.api_support import deploy, hook_definition

    workflow_id = f"api-requeued-{uuid.uuid4().hex[:6]}"
    path = hook_workflows.folder / f"{workflow_id}.yaml"
    path.write_text(yaml.safe_dump(hook_definition(workflow_id)))
    first_id = deploy(path)
    assert client.post(f"/webhooks/{workflow_id}", **signed(ticket())).status_code == 202  # the API now knows first_id
    with get_client(sync_client=True) as prefect:
        prefect.delete_deployment(uuid.UUID(first_id))
    payload = ticket()
    gone = client.post(f"/webhooks/{workflow_id}", **signed(payload))
    assert gone.status_code == 404
    requeue = gone.headers["Location"] + "/requeue"
    assert client.post(requeue).status_code == 401
    assert client.post(requeue, headers=auth("viewer")).status_code == 403
    assert (
        client.post(
            f"/webhooks/{hook_workflows.deployed}/deliveries/{requeue.split('/')[-2]}/requeue", headers=auth("operator")
        ).status_code
        == 404
    )
    assert (
        client.post(f"/webhooks/{workflow_id}/deliveries/{uuid.uuid4()}/requeue", headers=auth("operator")).status_code
        == 404
    )

    still_gone = client.post(requeue, headers=auth("operator"))
    assert still_gone.status_code == 202, still_gone.text
    assert still_gone.json()["status"] == "failed" and "agentparty deploy" in still_gone.json()["failed_reason"]
    assert still_gone.json()["attempts"] == 2

    second_id = deploy(path)
    created = client.post(requeue + "?waitForRunSeconds=30", headers=auth("operator"))
    assert created.status_code == 202, created.text
    body = created.json()
    assert body["status"] == "created" and body["failed_reason"] is None and body["attempts"] == 3
    run = flow_run(body["flow_run_id"])
    assert run.parameters == {"inputs": payload} and str(run.deployment_id) == second_id
    again = client.post(requeue, headers=auth("operator"))
    assert again.status_code == 409 and "created" in again.json()["detail"]
    assert [str(r.id) for r in runs_of(second_id)] == [body["flow_run_id"]]
