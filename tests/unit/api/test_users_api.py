"""``DELETE /users/{id}`` and ``GET /users/{id}/export`` are for admins only, and erase nothing without Prefect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from support.api_support import auth

from agentparty.runtime.audit import AuditLog


def test_users_routes_are_for_admins_only(make_app: Any) -> None:
    client = TestClient(make_app())
    for role in ("viewer", "operator"):
        assert client.get("/users/ana/export", headers=auth(role)).status_code == 403
        assert client.delete("/users/ana", headers=auth(role)).status_code == 403
    assert client.delete("/users/ana").status_code == 401


def test_without_prefect_an_erasure_is_refused_before_anything_goes(make_app: Any, api_home: Path) -> None:
    client = TestClient(make_app())  # no lifespan: no Prefect client
    response = client.delete("/users/ana", headers=auth("admin"))
    assert response.status_code == 503 and "Prefect" in response.json()["detail"]
    assert client.get("/users/ana/export", headers=auth("admin")).status_code == 503
    assert AuditLog.at(api_home).query(action="gdpr.erase") == []
