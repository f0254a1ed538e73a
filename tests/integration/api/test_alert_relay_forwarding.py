"""The alert relay forwards to real local receivers: signed exactly as our webhooks are, and SMS per number.

Alertmanager's part (one ``webhook_configs`` entry per phone number, each retried
on its own) is played here by posting to each URL of the rendered receiver and
posting again to those that failed, as Alertmanager's per-integration retry does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from support.alert_receivers import RecordingReceiver
from support.alerting_support import ALERT_SECRET, ALERT_SECRET_ENV, sms_channel, webhook_channel
from support.api_support import access_config

from agentparty.api import create_app
from agentparty.api.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from agentparty.models.sdk_config import SDKConfiguration
from agentparty.runtime.alert_routes import AlertmanagerLayout, alertmanager_config
from agentparty.runtime.monitoring_files import ensure_relay_token, read_relay_token
from agentparty.runtime.settings import Settings

NUMBERS = ["+4915112345678", "+4915187654321"]
NOTIFICATION = {
    "version": "4",
    "status": "firing",
    "receiver": "alert-0",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "AgentPartyModelErrorRateHigh", "severity": "medium"},
            "annotations": {"summary": "60.0% of openai/gpt-4o calls fail"},
        }
    ],
}


@pytest.fixture
def receiver() -> Iterator[RecordingReceiver]:
    with RecordingReceiver() as running:
        yield running


@pytest.fixture
def client(api_home: Path, receiver: RecordingReceiver, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv(ALERT_SECRET_ENV, ALERT_SECRET)
    monkeypatch.setenv("AGENTPARTY_TEST_SMS_TOKEN", "gateway-token-123")
    channels = [
        webhook_channel(f"{receiver.url}/hook"),
        sms_channel(f"{receiver.url}/sms", tokenSecretName="AGENTPARTY_TEST_SMS_TOKEN"),
    ]
    alerts = [{"type": "error", "threshold": 5, "severity": "high", "channels": channels}]
    sdk = api_home / "sdk.yaml"
    sdk.write_text(yaml.safe_dump({"monitoring": {"alerts": alerts}}))
    ensure_relay_token(api_home)
    assert sms_channel()["configuration"]["phoneNumbers"] == NUMBERS
    return TestClient(create_app(access_config(), settings=Settings(home=api_home, sdk_config=sdk)))


def post(client: TestClient, home: Path, receiver: str, body: bytes) -> httpx.Response:
    headers = {"Authorization": f"Bearer {read_relay_token(home)}", "Content-Type": "application/json"}
    return client.post(f"/alerts/relay/{receiver}", content=body, headers=headers)


def test_a_signed_webhook_gets_alertmanager_s_body_unchanged_and_verifiably_signed(
    client: TestClient, api_home: Path, receiver: RecordingReceiver
) -> None:
    body = json.dumps(NOTIFICATION).encode()
    answer = post(client, api_home, "alert-0-0", body)
    assert answer.status_code == 200 and answer.json() == {"receiver": "alert-0-0", "number": None, "posts": 1}
    [forwarded] = receiver.posts
    assert forwarded.path == "/hook" and forwarded.body == body
    headers = forwarded.headers
    assert verify_signature(ALERT_SECRET, headers[TIMESTAMP_HEADER.lower()], body, headers[SIGNATURE_HEADER.lower()])
    assert not verify_signature(
        "another-secret", headers[TIMESTAMP_HEADER.lower()], body, headers[SIGNATURE_HEADER.lower()]
    )


def sms_targets(home: Path) -> list[str]:
    """The relay paths of the SMS channel in the rendered ``alertmanager.yml``, one per phone number."""
    monitoring = SDKConfiguration.model_validate(yaml.safe_load((home / "sdk.yaml").read_text())).monitoring
    routed = alertmanager_config(monitoring, AlertmanagerLayout("http://relay", "relay-token"))
    [receiver] = [r for r in routed["receivers"] if r["name"] == "alert-0"]
    urls = [entry["url"].removeprefix("http://relay/alerts/relay/") for entry in receiver["webhook_configs"]]
    return [url for url in urls if url.startswith("alert-0-1/")]


def test_sms_goes_to_the_gateway_once_per_number_with_its_token(
    client: TestClient, api_home: Path, receiver: RecordingReceiver
) -> None:
    targets = sms_targets(api_home)
    assert targets == ["alert-0-1/0", "alert-0-1/1"]
    for k, target in enumerate(targets):
        answer = post(client, api_home, target, json.dumps(NOTIFICATION).encode())
        assert answer.json() == {"receiver": "alert-0-1", "number": k, "posts": 1}
    sent = [json.loads(p.body) for p in receiver.posts]
    assert [s["to"] for s in sent] == NUMBERS
    assert sent[0]["message"] == "[FIRING] AgentPartyModelErrorRateHigh (medium) 60.0% of openai/gpt-4o calls fail"
    assert {p.path for p in receiver.posts} == {"/sms"}
    assert all(p.headers["authorization"] == "Bearer gateway-token-123" for p in receiver.posts)


def test_a_gateway_failing_for_the_second_number_once_sends_each_number_exactly_one_sms(
    client: TestClient, api_home: Path, receiver: RecordingReceiver
) -> None:
    failures = {NUMBERS[1]: 1}

    def gateway(body: bytes) -> int:  # fails once for the second number, then accepts
        to = json.loads(body)["to"]
        if failures.get(to, 0) > 0:
            failures[to] -= 1
            return 503
        return 200

    receiver.answer = gateway
    body = json.dumps(NOTIFICATION).encode()
    failed = [t for t in sms_targets(api_home) if post(client, api_home, t, body).status_code != 200]
    assert failed == ["alert-0-1/1"]  # 502: Alertmanager retries this integration, and only this one
    assert [post(client, api_home, t, body).status_code for t in failed] == [200]
    accepted = [json.loads(p.body)["to"] for p in receiver.posts if p.status == 200]
    assert sorted(accepted) == sorted(NUMBERS)  # each number exactly one SMS
    assert [json.loads(p.body)["to"] for p in receiver.posts if p.status != 200] == [NUMBERS[1]]


def test_a_failing_receiver_is_502_so_alertmanager_retries(
    client: TestClient, api_home: Path, receiver: RecordingReceiver
) -> None:
    receiver.status = 500
    answer = post(client, api_home, "alert-0-0", json.dumps(NOTIFICATION).encode())
    assert answer.status_code == 502 and "answered 500" in answer.json()["detail"]
    assert post(client, api_home, "alert-0-1/0", b"not json").status_code == 422
