"""Fixtures of the API tests: apps on a temporary home, deployed webhook workflows in the search path."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from api_support import HANDLERS, SECRET, SECRET_ENV, HookWorkflows, access_config, deploy, hook_definition
from fastapi import FastAPI

from agentparty.api import create_app
from agentparty.flows.deployed import WORKFLOWS_ENV
from agentparty.models.access import ApiAccessConfig
from agentparty.runtime.settings import Settings


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


@pytest.fixture(scope="module")
def hook_workflows(prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HookWorkflows]:
    """Definitions in the workflow search path (AGENTPARTY_WORKFLOWS) and the webhook secret in the environment."""
    from agentparty.deployments.naming import full_name
    from agentparty.runtime.documents import load_workflow

    folder = tmp_path_factory.mktemp("api-workflows")
    (folder / "api_handlers.py").write_text(HANDLERS)
    tag = uuid.uuid4().hex[:8]
    ids = {
        "deployed": f"api-hook-{tag}", "unwaited": f"api-hook-unwaited-{tag}",
        "undeployed": f"api-hook-undeployed-{tag}", "manual": f"api-manual-{tag}",
    }
    paths = {}
    for kind, workflow_id in ids.items():
        webhook = {"waitForRunSeconds": 0} if kind == "unwaited" else None
        paths[kind] = folder / f"{workflow_id}.yaml"
        paths[kind].write_text(yaml.safe_dump(hook_definition(workflow_id, webhook=webhook, manual_only=kind == "manual")))
    deployment_id = deploy(paths["deployed"])
    unwaited_deployment_id = deploy(paths["unwaited"])
    deploy(paths["manual"])
    saved = {name: os.environ.get(name) for name in (WORKFLOWS_ENV, SECRET_ENV)}
    os.environ[WORKFLOWS_ENV] = str(folder)
    os.environ[SECRET_ENV] = SECRET
    try:
        yield HookWorkflows(
            folder, ids["deployed"], ids["unwaited"], ids["undeployed"], ids["manual"],
            full_name(load_workflow(paths["deployed"])), deployment_id, unwaited_deployment_id,
        )
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
