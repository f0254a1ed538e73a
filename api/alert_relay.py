"""``POST /alerts/relay/{receiver}[/{number}]``: what Alertmanager cannot deliver itself, signed or translated, and forwarded.

Alertmanager 0.25 posts its webhook JSON as it is: it cannot sign it with an
HMAC and cannot speak an SMS gateway's format. The generated
``alertmanager.yml`` (``runtime/alert_routes.py``) therefore sends those
channels here (``alert-i-j``: channel ``j`` of ``monitoring.alerts[i]``):

* a ``webhook`` channel with ``secretName``, at ``alert-i-j``: the body is
  forwarded unchanged to the channel's URL, signed exactly as our own signed
  webhooks are (``api/signing.py``: ``X-AgentParty-Timestamp`` and
  ``X-AgentParty-Signature: sha256=HMAC(secret, "{timestamp}.{body}")``), with
  the secret read from the variable ``secretName`` per request (rotation needs no
  restart);
* an ``sms`` channel, at ``alert-i-j/k``: one short text of the alerts, posted as
  ``{"to": number, "message": text}`` to the ``gatewayUrl`` for phone number
  ``k`` only, with ``Authorization: Bearer`` from ``tokenSecretName`` when set.

One request makes exactly one delivery. Alertmanager retries a failed
integration (each ``webhook_configs`` entry) on its own, and the renderer gives
each phone number its own entry, so a gateway failing for one number never makes
another number's SMS go out twice. What remains is at least once, not exactly
once: a gateway (or webhook receiver) that accepted a message but whose answer
was lost (a timeout, a dropped connection) gets that same message again when
Alertmanager retries.

The caller is Alertmanager, authenticated by the relay token that ``agentparty
monitoring render`` generated (``HOME/monitoring/relay-token``, which
Alertmanager sends from ``http_config.authorization``); the token is read per
request, so a render while the API serves takes effect. A forward that fails
answers 502, so Alertmanager retries it.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, HTTPException, Path, Request, status
from pydantic import BaseModel, Field

from agentparty.api.errors import declared
from agentparty.api.signing import signature_headers
from agentparty.models.alerts import SmsChannelConfig, WebhookChannelConfig
from agentparty.runtime.alert_routes import RELAY_PATH, RelayChannel
from agentparty.runtime.monitoring_files import read_relay_token
from agentparty.runtime.secrets import register

logger = logging.getLogger(__name__)

router = APIRouter(tags=["alerts"])

MAX_BODY_BYTES = 1 << 20
"""Alertmanager's payloads are a few KiB per alert; a group of hundreds still fits."""
FORWARD_TIMEOUT_S = 10.0
SMS_MAX_CHARS = 612
"""Four concatenated SMS segments."""
Receiver = Annotated[str, Path(min_length=1, max_length=100, description="alert-I-J: channel J of alerts[I].")]
Number = Annotated[int, Path(ge=0, le=1000, description="K: the index in the SMS channel's phoneNumbers.")]


class RelayDelivered(BaseModel):
    """200: the alert notification was forwarded."""

    receiver: str
    number: int | None = Field(
        default=None, description="The index in phoneNumbers of the SMS sent; none for a webhook."
    )
    posts: int = Field(description="Requests made: always 1 (one delivery per relay request).")


def _refuse(request: Request, code: int, detail: str) -> HTTPException:
    request.state.audit_reason = detail
    headers = {"WWW-Authenticate": "Bearer"} if code == status.HTTP_401_UNAUTHORIZED else None
    return HTTPException(code, detail=detail, headers=headers)


def _authenticate(request: Request) -> None:
    expected = read_relay_token(request.app.state.settings.home)
    if expected is None:  # nothing can authenticate yet: a refusal of the caller, which a render mends
        raise _refuse(
            request,
            status.HTTP_401_UNAUTHORIZED,
            "the alert relay has no token yet: run `agentparty monitoring render`",
        )
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected.encode()):
        raise _refuse(request, status.HTTP_401_UNAUTHORIZED, "missing or wrong relay token (Authorization: Bearer)")
    request.state.principal = "alertmanager"


