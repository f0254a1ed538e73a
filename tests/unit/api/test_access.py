"""API keys and roles: 401 without a (known) key, 403 without the permission, rbac=false lets any key through."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.api_support import KEYS, access_config, auth

from agentparty.models.access import ApiAccessConfig
from agentparty.models.api import CREATE_AGENT_TEMPLATE_EXAMPLE


def template(name: str) -> dict[str, Any]:
    return {**CREATE_AGENT_TEMPLATE_EXAMPLE, "name": name}


@pytest.fixture
def client(make_app: Any) -> TestClient:
    return TestClient(make_app())


def test_no_key_is_401(client: TestClient) -> None:
    response = client.post("/templates", json=template("nobody"))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_an_unknown_key_is_401(client: TestClient) -> None:
    assert client.get("/templates", headers={"X-API-Key": "not-a-key-we-issued"}).status_code == 401


def test_a_viewer_may_read_but_not_create_templates(client: TestClient) -> None:
    assert client.post("/templates", json=template("viewer made"), headers=auth("viewer")).status_code == 403
    assert client.get("/templates", headers=auth("viewer")).status_code == 200


def test_an_operator_may_not_create_templates(client: TestClient) -> None:
    response = client.post("/templates", json=template("operator made"), headers=auth("operator"))
    assert response.status_code == 403
    assert "operator" in response.json()["detail"]


def test_an_admin_creates_the_seed_example_verbatim(client: TestClient) -> None:
    response = client.post("/templates", json=CREATE_AGENT_TEMPLATE_EXAMPLE, headers=auth("admin"))
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["template"]["name"] == CREATE_AGENT_TEMPLATE_EXAMPLE["name"]
    assert created["template"]["created_by"] == "admin-key"
    assert created["version"]["version"]["version"] == "1.0.0"
    assert created["version"]["status"] == "draft"
    assert sorted(created["version"]["capabilities"]) == CREATE_AGENT_TEMPLATE_EXAMPLE["capabilities"]
    again = client.post("/templates", json=CREATE_AGENT_TEMPLATE_EXAMPLE, headers=auth("admin"))
    assert again.status_code == 409


def test_a_bearer_token_is_a_key_too(client: TestClient) -> None:
    headers = {"Authorization": f"Bearer {KEYS['admin']}"}
    assert client.post("/templates", json=template("bearer made"), headers=headers).status_code == 201


def test_without_rbac_any_valid_key_may_do_anything(make_app: Any) -> None:
    client = TestClient(make_app(access_config(rbac=False)))
    assert client.post("/templates", json=template("viewer without rbac"), headers=auth("viewer")).status_code == 201
    assert client.post("/templates", json=template("keyless"), headers={}).status_code == 401


def test_a_key_from_an_environment_variable(make_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPARTY_TEST_API_KEY", "key-from-the-environment")
    access = ApiAccessConfig.model_validate(
        {"apiKeys": [{"name": "ci", "role": "viewer", "keyEnv": "AGENTPARTY_TEST_API_KEY"}]}
    )
    client = TestClient(make_app(access))
    assert client.get("/templates", headers={"X-API-Key": "key-from-the-environment"}).status_code == 200


def test_an_invalid_template_request_is_422_naming_the_field(client: TestClient) -> None:
    response = client.post(
        "/templates", json={**template("bad caps"), "capabilities": ["Not A Name"]}, headers=auth("admin")
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:2] == ["body", "capabilities"]


def test_templates_are_listed_with_their_versions(client: TestClient) -> None:
    client.post("/templates", json=template("listed"), headers=auth("admin"))
    listed = client.get("/templates", headers=auth("viewer")).json()
    found = [t for t in listed if t["template"]["name"] == "listed"]
    assert len(found) == 1 and [v["version"]["version"] for v in found[0]["versions"]] == ["1.0.0"]
