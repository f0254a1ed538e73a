"""Run a workflow, scrape the API's /metrics with a key over HTTP, and find its run, steps, model calls and tokens.

The run executes in this process (as ``agentparty run`` does) on the keyless simulated model, against the session's
real Prefect server; the API is a real uvicorn server on the same home. A second app configured with a metrics
listener serves the same figures there without a key.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import urllib.request
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from agentparty.api import create_app
from agentparty.api.security import key_digest
from agentparty.api.serve import serving
from agentparty.flows import CompileOptions, WorkflowFailed, compile_workflow
from agentparty.flows.services import run_services
from agentparty.models import WorkflowDefinition
from agentparty.models.access import ApiAccessConfig
from agentparty.runtime.local_service import free_port
from agentparty.runtime.settings import get_settings

pytestmark = pytest.mark.usefixtures("prefect_server")
KEY = "viewer-key-metrics"


def _definition(workflow_id: str) -> dict[str, object]:
    return {
        "id": workflow_id,
        "name": "Metrics run",
        "triggers": [{"type": "manual"}],
        "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
        "inputs": {"topic": {"type": "string"}},
        "steps": [
            {"id": "draft", "type": "task", "configuration": {"agent": "writer", "prompt": "Draft ${inputs.topic}"}},
            {
                "id": "review",
                "type": "task",
                "configuration": {
                    "agent": "reviewer",
                    "prompt": "Review ${steps.draft.output}",
                    "dependsOn": ["draft"],
                },
            },
            {
                "id": "fails",
                "type": "task",
                "configuration": {"handler": "support.step_handlers:always_fails", "dependsOn": ["review"]},
                "inputs": {"name": "metrics"},
            },
            {
                "id": "after",
                "type": "task",
                "configuration": {"handler": "support.step_handlers:number", "dependsOn": ["fails"]},
            },
        ],
    }


def _value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if re.match(rf"{name}[{{ ]", line) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_run_s_figures_are_on_the_api_s_metrics(tmp_path: Path) -> None:
    config = tmp_path / "sdk.yaml"
    config.write_text(yaml.safe_dump({"monitoring": {"metrics": {"exportFormats": ["prometheus", "json"]}}}))
    listener = f"127.0.0.1:{free_port()}"
    settings = get_settings().model_copy(update={"home": tmp_path, "sdk_config": config, "metrics_address": listener})
    access = ApiAccessConfig.model_validate(
        {"apiKeys": [{"name": "v", "role": "viewer", "keySha256": key_digest(KEY)}]}
    )
    app = create_app(access, settings=settings)
    workflow_id = f"metrics-run-{uuid.uuid4().hex[:6]}"

    with serving(app, free_port()) as base, httpx.Client(base_url=base, timeout=30) as client:
        before = client.get("/metrics", headers={"X-API-Key": KEY})
        assert before.status_code == 200, before.text
        assert client.get("/metrics").status_code == 401

        services = run_services(settings, recorder=None, events=None)
        flow = compile_workflow(
            WorkflowDefinition.model_validate(_definition(workflow_id)), options=CompileOptions(services=services)
        )
        with pytest.raises(WorkflowFailed):
            asyncio.run(flow(inputs={"topic": "metrics"}))

        text = client.get("/metrics", headers={"X-API-Key": KEY}).text
        with urllib.request.urlopen(f"http://{listener}/metrics", timeout=10) as response:  # no key there
            keyless = response.read().decode()

    assert _value(text, "agentparty_runs_started_total", workflow=workflow_id) == 1
    assert _value(text, "agentparty_runs_finished_total", workflow=workflow_id, outcome="failed") == 1
    steps = "agentparty_step_duration_seconds_count"
    assert (
        _value(text, steps, kind="task", outcome="completed")
        - _value(before.text, steps, kind="task", outcome="completed")
        == 2
    )
    assert (
        _value(text, steps, kind="task", outcome="failed") - _value(before.text, steps, kind="task", outcome="failed")
        == 1
    )
    skipped = "agentparty_steps_skipped_total"
    assert _value(text, skipped, kind="task") - _value(before.text, skipped, kind="task") == 1
    calls = "agentparty_model_calls_total"
    assert (
        _value(text, calls, provider="simulated", outcome="ok")
        - _value(before.text, calls, provider="simulated", outcome="ok")
        >= 2
    )
    for direction in ("input", "output"):
        tokens = "agentparty_model_tokens_total"
        grown = _value(text, tokens, provider="simulated", direction=direction)
        assert grown > _value(before.text, tokens, provider="simulated", direction=direction)
    assert _value(text, "agentparty_model_call_duration_seconds_count", provider="simulated") >= 2
    assert _value(keyless, "agentparty_runs_started_total", workflow=workflow_id) == 1


def test_a_run_stopped_before_its_end_counts_as_cancelled(tmp_path: Path) -> None:
    from prometheus_client import REGISTRY

    workflow_id = f"metrics-cancel-{uuid.uuid4().hex[:6]}"
    definition = {
        "id": workflow_id,
        "name": "Metrics cancel",
        "triggers": [{"type": "manual"}],
        "steps": [
            {
                "id": "wait",
                "type": "task",
                "configuration": {"handler": "support.step_handlers:async_sleep"},
                "inputs": {"seconds": 60},
            }
        ],
    }
    settings = get_settings().model_copy(update={"home": tmp_path})
    services = run_services(settings, recorder=None, events=None)
    flow = compile_workflow(WorkflowDefinition.model_validate(definition), options=CompileOptions(services=services))

    async def cancel_after_start() -> None:
        run = asyncio.ensure_future(flow())
        labels = {"workflow": workflow_id}
        while not REGISTRY.get_sample_value("agentparty_runs_started_total", labels):
            await asyncio.sleep(0.05)
        run.cancel()
        with contextlib.suppress(BaseException):
            await run

    asyncio.run(asyncio.wait_for(cancel_after_start(), 120))
    finished = {"workflow": workflow_id, "outcome": "cancelled"}
    assert REGISTRY.get_sample_value("agentparty_runs_finished_total", finished) == 1
