"""Routes whose Prefect or graph server is missing or unreachable answer 503 with the reason (the unit half: no server).

Agents and teams from the real graph server, workflows and runs from the real Prefect
server are ``tests/integration/api/test_resources.py``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from support.api_support import access_config, auth

from agentparty.api import create_app
from agentparty.runtime.local_service import free_port
from agentparty.runtime.settings import Settings


def test_prefect_routes_answer_503_without_a_prefect_api(make_app: Any) -> None:
    """Outside the lifespan (no client opened) the routes say what is missing instead of failing."""
    client = TestClient(make_app())  # not entered: the lifespan does not run
    assert client.get("/workflows", headers=auth("viewer")).status_code == 503


def test_an_unreachable_prefect_is_503_with_the_reason(make_app: Any) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}):
        response = TestClient(make_app()).get("/approvals", headers=auth("viewer"))
    assert response.status_code == 503 and "Prefect" in response.json()["detail"]


def test_an_unreachable_graph_is_503_with_the_reason(api_home: Path) -> None:
    """Not a 500: the graph server is the API's problem, and the answer says so, after the API's short retry
    window (``api_graph_retry_seconds``), not the driver's 30 s for runs."""
    from pydantic import SecretStr

    from agentparty.models.config import DatabaseConfig

    dead = DatabaseConfig(uri=f"bolt://127.0.0.1:{free_port()}", username="root", password=SecretStr("x"))
    client = TestClient(create_app(access_config(), settings=Settings(home=api_home, database=dead)))
    started = time.monotonic()
    response = client.get("/agents", headers=auth("viewer"))
    assert response.status_code == 503 and "graph database" in response.json()["detail"]
    assert time.monotonic() - started < 15, "the API retried the unreachable graph for the driver's 30 s"
