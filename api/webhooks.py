"""``POST /webhooks/{workflow_id}``: a signed delivery starts a run of the workflow's deployment.

Prefect's open-source server has no webhooks (DESIGN.md §6), so this is ours.
The workflow must declare a ``webhook`` trigger; its configuration names the
environment variable that holds the HMAC secret, the largest body accepted, how
old a signed timestamp may be and how long the answer waits for the run. Checks
run cheapest first, and nothing unauthenticated is parsed: the workflow, the
rate limit, the timestamp, the size (``Content-Length``, then a running limit
while the body is read), the signature, and only then JSON, the run inputs and
the deployment. A delivery that passes is stored (``webhook_deliveries``)
before it is acknowledged, and its run, of the deployment ``full_name(definition)``
with ``{"inputs": body}``, is created by the dispatcher (``webhook_dispatch``);
the 202 names the run when it exists within ``waitForRunSeconds``, and always
the delivery, whose status ``GET /webhooks/{workflow_id}/deliveries/{id}``
tells. Replays are refused by ``Idempotency-Key`` (the signature by default),
so no delivery is ever run twice or lost. A failed delivery (its deployment gone,
its inputs refused by Prefect) is queued again by its sender's retry or by
``POST /webhooks/{workflow_id}/deliveries/{id}/requeue``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from agentparty.api.deployment_directory import DeploymentDirectory
from agentparty.api.errors import GUARDED, ApiError, FieldError, declared, refuse_unknown_query
from agentparty.api.security import Principal, require
from agentparty.api.services import dispatcher_of, prefect_client
from agentparty.api.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from agentparty.api.webhook_dispatch import Arrival, DeliveryDispatcher, no_deployment_reason
from agentparty.api.workflow_index import IndexedWorkflow, WorkflowIndex
from agentparty.deployments.naming import full_name
from agentparty.models.workflow import WebhookTriggerConfig
from agentparty.runtime.secret_inputs import seal_secret_inputs
from agentparty.runtime.tracing import server_span
from agentparty.runtime.webhook_deliveries import Delivery, DeliveryStatus, WebhookDeliveries

logger = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"])
_STRICT_QUERY = [Depends(refuse_unknown_query)]
"""On every route here but the webhook itself, which calls it inline (a dependency costs a hot path CPU)."""

MAX_IDEMPOTENCY_KEY = 256
WorkflowId = Annotated[str, Path(min_length=1, max_length=200, description="The workflow definition's id.")]
DeliveryId = Annotated[
    str, Path(min_length=1, max_length=200, description="As the 202 (or the deliveries list) named it.")
]


class WebhookAccepted(BaseModel):
    """202: the delivery is stored and its flow run created, or being created; a worker of the deployment's pool runs it."""

    delivery_id: str = Field(description="The delivery (the same for every arrival of its idempotency key).")
    flow_run_id: str | None = Field(
        description="The run, when it was created within the trigger's waitForRunSeconds; else null, and the "
        "delivery's status (the Location header) names it once it exists."
    )
    deployment: str = Field(description="The deployment the run belongs to, FLOW/DEPLOYMENT.")


class WebhookReplay(ApiError):
    """409: a delivery with this idempotency key was accepted before (the API's error body, and what it was)."""

    delivery_id: str
    flow_run_id: str | None = Field(description="The run of the first delivery; null while it is still being created.")


class DeliveryView(BaseModel):
    """What became of one accepted delivery."""

    delivery_id: str
    workflow: str
    deployment: str
    status: DeliveryStatus = Field(
        description="queued: its run is being created; created: it exists; failed: Prefect refused it."
    )
    flow_run_id: str | None
    received_at: float = Field(description="Unix seconds.")
    attempts: int = Field(description="Tries to create the run so far.")
    last_error: str | None = Field(description="Why the last try did not create the run (it is tried again).")
    failed_reason: str | None = Field(
        description="Why the run will not be created; the sender's retry, or POST .../requeue, queues it again."
    )

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryView:
        return cls(
            delivery_id=delivery.delivery_id,
            workflow=delivery.workflow_id,
            deployment=delivery.deployment,
            status=delivery.status,
            flow_run_id=delivery.flow_run_id,
            received_at=delivery.received_at,
            attempts=delivery.attempts,
            last_error=delivery.last_error,
            failed_reason=delivery.failed_reason,
        )


def _refuse(code: int, detail: str, headers: Mapping[str, str] | None = None) -> HTTPException:
    return HTTPException(code, detail=detail, headers=dict(headers) if headers else None)


