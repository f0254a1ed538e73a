"""An API key never appears in logs, exceptions, Prefect states, parameters, logs on the server, results or artifacts."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.llm_wire import WireServer

from agentparty.flows import CompileOptions, WorkflowFailed, WorkflowResult, compile_workflow
from agentparty.models import WorkflowDefinition

pytestmark = pytest.mark.usefixtures("prefect_server")

KEY = "sk-proj-" + secrets.token_hex(20)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(logging.Formatter("%(name)s %(message)s").format(record))


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Iterator[WireServer]:
    with WireServer() as server:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
        yield server


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    loggers = [logging.getLogger(), logging.getLogger("prefect"), logging.getLogger("agentparty")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


def run(step: dict[str, Any]) -> tuple[WorkflowResult, str]:
    definition = WorkflowDefinition.model_validate(
        {
            "id": "secret-check",
            "name": "Secret check",
            "triggers": [{"type": "manual"}],
            "errorHandling": {"retryAttempts": 1, "backoffStrategy": "fixed", "baseDelay": 0},
            "steps": [step],
        }
    )
    flow = compile_workflow(definition, options=CompileOptions())  # the default runner: keys from the environment
    try:
        return asyncio.run(flow(inputs={})), ""
    except WorkflowFailed as exc:
        return exc.result, f"{exc!r} {exc}"


async def server_side_text(run_id: str) -> str:
    """Everything the Prefect server kept about the run: parameters, states, task runs, logs, artifacts."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )

    async with get_client() as client:
        flow_run = await client.read_flow_run(run_id)
        states = await client.read_flow_run_states(run_id)
        task_runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
        logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])))
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]))
        )
    parts = [
        flow_run.model_dump_json(),
        *(s.model_dump_json() for s in states),
        *(t.model_dump_json() for t in task_runs),
    ]
    parts += [log.message for log in logs] + [a.model_dump_json() for a in artifacts]
    return "\n".join(parts)


def assert_no_key(result: WorkflowResult, error: str, captured: Capture, home: Path) -> None:
    places = {
        "result": result.model_dump_json(),
        "exception": error,
        "local logs": "\n".join(captured.lines),
        "server": asyncio.run(server_side_text(result.run_id or "")),
        "persisted results": "\n".join(
            p.read_bytes().decode("latin-1") for p in (home / "results").glob("*") if p.is_file()
        ),
    }
    leaks = [where for where, text in places.items() if KEY in text]
    assert not leaks, f"the API key leaked into: {', '.join(leaks)}"
    assert places["server"] and places["local logs"], "nothing was captured: the check would pass vacuously"


def test_key_stays_secret_in_a_succeeding_run(wire: WireServer, captured: Capture, agentparty_home: Path) -> None:
    result, error = run(
        {
            "id": "ask",
            "type": "task",
            "configuration": {
                "agent": "asker",
                "model": "gpt-4o",
                "prompt": "hello",
                "outputSchema": {"type": "object", "properties": {"a": {"type": "string"}}},
            },
        }
    )
    assert result.steps["ask"].status.value == "completed" and result.steps["ask"].model == "gpt-4o"
    assert wire.requests[0].headers.get("authorization") == f"Bearer {KEY}", "the key must reach the provider"
    assert_no_key(result, error, captured, agentparty_home)


def test_key_echoed_by_a_failing_provider_is_redacted_everywhere(
    wire: WireServer, captured: Capture, agentparty_home: Path
) -> None:
    for _ in range(2):  # both attempts
        wire.script(status=400, error=f"Invalid request for key {KEY}: unsupported parameter")
    result, error = run(
        {"id": "ask", "type": "task", "configuration": {"agent": "asker", "model": "gpt-4o", "prompt": "hello"}}
    )
    assert result.steps["ask"].status.value == "failed" and "***redacted***" in (result.steps["ask"].reason or "")
    assert_no_key(result, error, captured, agentparty_home)


def test_key_in_an_authentication_error_does_not_leak_through_the_fallback(
    wire: WireServer, captured: Capture, agentparty_home: Path
) -> None:
    wire.script(status=401, error=f"Incorrect API key provided: {KEY}")
    result, error = run(
        {"id": "ask", "type": "task", "configuration": {"agent": "asker", "model": "gpt-4o", "prompt": "hello"}}
    )
    step = result.steps["ask"]
    assert step.status.value == "completed" and step.model == "simulated" and "***redacted***" in (step.reason or "")
    assert_no_key(result, error, captured, agentparty_home)
