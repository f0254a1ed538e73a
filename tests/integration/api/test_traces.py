"""One trace from a webhook request to the tool calls of the run it starts, read back from a real Arize Phoenix.

Phoenix runs from its own cached venv (``runtime/trace_viewer.py``; the fixture
installs it there when missing, which takes minutes once), on a free port under a
temporary home. The API app exports its spans to it; a signed delivery creates a
flow run of a deployed workflow whose agent (the keyless simulated model) calls
the ``lookup`` tool it is offered; the run is then executed the way a worker does
(``prefect flow-run execute``, in processes of its own that export to Phoenix).
The spans read back from Phoenix's REST API must form one trace: the webhook
request, the flow run Prefect traced under it (parented through the
``__OTEL_TRACEPARENT`` label), the step's span (``invoke_agent``), and under it
each turn's and each tool call's checkpoint task run with our ``chat`` and
``execute_tool`` span inside, one each for the turns and calls Prefect recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from support.api_support import SECRET, SECRET_ENV, deploy, signed
from support.postgres_support import fresh_database

from agentparty.flows.deployed import WORKFLOWS_ENV
from agentparty.runtime import tracing
from agentparty.runtime.local_service import free_port
from agentparty.runtime.postgres_server import LocalPostgres
from agentparty.runtime.trace_viewer import LocalTraceViewer

# the first run installs Phoenix into its cached venv (minutes on two cores)
pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow, pytest.mark.timeout(1800)]

TESTS = Path(__file__).resolve().parents[2]
AGENT = "weather-analyst"


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory, postgres_cluster: LocalPostgres) -> Iterator[LocalTraceViewer]:
    """A real Phoenix (installed into its cached venv first when missing) on a free port, keeping its spans in
    PostgreSQL as ``agentparty up --traces`` does."""
    database = fresh_database(postgres_cluster, "phoenix")
    viewer = LocalTraceViewer(tmp_path_factory.mktemp("phoenix-home"), port=free_port(), database_url=database)
    viewer.start(timeout=300)
    try:
        yield viewer
    finally:
        viewer.stop()


@pytest.fixture
def traced_workflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A deployed webhook workflow whose one agent step may call ``lookup``; its id and folder."""
    workflow_id = f"traced-{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "workflows"
    folder.mkdir()
    doc = {
        "id": workflow_id,
        "name": f"Traced {workflow_id}",
        "inputs": {"city": {"type": "string", "minLength": 1}},
        "steps": [
            {
                "id": "research",
                "type": "task",
                "configuration": {
                    "agent": AGENT,
                    "model": "simulated",
                    "prompt": "What is the temperature in ${inputs.city} today?",
                    "tools": ["support.agent_tools:lookup"],
                    "maxTurns": 4,
                },
            }
        ],
        "triggers": [
            {"type": "webhook", "configuration": {"secretName": SECRET_ENV, "waitForRunSeconds": 30}},
        ],
        "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
    }
    path = folder / f"{workflow_id}.yaml"
    path.write_text(yaml.safe_dump(doc))
    deploy(path)
    monkeypatch.setenv(WORKFLOWS_ENV, str(folder))
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return workflow_id, folder


def spans_of(viewer: LocalTraceViewer, trace_id: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"trace_id": trace_id, "limit": 1000})
    with urllib.request.urlopen(f"{viewer.ui_url}/v1/projects/default/spans?{query}", timeout=10) as response:
        return list(json.load(response)["data"])


def attr(span: dict[str, Any], name: str) -> Any:
    """A span attribute as Phoenix returns it: flat (``"gen_ai.tool.name"``) or nested by dots."""
    attributes = span.get("attributes") or {}
    if name in attributes:
        return attributes[name]
    value: Any = attributes
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def wait_for_spans(viewer: LocalTraceViewer, trace_id: str, done: Any, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = spans_of(viewer, trace_id)
        if done(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def task_run_names(flow_run_id: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as prefect:
        runs = prefect.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(flow_run_id)])))
    return sorted(run.name for run in runs)


def artifact_descriptions(flow_run_id: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as prefect:
        found = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(flow_run_id)]))
        )
    return [artifact.description or "" for artifact in found]