def _location(request: Request, workflow_id: str, delivery_id: str) -> dict[str, str]:
    return {"Location": f"{request.scope.get('root_path', '')}/webhooks/{quote(workflow_id)}/deliveries/{delivery_id}"}


async def _delivery_of(request: Request, workflow_id: str, delivery_id: str) -> Delivery:
    """The stored delivery, if it is one of this workflow's (else 404: ids are not secrets, workflows are scopes)."""
    deliveries: WebhookDeliveries = request.app.state.webhook_deliveries
    delivery = await anyio.to_thread.run_sync(deliveries.get, delivery_id)
    if delivery is None or delivery.workflow_id != workflow_id:
        raise _refuse(status.HTTP_404_NOT_FOUND, f"no delivery {delivery_id!r} of workflow {workflow_id!r}")
    return delivery


def _no_deployment(deployment: str) -> HTTPException:
    return _refuse(status.HTTP_404_NOT_FOUND, no_deployment_reason(deployment))


async def _webhook_of(index: WorkflowIndex, workflow_id: str) -> tuple[IndexedWorkflow, WebhookTriggerConfig]:
    found = await index.lookup(workflow_id)
    trigger = found.webhook if found is not None else None
    if found is None or trigger is None:
        # Callers are not authenticated yet: the same answer whether the id is unknown or has no webhook.
        raise _refuse(status.HTTP_404_NOT_FOUND, f"no workflow {workflow_id!r} with a webhook trigger")
    return found, trigger.configuration


def _secret(config: WebhookTriggerConfig, workflow_id: str, environ: Mapping[str, str]) -> str:
    value = environ.get(config.secret_name or "", "")
    if not value:
        logger.warning(
            "webhook of %s refused: its secret variable %s is not set in the API's environment",
            workflow_id,
            config.secret_name or "(no secretName in the trigger)",
        )
        raise _refuse(status.HTTP_503_SERVICE_UNAVAILABLE, "this webhook has no secret configured on the server")
    return value


