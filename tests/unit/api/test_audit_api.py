"""The API's audit trail: each request recorded (who, what, outcome), refusals with their reason, ``GET /audit``
filtered by actor, action and time, paged, for admins only; conditions refused at load or by a 403 that is audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from support.api_support import auth

from agentparty.api import create_app
from agentparty.models.access import ApiAccessConfig, Scope, owner_tag, run_owner
from agentparty.models.sdk_config import Permission
from agentparty.runtime.api_keys import ApiKeyStore
from agentparty.runtime.settings import Settings


def _entries(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/audit", params=params, headers=auth("admin"))
    assert response.status_code == 200, response.text
    return list(response.json()["entries"])


def test_requests_and_refusals_are_recorded_with_who_what_and_outcome(make_app: Any) -> None:
    client = TestClient(make_app())
    assert client.get("/templates", headers=auth("viewer")).status_code == 200
    assert client.get("/templates", headers={"X-API-Key": "guess"}).status_code == 401
    assert client.post("/templates", json={}, headers=auth("viewer")).status_code == 403
    entries = _entries(client)
    [read] = [e for e in entries if e["action"] == "api.request" and e["actor"] == "key:viewer-key"]
    assert read["target"] == "GET /templates" and read["outcome"] == "200"
    refused = {e["outcome"]: e for e in entries if e["action"] == "access.refused"}
    assert refused["401"]["actor"] == "anonymous" and refused["401"]["details"]["reason"] == "unknown API key"
    assert refused["403"]["actor"] == "key:viewer-key"
    assert "may not create templates" in refused["403"]["details"]["reason"]


def test_audit_is_for_admins_only(make_app: Any) -> None:
    client = TestClient(make_app())
    assert client.get("/audit", headers=auth("viewer")).status_code == 403
    assert client.get("/audit", headers=auth("operator")).status_code == 403
    assert client.get("/audit").status_code == 401
    assert client.get("/audit", headers=auth("admin")).status_code == 200


def test_audit_filters_by_actor_action_prefix_and_time_and_pages(make_app: Any) -> None:
    client = TestClient(make_app())
    for _ in range(3):
        client.get("/templates", headers=auth("operator"))
    client.get("/templates", headers={"X-API-Key": "nope"})
    mine = _entries(client, actor="key:operator-key")
    assert len(mine) == 3 and all(e["actor"] == "key:operator-key" for e in mine)
    assert {e["action"] for e in _entries(client, action="access")} == {"access.refused"}
    assert _entries(client, action="acc") == []  # a prefix of dotted parts, not of characters
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    assert _entries(client, since=later) == []
    assert len(_entries(client, until=later, actor="key:operator-key")) == 3
    window = datetime.now(UTC).isoformat()  # pages of a fixed window: newer requests do not shift them
    first = client.get("/audit", params={"limit": 2, "until": window}, headers=auth("admin")).json()
    assert len(first["entries"]) == 2 and first["next_offset"] == 2
    seqs = [e["seq"] for e in first["entries"]]
    assert seqs == sorted(seqs, reverse=True)  # newest first
    rest = client.get("/audit", params={"limit": 500, "offset": 2, "until": window}, headers=auth("admin")).json()
    assert rest["next_offset"] is None and rest["entries"][0]["seq"] == seqs[-1] - 1
    assert client.get("/audit", params={"who": "x"}, headers=auth("admin")).status_code == 422


def _conditional_app(home: Path, roles: dict[str, Any]) -> Any:
    config = home / "sdk.yaml"
    config.write_text(yaml.safe_dump({"security": {"accessControl": {"roles": roles}}}))
    return create_app(settings=Settings(home=home, sdk_config=config))


def test_a_workflow_limited_key_is_403_elsewhere_and_the_audit_log_says_why(api_home: Path) -> None:
    app = _conditional_app(
        api_home,
        {
            "admin": [{"resource": "*", "actions": ["create", "read", "update", "delete"]}],
            "limited": [{"resource": "runs", "actions": ["read"], "conditions": {"workflows": ["allowed"]}}],
        },
    )
    store = ApiKeyStore.at(api_home)
    limited, _ = store.create("limited-bot", "limited")
    admin, _ = store.create("root", "admin")
    client = TestClient(app)
    refused = client.get("/webhooks/other/deliveries", headers={"X-API-Key": limited})
    assert refused.status_code == 403
    assert "workflow 'other'" in refused.json()["detail"] and "conditions" in refused.json()["detail"]
    assert client.get("/templates", headers={"X-API-Key": limited}).status_code == 403  # not granted there at all
    page = client.get("/audit", params={"action": "access.refused"}, headers={"X-API-Key": admin}).json()
    reasons = [e["details"]["reason"] for e in page["entries"] if e["actor"] == "key:limited-bot"]
    assert any("workflow 'other'" in reason for reason in reasons)


def test_conditions_the_engine_does_not_understand_are_refused_at_load() -> None:
    with pytest.raises(ValueError, match="unknown condition 'team'"):
        Permission(resource="runs", actions=["read"], conditions={"team": "red"})
    with pytest.raises(ValueError, match="owner: only 'self'"):
        Permission(resource="runs", actions=["read"], conditions={"owner": "alice"})
    with pytest.raises(ValueError, match=r"roles\.bot\.0\.conditions\.owner: cannot be checked on templates"):
        ApiAccessConfig.model_validate(
            {"roles": {"bot": [{"resource": "templates", "actions": ["read"], "conditions": {"owner": "self"}}]}}
        )


def test_a_scope_admits_by_workflow_and_owner() -> None:
    scope = Scope(({"workflows": ["a"]}, {"owner": "self"}))
    assert scope.admits("me", "a") and scope.admits("me", "b", owner="me") and not scope.admits("me", "b", "you")
    assert scope.reaches_workflow("b") and Scope(({"workflows": ["a"]},)).workflows() == frozenset({"a"})
    assert Scope(({"owner": "self"},)).owner_only() and not Scope().restricted
    assert run_owner(["webhook", owner_tag("bot-1")]) == "bot-1" and run_owner(["webhook"]) is None