def execute(flow_run_id: str, viewer: LocalTraceViewer, folder: Path, home: Path, prefect_server: str) -> None:
    """Run the flow run as a worker would, in processes of their own that export to ``viewer``."""
    env = {
        **os.environ,
        "PYTHONPATH": str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "PREFECT_API_URL": prefect_server,
        "AGENTPARTY_HOME": str(home),
        WORKFLOWS_ENV: str(folder),
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": viewer.otlp_endpoint,
    }
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "flow-run", "execute", flow_run_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_a_webhook_run_is_one_trace_down_to_its_tool_calls(
    phoenix: LocalTraceViewer,
    traced_workflow: tuple[str, Path],
    make_app: Any,
    api_home: Path,
    prefect_server: str,
) -> None:
    workflow_id, folder = traced_workflow
    app = make_app()
    provider = tracing._exporting_provider(phoenix.otlp_endpoint, "agentparty-api")
    tracing.stop_tracing()  # this process may have configured itself without an endpoint already
    tracing.start_tracing(provider)
    try:
        with TestClient(app) as client:
            response = client.post(f"/webhooks/{workflow_id}", **signed({"city": "Paris"}))
        assert response.status_code == 202, response.text
        flow_run_id = response.json()["flow_run_id"]
        assert flow_run_id, "the run exists within waitForRunSeconds"
        provider.force_flush()
    finally:
        tracing.stop_tracing()
        provider.shutdown()

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:
        labels = prefect.read_flow_run(uuid.UUID(flow_run_id)).labels
    traceparent = str(labels["__OTEL_TRACEPARENT"])
    trace_id = traceparent.split("-")[1]

    execute(flow_run_id, phoenix, folder, api_home, prefect_server)
    names = task_run_names(flow_run_id)
    turns = [n for n in names if n.startswith("research · turn") and n.count("·") == 1]
    calls = [n for n in names if n.startswith("research · turn") and n.endswith("· lookup")]
    assert len(turns) >= 2 and len(calls) >= 1, f"the simulated agent called the tool it was offered: {names}"
    expected = 1 + 1 + 1 + 2 * (len(turns) + len(calls))  # request, flow run, step, each checkpoint and its span

    spans = wait_for_spans(phoenix, trace_id, lambda found: len(found) >= expected)
    by_id = {s["context"]["span_id"]: s for s in spans}
    assert {s["context"]["trace_id"] for s in spans} == {trace_id}, "one trace"
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        children.setdefault(span.get("parent_id"), []).append(span)

    (request,) = children[None]
    assert request["name"] == "POST /webhooks/{workflow_id}" and request["span_kind"].upper() in {"SERVER", "UNKNOWN"}
    (flow,) = children[request["context"]["span_id"]]
    assert attr(flow, "prefect.run.id") == flow_run_id
    (step,) = children[flow["context"]["span_id"]]
    assert step["name"] == f"invoke_agent {AGENT}"
    assert attr(step, "gen_ai.operation.name") == "invoke_agent" and attr(step, "gen_ai.agent.name") == AGENT
    assert attr(step, "agentparty.step.id") == "research"

    checkpoints = children[step["context"]["span_id"]]
    assert sorted(c["name"] for c in checkpoints) == sorted(turns + calls), "a span per turn and tool call"
    for checkpoint in checkpoints:
        (inner,) = children[checkpoint["context"]["span_id"]]
        operation = attr(inner, "gen_ai.operation.name")
        if checkpoint["name"].endswith("· lookup"):
            assert (inner["name"], operation) == ("execute_tool lookup", "execute_tool")
            assert attr(inner, "gen_ai.tool.call.id")
        else:
            assert (inner["name"], operation) == ("chat simulated", "chat")
            assert attr(inner, "gen_ai.provider.name") == "simulated"
            assert attr(inner, "gen_ai.usage.input_tokens") > 0
    assert len(by_id) == expected, sorted(s["name"] for s in spans)
    assert any(f"trace {trace_id}" in d for d in artifact_descriptions(flow_run_id)), "the artifact names the trace"