def _check_timestamp(raw: str | None, tolerance_s: int, now: float) -> str:
    if raw is None or not raw.strip().isdigit():
        raise _refuse(status.HTTP_401_UNAUTHORIZED, f"missing or malformed {TIMESTAMP_HEADER} (unix seconds)")
    skew = now - int(raw)
    if abs(skew) > tolerance_s:
        raise _refuse(
            status.HTTP_401_UNAUTHORIZED,
            f"stale {TIMESTAMP_HEADER}: {abs(skew):.0f} s {'old' if skew > 0 else 'ahead'}, tolerance is {tolerance_s} s",
        )
    return raw.strip()


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing it as soon as it is larger than ``limit`` (never buffered beyond that)."""
    too_large = _refuse(status.HTTP_413_CONTENT_TOO_LARGE, f"body larger than this webhook's {limit} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _inputs(body: bytes, found: IndexedWorkflow) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _refuse(status.HTTP_400_BAD_REQUEST, f"body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        problems = [
            FieldError(
                loc=["inputs"],
                field="inputs",
                msg=f"expected a JSON object of run inputs, got {type(payload).__name__}",
                type="object_type",
            )
        ]
        raise _InvalidInputs(problems)
    _, found_problems = found.definition.resolve_run_inputs(payload)
    if found_problems:
        problems = []
        for problem in found_problems:
            where, _, message = problem.partition(": ")
            problems.append(FieldError(loc=where.split("."), field=where, msg=message, type="run_input"))
        raise _InvalidInputs(problems)
    return payload


class _InvalidInputs(Exception):
    def __init__(self, problems: list[FieldError]) -> None:
        self.problems = problems


_DELIVERY_LINK: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Stored; its run created or being created.",
        "links": {
            "GetDelivery": {
                "operationId": "webhook_delivery",
                "description": "What became of the delivery (also its Location header).",
                "parameters": {
                    "workflow_id": "$request.path.workflow_id",
                    "delivery_id": "$response.body#/delivery_id",
                },
            },
        },
    }
}


WEBHOOK_ROUTE = "/webhooks/{workflow_id}"


@router.post(
    WEBHOOK_ROUTE,
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookAccepted,
    responses={
        **_DELIVERY_LINK,
        **declared(
            400,
            401,
            413,
            429,
            _404="No such workflow, no webhook trigger, or no deployment (also when the deployment vanished while the "
            "answer waited for the run).",
            _409=("Replay of an accepted delivery (same Idempotency-Key).", WebhookReplay),
            _422="The body is not valid run inputs (each problem names its field), or Prefect refused them.",
            _503="Prefect was unreachable to look the deployment up, or no secret is configured: the delivery was not "
            "acknowledged, retry it.",
        ),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object", "description": "The run inputs."}}},
        }
    },
)
async def receive_webhook(workflow_id: WorkflowId, request: Request) -> Any:
    """Start a run of the workflow from a signed delivery.

    Sign with HMAC-SHA256 over ``"{timestamp}.{raw body}"`` using the secret in
    the trigger's ``secretName`` variable; send ``X-AgentParty-Timestamp`` (unix
    seconds) and ``X-AgentParty-Signature: sha256=<hex>``. The body is the run
    inputs as a JSON object. The 202 comes once the delivery is stored, naming
    its flow run if that was created within the trigger's ``waitForRunSeconds``;
    ``Location`` is the delivery's status.
    """
    # The app's index directly rather than as a dependency: FastAPI's dependency solving was a tenth of a
    # webhook's CPU, and a burst's slowest acknowledgement waits for every request before it.
    found, config = await _webhook_of(request.app.state.workflows, workflow_id)
    await refuse_unknown_query(request)
    await request.app.state.rate_limiter.admit(f"webhook:{workflow_id}")  # a queued request is not arriving yet
    dispatcher: DeliveryDispatcher | None = request.app.state.dispatcher  # None without a Prefect API: 503 below
    attributes = {"http.request.method": "POST", "http.route": WEBHOOK_ROUTE, "agentparty.workflow.id": workflow_id}
    with server_span(f"POST {WEBHOOK_ROUTE}", request.headers, attributes) as span:
        with dispatcher.arrival() if dispatcher is not None else contextlib.nullcontext() as arrival:
            response = await _receive(request, found, config, arrival)
        if span.is_recording():
            span.set_attribute("http.response.status_code", response.status_code)
        return response


async def _receive(
    request: Request, found: IndexedWorkflow, config: WebhookTriggerConfig, arrival: Arrival | None
) -> Any:
    workflow_id = found.definition.id
    secret = _secret(
        config, workflow_id, os.environ
    )  # named by the definition, read per request: rotation needs no restart
    timestamp = _check_timestamp(request.headers.get(TIMESTAMP_HEADER), config.tolerance_seconds, time.time())
    presented = request.headers.get(SIGNATURE_HEADER)
    if not presented:
        raise _refuse(status.HTTP_401_UNAUTHORIZED, f"missing {SIGNATURE_HEADER}")
    body = await _read_body(request, config.max_body_bytes)
    if not verify_signature(secret, timestamp, body, presented):
        raise _refuse(status.HTTP_401_UNAUTHORIZED, f"bad {SIGNATURE_HEADER}")
    try:
        payload = _inputs(body, found)
    except _InvalidInputs as exc:
        return JSONResponse(ApiError(detail=exc.problems).model_dump(), status.HTTP_422_UNPROCESSABLE_CONTENT)
    deliveries: WebhookDeliveries = request.app.state.webhook_deliveries
    payload = seal_secret_inputs(found.definition, payload, deliveries.sealer)  # writeOnly inputs reach Prefect sealed

    key = request.headers.get(IDEMPOTENCY_HEADER) or presented.strip().lower()
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise _refuse(status.HTTP_400_BAD_REQUEST, f"{IDEMPOTENCY_HEADER} longer than {MAX_IDEMPOTENCY_KEY} characters")
    client = prefect_client(request)
    deployments: DeploymentDirectory = request.app.state.deployments
    deployment = full_name(found.definition)
    try:
        known = await deployments.id_of(client, deployment)  # remembered after the first look-up
    except Exception as exc:  # Prefect down or refusing: not acknowledged, so the sender retries
        logger.warning(
            "webhook of %s not acknowledged: looking up %s failed: %s", workflow_id, deployment, type(exc).__name__
        )
        raise _refuse(
            status.HTTP_503_SERVICE_UNAVAILABLE, "could not reach Prefect to find the deployment; retry the delivery"
        ) from None
    if known is None:
        raise _no_deployment(deployment)
    assert arrival is not None  # a Prefect API means a dispatcher
    return await _accept(request, found.definition.id, key, deployment, payload, config.wait_for_run_seconds, arrival)


async def _accept(
    request: Request,
    workflow_id: str,
    key: str,
    deployment: str,
    payload: dict[str, Any],
    wait_s: float,
    arrival: Arrival,
) -> JSONResponse:
    accepted, outcome = await dispatcher_of(request).submit(workflow_id, key, deployment, payload, wait_s, arrival)
    delivery_id = accepted.delivery.delivery_id
    location = _location(request, workflow_id, delivery_id)
    if not accepted.fresh:
        replay = WebhookReplay(
            detail=f"this delivery ({IDEMPOTENCY_HEADER}) was accepted before",
            delivery_id=delivery_id,
            flow_run_id=accepted.delivery.flow_run_id,
        )
        return JSONResponse(replay.model_dump(), status.HTTP_409_CONFLICT, headers=location)
    if outcome is not None and outcome.refused is not None:  # not acknowledged: the sender may fix it and retry
        code = status.HTTP_404_NOT_FOUND if outcome.missing_deployment else status.HTTP_422_UNPROCESSABLE_CONTENT
        raise _refuse(code, outcome.refused, location)
    flow_run_id = outcome.flow_run_id if outcome is not None else None
    logger.info(
        "webhook of %s accepted: delivery %s, flow run %s", workflow_id, delivery_id, flow_run_id or "(being created)"
    )
    body = WebhookAccepted(delivery_id=delivery_id, flow_run_id=flow_run_id, deployment=deployment)
    return JSONResponse(body.model_dump(), status.HTTP_202_ACCEPTED, headers=location)


@router.get(
    "/webhooks/{workflow_id}/deliveries/{delivery_id}",
    name="webhook_delivery",
    operation_id="webhook_delivery",
    response_model=DeliveryView,
    dependencies=_STRICT_QUERY,
    responses=declared(*GUARDED, _404="No such delivery of this workflow."),
)
async def webhook_delivery(
    request: Request,
    workflow_id: WorkflowId,
    delivery_id: DeliveryId,
    _: Annotated[Principal, Depends(require("runs", "read"))],
) -> DeliveryView:
    """One accepted delivery: queued, created (with its flow run) or failed (with the reason)."""
    return DeliveryView.of(await _delivery_of(request, workflow_id, delivery_id))


@router.get(
    "/webhooks/{workflow_id}/deliveries",
    response_model=list[DeliveryView],
    responses=declared(*GUARDED),
    dependencies=_STRICT_QUERY,
)
async def webhook_deliveries(
    request: Request,
    workflow_id: WorkflowId,
    _: Annotated[Principal, Depends(require("runs", "read"))],
    status_: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DeliveryView]:
    """The workflow's accepted deliveries, newest first; ``?status=failed`` lists the ones Prefect refused."""
    deliveries: WebhookDeliveries = request.app.state.webhook_deliveries
    found = await anyio.to_thread.run_sync(deliveries.recent, workflow_id, status_, limit)
    return [DeliveryView.of(d) for d in found]


