"""``POST /alerts/relay/{receiver}[/{number}]``: only Alertmanager, with the rendered token, reaches a configured channel.

Forwarding (signing, SMS) is tested against real local receivers in
tests/integration/api/test_alert_relay_forwarding.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from support.alerting_support import every_channel_alerts, monitoring
from support.api_support import access_config

from agentparty.api import create_app
from agentparty.api.alert_relay import SMS_MAX_CHARS, sms_text
from agentparty.runtime.monitoring_files import ensure_relay_token, read_relay_token
from agentparty.runtime.settings import Settings


@pytest.fixture
def relay_client(api_home: Path) -> TestClient:
    sdk = api_home / "sdk.yaml"
    sdk.write_text(yaml.safe_dump({"monitoring": monitoring(*every_channel_alerts())}))
    return TestClient(create_app(access_config(), settings=Settings(home=api_home, sdk_config=sdk)))


def relay_auth(home: Path) -> dict[str, str]:
    """The header Alertmanager sends, with the token a render generates."""
    ensure_relay_token(home)
    return {"Authorization": f"Bearer {read_relay_token(home)}"}


def test_before_any_render_the_relay_answers_401_saying_what_to_run(relay_client: TestClient) -> None:
    answer = relay_client.post("/alerts/relay/alert-0-1", json={"alerts": []}, headers={"Authorization": "Bearer x"})
    assert answer.status_code == 401 and "agentparty monitoring render" in answer.json()["detail"]


def test_a_missing_or_wrong_token_is_401(relay_client: TestClient, api_home: Path) -> None:
    ensure_relay_token(api_home)
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {read_relay_token(api_home)}"}):
        answer = relay_client.post("/alerts/relay/alert-0-1", json={"alerts": []}, headers=headers)
        assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"


def test_an_api_key_is_no_relay_token(relay_client: TestClient, api_home: Path) -> None:
    ensure_relay_token(api_home)
    answer = relay_client.post("/alerts/relay/alert-0-1", json={}, headers={"X-API-Key": "test-admin-key-0001"})
    assert answer.status_code == 401


def test_an_unknown_or_unrelayed_receiver_is_404(relay_client: TestClient, api_home: Path) -> None:
    auth = relay_auth(api_home)
    for receiver in ("alert-9-0", "alert-0-0", "alert-2-0"):  # none; an email channel; an unsigned webhook
        answer = relay_client.post(f"/alerts/relay/{receiver}", json={}, headers=auth)
        assert answer.status_code == 404 and receiver in answer.json()["detail"]


def test_sms_is_relayed_per_number_and_a_number_outside_the_channel_is_404(
    relay_client: TestClient, api_home: Path
) -> None:
    auth = relay_auth(api_home)
    whole = relay_client.post("/alerts/relay/alert-1-1", json={"alerts": []}, headers=auth)  # the SMS channel
    assert whole.status_code == 404 and "/alerts/relay/alert-1-1/K" in whole.json()["detail"]
    for target in ("alert-1-1/2", "alert-0-1/0", "alert-2-0/0"):  # a third number; a webhook; an unrelayed one
        answer = relay_client.post(f"/alerts/relay/{target}", json={"alerts": []}, headers=auth)
        assert answer.status_code == 404, target
    assert relay_client.post("/alerts/relay/alert-1-1/-1", json={}, headers=auth).status_code == 422


def test_a_signed_webhook_whose_secret_variable_is_unset_is_503(
    relay_client: TestClient, api_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENTPARTY_TEST_ALERT_SECRET", raising=False)
    auth = relay_auth(api_home)
    answer = relay_client.post("/alerts/relay/alert-0-1", json={"alerts": []}, headers=auth)
    assert answer.status_code == 503 and "signing secret" in answer.json()["detail"]


def test_the_sms_text_lists_each_alert_and_is_cut_to_four_segments() -> None:
    alert = {"status": "firing", "labels": {"alertname": "AgentPartyModelErrorRateHigh", "severity": "medium"}}
    payload = {"status": "firing", "alerts": [{**alert, "annotations": {"summary": "50.0% of a/b calls fail"}}]}
    assert sms_text(payload) == "[FIRING] AgentPartyModelErrorRateHigh (medium) 50.0% of a/b calls fail"
    many = {"alerts": [{**alert, "annotations": {"summary": "x" * 100}}] * 20}
    assert len(sms_text(many)) == SMS_MAX_CHARS and sms_text(many).endswith("…")
