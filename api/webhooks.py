"""``POST /webhooks/{workflow_id}``: a signed delivery starts a run of the workflow's deployment.

Prefect's open-source server has no webhooks (DESIGN.md §6), so this is ours.
The workflow must declare a ``webhook`` trigger; its configuration names the
environment variable that holds the HMAC secret, the largest body accepted and
how old a signed timestamp may be. Checks run cheapest first, and nothing
unauthenticated is parsed: the workflow, the rate limit, the timestamp, the
size (``Content-Length``, then a running limit while the body is read), the
signature, and only then JSON and the run inputs. The run is created from the deployment ``full_name(definition)``
with ``{"inputs": body}``; replays are refused by ``Idempotency-Key`` (the
signature by default), kept durably (``webhook_receipts``) and passed on to
Prefect, so no delivery is ever run twice or lost.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from agentparty.api.flow_runs import FlowRunCreator
from agentparty.api.services import DeploymentDirectory, flow_run_creator, prefect_client, workflow_index
from agentparty.api.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from agentparty.api.webhook_receipts import WebhookReceipts, prefect_idempotency_key
from agentparty.api.workflow_index import IndexedWorkflow, WorkflowIndex
from agentparty.deployments.naming import deployment_parameters, full_name
from agentparty.models.workflow import WebhookTriggerConfig

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

logger = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"])

MAX_IDEMPOTENCY_KEY = 256
WEBHOOK_TAG = "webhook"


class WebhookAccepted(BaseModel):
    """202: the flow run was created (Scheduled); a worker of the deployment's pool runs it."""

    flow_run_id: str
    deployment: str = Field(description="The deployment the run belongs to, FLOW/DEPLOYMENT.")


class WebhookReplay(BaseModel):
    """409: a delivery with this idempotency key was accepted before."""

    detail: str
    flow_run_id: str


class InputProblem(BaseModel):
    field: str
    msg: str


class InvalidInputs(BaseModel):
    """422: the body is not a valid set of run inputs for the workflow."""

    detail: list[InputProblem]


def _refuse(code: int, detail: str, headers: Mapping[str, str] | None = None) -> HTTPException:
    return HTTPException(code, detail=detail, headers=dict(headers) if headers else None)


def _no_deployment(deployment: str) -> HTTPException:
    return _refuse(
        status.HTTP_404_NOT_FOUND,
        f"the workflow has no deployment {deployment!r}: run `agentparty deploy` for its definition first",
    )


def _webhook_of(index: WorkflowIndex, workflow_id: str) -> tuple[IndexedWorkflow, WebhookTriggerConfig]:
    found = index.get(workflow_id)
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
            workflow_id, config.secret_name or "(no secretName in the trigger)",
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
        problems = [InputProblem(field="inputs", msg=f"expected a JSON object of run inputs, got {type(payload).__name__}")]
        raise _InvalidInputs(problems)
    _, found_problems = found.definition.resolve_run_inputs(payload)
    if found_problems:
        problems = []
        for problem in found_problems:
            where, _, message = problem.partition(": ")
            problems.append(InputProblem(field=where, msg=message))
        raise _InvalidInputs(problems)
    return payload


class _InvalidInputs(Exception):
    def __init__(self, problems: list[InputProblem]) -> None:
        self.problems = problems


async def _create_run(
    client: PrefectClient, creator: FlowRunCreator, deployments: DeploymentDirectory, deployment: str,
    payload: dict[str, Any], key: str,
) -> str:
    """Create the run (a few at a time: a burst queues in ``FlowRunCreator`` instead of failing in
    Prefect's database); its idempotency key makes a repeated create return the same run."""
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    for attempt in range(2):
        deployment_id = await deployments.id_of(client, deployment)
        if deployment_id is None:
            raise _no_deployment(deployment)
        try:
            run = await creator.create(
                deployment_id, parameters=deployment_parameters(payload), idempotency_key=key, tags=[WEBHOOK_TAG]
            )
        except (ObjectNotFound, PrefectHTTPStatusError) as exc:
            if isinstance(exc, PrefectHTTPStatusError) and exc.response.status_code != 404:
                raise
            deployments.forget(deployment)  # deleted and perhaps re-created under a new id: look it up again
            if attempt:
                raise _no_deployment(deployment) from None
            continue
        return str(run.id)
    raise AssertionError("unreachable")