@router.post(
    "/webhooks/{workflow_id}/deliveries/{delivery_id}/requeue",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryView,
    dependencies=_STRICT_QUERY,
    responses=declared(
        *GUARDED,
        503,
        _404="No such delivery of this workflow.",
        _409="The delivery is not failed: its run exists or is being created.",
    ),
)
async def requeue_webhook_delivery(
    request: Request,
    workflow_id: WorkflowId,
    delivery_id: DeliveryId,
    principal: Annotated[Principal, Depends(require("runs", "create"))],
    wait_s: Annotated[float, Query(alias="waitForRunSeconds", ge=0, le=30)] = 2.0,
) -> JSONResponse:
    """Queue a failed delivery again with the inputs it was accepted with, for senders that do not retry.

    Once its cause is fixed (the workflow deployed again, its deployment's schema
    relaxed). The answer is the delivery as it stands ``waitForRunSeconds`` later at
    most: created with its run, still queued, or failed again with the new reason.
    """
    await _delivery_of(request, workflow_id, delivery_id)  # of this workflow, before anything changes
    location = _location(request, workflow_id, delivery_id)
    requeued = await dispatcher_of(request).requeue(delivery_id, wait_s)
    if requeued is not None and not requeued[0].fresh:
        current = requeued[0].delivery.status
        raise _refuse(
            status.HTTP_409_CONFLICT, f"delivery {delivery_id} is {current}, not failed: nothing to requeue", location
        )
    now = await _delivery_of(request, workflow_id, delivery_id)  # what the wait made of it (404 if pruned meanwhile)
    logger.info("webhook delivery %s of %s requeued by %s: %s", delivery_id, workflow_id, principal.name, now.status)
    return JSONResponse(DeliveryView.of(now).model_dump(), status.HTTP_202_ACCEPTED, headers=location)