async def _body(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _refuse(request, status.HTTP_413_CONTENT_TOO_LARGE, f"body larger than {MAX_BODY_BYTES} bytes")
    return body


def sms_text(payload: Mapping[str, Any]) -> str:
    """One line per alert (``FIRING``/``RESOLVED``, name, severity, summary), cut to :data:`SMS_MAX_CHARS`."""
    lines = []
    for alert in payload.get("alerts") or []:
        labels, notes = alert.get("labels") or {}, alert.get("annotations") or {}
        state = str(alert.get("status", payload.get("status", "firing"))).upper()
        summary = notes.get("summary") or notes.get("description") or ""
        lines.append(f"[{state}] {labels.get('alertname', 'alert')} ({labels.get('severity', '-')}) {summary}".strip())
    text = "\n".join(lines) or f"[{str(payload.get('status', 'firing')).upper()}] Agent Party alert"
    return text if len(text) <= SMS_MAX_CHARS else text[: SMS_MAX_CHARS - 1] + "…"


def _variable(environ: Mapping[str, str], name: str, what: str, request: Request) -> str:
    value = environ.get(name, "")
    if not value:
        logger.warning("alert relay: %s variable %s is not set in the API's environment", what, name)
        raise _refuse(request, status.HTTP_503_SERVICE_UNAVAILABLE, f"the {what} of this channel is not configured")
    register(value)  # redacted wherever it might be echoed
    return value


async def _post(client: httpx.AsyncClient, request: Request, url: str, body: bytes, headers: dict[str, str]) -> None:
    host = urlsplit(url).netloc  # never the path or query: a receiver's URL may carry its own token
    try:
        answer = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        logger.warning("alert relay: post to %s failed: %s", host, type(exc).__name__)
        raise _refuse(request, status.HTTP_502_BAD_GATEWAY, f"could not reach {host}: {type(exc).__name__}") from None
    if answer.status_code >= 300:
        raise _refuse(request, status.HTTP_502_BAD_GATEWAY, f"{host} answered {answer.status_code}")


async def _forward_webhook(request: Request, channel: WebhookChannelConfig, body: bytes) -> None:
    assert channel.secret_name is not None  # only signed webhooks are relayed
    secret = _variable(os.environ, channel.secret_name, "signing secret", request)
    async with httpx.AsyncClient(timeout=FORWARD_TIMEOUT_S) as client:
        await _post(client, request, channel.url, body, signature_headers(secret, body))


async def _forward_sms(request: Request, channel: SmsChannelConfig, number: str, body: bytes) -> None:
    """Exactly one gateway post, to ``number``: a retry of this request repeats this number only."""
    assert channel.gateway_url is not None  # required by the channel's model
    try:
        payload = json.loads(body)
    except ValueError:
        raise _refuse(request, status.HTTP_422_UNPROCESSABLE_CONTENT, "the body is not JSON") from None
    if not isinstance(payload, dict):
        raise _refuse(request, status.HTTP_422_UNPROCESSABLE_CONTENT, "the body is not a JSON object")
    headers = {"Content-Type": "application/json"}
    if channel.token_secret_name is not None:
        token = _variable(os.environ, channel.token_secret_name, "gateway token", request)
        headers["Authorization"] = f"Bearer {token}"
    sms = json.dumps({"to": number, "message": sms_text(payload)}).encode()
    async with httpx.AsyncClient(timeout=FORWARD_TIMEOUT_S) as client:
        await _post(client, request, channel.gateway_url, sms, headers)


def _channel(request: Request, receiver: str) -> RelayChannel:
    _authenticate(request)
    channels: Mapping[str, RelayChannel] = request.app.state.alert_relay_channels
    channel = channels.get(receiver)
    if channel is None:
        raise _refuse(request, status.HTTP_404_NOT_FOUND, f"no relayed alert channel {receiver!r}")
    return channel


_RESPONSES = declared(
    413,
    422,
    _404="No relayed channel (or phone number) of that name in the configuration the API serves.",
    _502="The webhook receiver or SMS gateway failed or answered an error; Alertmanager retries.",
    _401="No relay token as Authorization: Bearer, a wrong one, or none rendered yet (agentparty monitoring render).",
    _503="The channel's secret variable is not set in the API's environment.",
)
_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "description": "Alertmanager's JSON."}}},
    }
}


@router.post(f"{RELAY_PATH}/{{receiver}}", response_model=RelayDelivered, responses=_RESPONSES, openapi_extra=_BODY)
async def relay_alert(receiver: Receiver, request: Request) -> RelayDelivered:
    """Forward an Alertmanager notification, signed, to a ``webhook`` channel with ``secretName``.

    Only Alertmanager calls this, with the relay token of ``agentparty monitoring render``
    as ``Authorization: Bearer``.
    """
    channel = _channel(request, receiver)
    if not isinstance(channel, WebhookChannelConfig):
        detail = f"{receiver!r} is an SMS channel: post to {RELAY_PATH}/{receiver}/K, one per phone number K"
        raise _refuse(request, status.HTTP_404_NOT_FOUND, detail + " (run `agentparty monitoring render` again)")
    await _forward_webhook(request, channel, await _body(request))
    return RelayDelivered(receiver=receiver, posts=1)


@router.post(
    f"{RELAY_PATH}/{{receiver}}/{{number}}", response_model=RelayDelivered, responses=_RESPONSES, openapi_extra=_BODY
)
async def relay_sms(receiver: Receiver, number: Number, request: Request) -> RelayDelivered:
    """Send an Alertmanager notification as one SMS, to phone number ``number`` of an ``sms`` channel.

    Only Alertmanager calls this, with the relay token of ``agentparty monitoring render``
    as ``Authorization: Bearer``; each phone number is its own Alertmanager
    integration, so a retry repeats one number's SMS, never another's.
    """
    channel = _channel(request, receiver)
    if not isinstance(channel, SmsChannelConfig) or number >= len(channel.phone_numbers):
        raise _refuse(request, status.HTTP_404_NOT_FOUND, f"no relayed SMS number {receiver}/{number}")
    await _forward_sms(request, channel, channel.phone_numbers[number], await _body(request))
    return RelayDelivered(receiver=receiver, number=number, posts=1)