@router.post(
    "/webhooks/{workflow_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookAccepted,
    responses={
        400: {"description": "The body is not JSON, or the idempotency key is too long."},
        401: {"description": "Missing, malformed or stale timestamp, or a bad signature."},
        404: {"description": "No such workflow, no webhook trigger, or no deployment."},
        409: {"model": WebhookReplay, "description": "Replay of an accepted delivery (same Idempotency-Key)."},
        413: {"description": "Body larger than the trigger's maxBodyBytes."},
        422: {"model": InvalidInputs, "description": "The body is not valid run inputs; each problem names its field."},
        429: {"description": "Rate limit of this workflow's webhook exceeded (see Retry-After)."},
        503: {"description": "Prefect is unreachable (the delivery was not acknowledged: retry), or no secret is configured."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object", "description": "The run inputs."}}},
        }
    },
)
async def receive_webhook(
    workflow_id: str,
    request: Request,
    index: WorkflowIndex = Depends(workflow_index),
) -> Any:
    """Start a run of the workflow from a signed delivery.

    Sign with HMAC-SHA256 over ``"{timestamp}.{raw body}"`` using the secret in
    the trigger's ``secretName`` variable; send ``X-AgentParty-Timestamp`` (unix
    seconds) and ``X-AgentParty-Signature: sha256=<hex>``. The body is the run
    inputs as a JSON object.
    """
    found, config = _webhook_of(index, workflow_id)
    await request.app.state.rate_limiter.admit(f"webhook:{workflow_id}")
    secret = _secret(config, workflow_id, os.environ)  # named by the definition, read per request: rotation needs no restart
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
        return JSONResponse(InvalidInputs(detail=exc.problems).model_dump(), status.HTTP_422_UNPROCESSABLE_CONTENT)

    key = request.headers.get(IDEMPOTENCY_HEADER) or presented.strip().lower()
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise _refuse(status.HTTP_400_BAD_REQUEST, f"{IDEMPOTENCY_HEADER} longer than {MAX_IDEMPOTENCY_KEY} characters")
    client = prefect_client(request)
    deployments: DeploymentDirectory = request.app.state.deployments
    deployment = full_name(found.definition)
    if await deployments.id_of(client, deployment) is None:
        raise _no_deployment(deployment)
    receipts: WebhookReceipts = request.app.state.webhook_receipts
    receipt = await anyio.to_thread.run_sync(receipts.claim, workflow_id, key)
    if receipt.flow_run_id is not None:
        replay = WebhookReplay(detail=f"this delivery ({IDEMPOTENCY_HEADER}) was accepted before", flow_run_id=receipt.flow_run_id)
        return JSONResponse(replay.model_dump(), status.HTTP_409_CONFLICT)
    try:
        flow_run_id = await _create_run(
            client, flow_run_creator(request), deployments, deployment, payload, prefect_idempotency_key(workflow_id, key)
        )
    except HTTPException:
        raise
    except Exception as exc:  # Prefect down or refusing: not acknowledged, so the sender retries
        answer = getattr(getattr(exc, "response", None), "status_code", None)
        logger.warning(
            "webhook of %s not acknowledged: creating the flow run failed: %s%s",
            workflow_id, type(exc).__name__, f" (Prefect answered {answer})" if answer else "",
        )
        raise _refuse(status.HTTP_503_SERVICE_UNAVAILABLE, "could not create the flow run; retry the delivery") from None
    await anyio.to_thread.run_sync(receipts.record_run, workflow_id, key, flow_run_id)
    logger.info("webhook of %s accepted: flow run %s of %s", workflow_id, flow_run_id, deployment)
    return WebhookAccepted(flow_run_id=flow_run_id, deployment=deployment)
