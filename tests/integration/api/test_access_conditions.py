"""``Permission.conditions`` against a real Prefect server: a key limited to its own runs (``owner: self``, the
owner recorded as the flow run's ``agentparty.owner:`` tag when the API starts it) and a key limited to named
workflows; each sees only its part of ``/runs`` and ``/workflows`` and gets 403, audited, elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient
from support.api_support import HookWorkflows

from agentparty.api import create_app
from agentparty.models.access import owner_tag
from agentparty.runtime.api_keys import ApiKeyStore
from agentparty.runtime.settings import Settings


def _app(home: Path, hooks: HookWorkflows) -> tuple[Any, dict[str, dict[str, str]]]:
    config = home / "sdk.yaml"
    roles = {
        "admin": [{"resource": "*", "actions": ["create", "read", "update", "delete"]}],
        "own-runs": [{"resource": "runs", "actions": ["create", "read"], "conditions": {"owner": "self"}}],
        "one-workflow": [
            {"resource": "*", "actions": ["read"], "conditions": {"workflows": [hooks.deployed]}},
            {"resource": "runs", "actions": ["create"], "conditions": {"workflows": [hooks.deployed]}},
        ],
    }
    config.write_text(
        yaml.safe_dump({"security": {"accessControl": {"roles": roles, "rateLimiting": {"enabled": True}}}})
    )
    store = ApiKeyStore.at(home)
    keys = {}
    for name, role in (("bot-a", "own-runs"), ("bot-b", "own-runs"), ("scoped", "one-workflow"), ("root", "admin")):
        value, _ = store.create(name, role)
        keys[name] = {"X-API-Key": value}
    return create_app(settings=Settings(home=home, sdk_config=config)), keys


def test_owner_self_and_workflow_conditions_filter_runs_and_refuse_the_rest(
    api_home: Path, hook_workflows: HookWorkflows
) -> None:
    app, keys = _app(api_home, hook_workflows)
    wid = hook_workflows.deployed
    with TestClient(app) as client:
        started = {}
        for bot in ("bot-a", "bot-b"):
            response = client.post(f"/workflows/{wid}/runs", json={"inputs": {"ticket_id": bot}}, headers=keys[bot])
            assert response.status_code == 201, response.text
            assert owner_tag(bot) in response.json()["tags"]
            started[bot] = response.json()["id"]
        invalid = client.post(f"/workflows/{wid}/runs", json={"inputs": {}}, headers=keys["bot-a"])
        assert invalid.status_code == 422 and "ticket_id" in invalid.text

        seen_a = {r["id"] for r in client.get("/runs", params={"limit": 200}, headers=keys["bot-a"]).json()}
        assert started["bot-a"] in seen_a and started["bot-b"] not in seen_a
        everything = {r["id"] for r in client.get("/runs", params={"limit": 200}, headers=keys["root"]).json()}
        assert set(started.values()) <= everything

        scoped_runs = client.get("/runs", params={"limit": 200}, headers=keys["scoped"]).json()
        assert scoped_runs and {r["workflow_id"] for r in scoped_runs} == {wid}
        other = client.get("/runs", params={"workflow_id": hook_workflows.manual}, headers=keys["scoped"])
        assert other.status_code == 403 and hook_workflows.manual in other.json()["detail"]
        elsewhere = client.post(f"/workflows/{hook_workflows.manual}/runs", json={}, headers=keys["scoped"])
        assert elsewhere.status_code == 403
        listed = client.get("/workflows", headers=keys["scoped"]).json()["workflows"]
        assert [w["id"] for w in listed] == [wid]
        assert client.get("/workflows", headers=keys["bot-a"]).status_code == 403  # runs only
        deliveries = client.get(f"/webhooks/{wid}/deliveries", headers=keys["bot-a"])
        assert deliveries.status_code == 403  # webhook deliveries belong to no key: not its own

        audit = client.get("/audit", params={"action": "access.refused"}, headers=keys["root"]).json()["entries"]
    refusals = [(e["actor"], e["target"], e["details"]["reason"]) for e in audit]
    assert any(actor == "key:scoped" and hook_workflows.manual in reason for actor, _, reason in refusals)
    assert any(target == "GET /workflows" and actor == "key:bot-a" for actor, target, _ in refusals)
