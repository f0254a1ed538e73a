"""Shared by the API tests: apps on a temporary home, keys and roles, webhook signing, deploying a definition.

``api_home`` and ``make_app`` are fixtures: the ``conftest.py`` of ``tests/unit/api`` and of
``tests/integration/api`` import them, so both lanes build their apps the same way.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from agentparty.api import create_app
from agentparty.api.security import key_digest
from agentparty.api.signing import signature_headers
from agentparty.models.access import ApiAccessConfig
from agentparty.runtime.settings import Settings

KEYS = {"admin": "test-admin-key-0001", "operator": "test-operator-key-0001", "viewer": "test-viewer-key-0001"}
SECRET_ENV = "AGENTPARTY_TEST_WEBHOOK_SECRET"
SECRET = "test-webhook-secret-value"

HANDLERS = "def echo(text):\n    return {'echo': text}\n"


def access_config(rbac: bool = True, rate_limiting: dict[str, Any] | None = None) -> ApiAccessConfig:
    return ApiAccessConfig.model_validate(
        {
            "accessControl": {"rbac": rbac, "rateLimiting": rate_limiting or {"enabled": False}},
            "apiKeys": [
                {"name": f"{role}-key", "role": role, "keySha256": key_digest(key)} for role, key in KEYS.items()
            ],
        }
    )


def auth(role: str) -> dict[str, str]:
    return {"X-API-Key": KEYS[role]}


@pytest.fixture
def api_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def make_app(api_home: Path) -> Any:
    def make(access: ApiAccessConfig | None = None, **kwargs: Any) -> FastAPI:
        return create_app(access or access_config(), settings=Settings(home=api_home), **kwargs)

    return make


def hook_definition(
    workflow_id: str, *, webhook: dict[str, Any] | None = None, manual_only: bool = False
) -> dict[str, Any]:
    """A webhook workflow whose 202 waits long enough for its run to exist, however loaded the test machine is."""
    trigger = {
        "type": "webhook",
        "configuration": {
            "secretName": SECRET_ENV,
            "maxBodyBytes": 2048,
            "toleranceSeconds": 60,
            "waitForRunSeconds": 30,
            **(webhook or {}),
        },
    }
    return {
        "id": workflow_id,
        "name": f"Api hook {workflow_id}",
        "inputs": {
            "ticket_id": {"type": "string", "minLength": 1},
            "priority": {"type": "integer", "minimum": 1, "maximum": 5, "default": 3},
        },
        "steps": [
            {
                "id": "echo",
                "type": "task",
                "configuration": {"handler": "api_handlers:echo"},
                "inputs": {"text": "${inputs.ticket_id}"},
            }
        ],
        "triggers": [{"type": "manual"}] if manual_only else [trigger],
    }


@dataclass
class HookWorkflows:
    folder: Path
    deployed: str
    """Has a webhook trigger and a deployment."""
    unwaited: str
    """Deployed; its webhook answers as soon as a delivery is stored (``waitForRunSeconds: 0``)."""
    undeployed: str
    """Has a webhook trigger, no deployment."""
    manual: str
    """Deployed, but no webhook trigger."""
    deployment: str
    deployment_id: str
    unwaited_deployment_id: str


def deploy(path: Path) -> str:
    """Create the definition's deployment (no worker: its runs stay Scheduled); returns the deployment id."""
    from prefect.types.entrypoint import EntrypointType

    from agentparty.deployments.naming import deployment_name
    from agentparty.flows import compile_workflow
    from agentparty.runtime.documents import load_workflow

    definition = load_workflow(path)
    flow = compile_workflow(definition, source=path)
    return str(flow.to_deployment(name=deployment_name(definition), entrypoint_type=EntrypointType.MODULE_PATH).apply())


def signed(payload: Any, secret: str = SECRET, timestamp: int | None = None, **extra: str) -> dict[str, Any]:
    """``content`` and ``headers`` for a signed webhook post."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return {"content": body, "headers": {**signature_headers(secret, body, timestamp), **extra}}


def delivery_of(client: Any, accepted: Any, *, created_within: float = 120.0) -> dict[str, Any]:
    """The delivery a 202 or 409 names, read from its ``Location`` until its run exists (or it failed)."""
    import time

    deadline = time.monotonic() + created_within
    while True:
        view = client.get(accepted.headers["Location"], headers=auth("viewer"))
        assert view.status_code == 200, view.text
        if view.json()["status"] != "queued" or time.monotonic() > deadline:
            return dict(view.json())
        time.sleep(0.2)


def wait_until_serving(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    """Until an ``agentparty api`` process started by a test answers; its log's tail when it exits or never does."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{url}/openapi.json", timeout=2).read()
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise AssertionError(f"agentparty api did not start:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.2)
