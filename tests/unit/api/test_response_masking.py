"""API responses that carry run data are masked (``api/masking.py``); what users configure is served as written."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from agentparty.api.masking import install_masking
from agentparty.runtime.masking import Masker

SAID = {"content": "write to jane.doe@example.com or +1 415 555 2671", "tokens": 12}


def app_with(masker: Masker | None) -> TestClient:
    app = FastAPI()

    @app.get("/agents/{agent_id}/engagements/{engagement_id}/messages")
    def messages(agent_id: str, engagement_id: str) -> list[dict[str, Any]]:
        return [SAID]

    @app.get("/templates/{name}")
    def template(name: str) -> dict[str, Any]:
        return SAID

    install_masking(app, masker)
    return TestClient(app)


def test_run_data_is_masked_and_configuration_is_not() -> None:
    client = app_with(Masker(fields=["tokens"]))
    response = client.get("/agents/a/engagements/e/messages")
    assert response.json() == [{"content": "write to [email] or [phone]", "tokens": "[masked]"}]
    assert int(response.headers["content-length"]) == len(response.content)
    assert client.get("/templates/t").json() == SAID


def test_nothing_is_masked_with_data_masking_off() -> None:
    assert app_with(None).get("/agents/a/engagements/e/messages").json() == [SAID]
