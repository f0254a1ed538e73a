"""Fixtures of the API integration tests: apps on a temporary home, deployed webhook workflows in the search path."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import yaml
from support.api_support import (
    HANDLERS,
    SECRET,
    SECRET_ENV,
    HookWorkflows,
    api_home,  # noqa: F401  (a fixture, registered by name)
    deploy,
    hook_definition,
    make_app,  # noqa: F401  (a fixture, registered by name)
)

from agentparty.flows.deployed import WORKFLOWS_ENV


@pytest.fixture(scope="module")
def hook_workflows(prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HookWorkflows]:
    """Definitions in the workflow search path (AGENTPARTY_WORKFLOWS) and the webhook secret in the environment."""
    from agentparty.deployments.naming import full_name
    from agentparty.runtime.documents import load_workflow

    folder = tmp_path_factory.mktemp("api-workflows")
    (folder / "api_handlers.py").write_text(HANDLERS)
    tag = uuid.uuid4().hex[:8]
    ids = {
        "deployed": f"api-hook-{tag}",
        "unwaited": f"api-hook-unwaited-{tag}",
        "undeployed": f"api-hook-undeployed-{tag}",
        "manual": f"api-manual-{tag}",
    }
    paths = {}
    for kind, workflow_id in ids.items():
        webhook = {"waitForRunSeconds": 0} if kind == "unwaited" else None
        paths[kind] = folder / f"{workflow_id}.yaml"
        paths[kind].write_text(
            yaml.safe_dump(hook_definition(workflow_id, webhook=webhook, manual_only=kind == "manual"))
        )
    deployment_id = deploy(paths["deployed"])
    unwaited_deployment_id = deploy(paths["unwaited"])
    deploy(paths["manual"])
    saved = {name: os.environ.get(name) for name in (WORKFLOWS_ENV, SECRET_ENV)}
    os.environ[WORKFLOWS_ENV] = str(folder)
    os.environ[SECRET_ENV] = SECRET
    try:
        yield HookWorkflows(
            folder,
            ids["deployed"],
            ids["unwaited"],
            ids["undeployed"],
            ids["manual"],
            full_name(load_workflow(paths["deployed"])),
            deployment_id,
            unwaited_deployment_id,
        )
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
