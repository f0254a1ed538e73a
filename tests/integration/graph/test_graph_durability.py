"""The graph server dies during a run: writes retry with backoff, a write that finally fails fails its step
clearly, and resuming the run completes the graph with nothing lost and nothing twice (exact counts)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.graph_runs import census, empty, example_runner
from support.run_services_support import services

from agentparty.flows import CompileOptions, WorkflowFailed, WorkflowResult, compile_workflow
from agentparty.models import WorkflowDefinition
from agentparty.runtime.graph_server import DATABASE_NAME, LocalBoltServer
from agentparty.runtime.graph_store import GraphStore
from agentparty.runtime.local_service import free_port
from agentparty.runtime.run_recorder import GraphRecorder
from agentparty.tasks.agent import ModelAgentRunner

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

# writer (template) drafts; a handler step waits at a gate while the test kills the graph server; an ad-hoc
# editor finishes. Expected graph of the whole run:
EXPECTED = {
    "Task": 1,
    "Team": 1,
    "User": 1,
    "SystemActor": 2,
    "Agent": 2,
    "AgentTemplate": 1,
    "TemplateVersion": 1,
    "Capability": 2,
    "AgentState": 6,
    "Output": 3,
    "REQUESTED_BY": 1,
    "WORKS_ON": 1,
    "ASSEMBLED_BY": 1,
    "REQUIRES": 1,  # what task_analyzed infers from the prompts (flows/task_analysis.py): a writer's capability
    "MEMBER_OF": 2,
    "INSTANTIATES": 1,
    "HAS_VERSION": 1,
    "DEFINES_CAPABILITIES": 2,
    "HAS_CAPABILITY": 2,
    "HAS_STATE": 6,
    "TRANSITIONED_BY": 4,
    "CREATED": 2,
    "RESULTED_IN": 3,
    "WORKED_WITH": 1,
}


def gated(started: Path, release: Path) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(
        {
            "id": "gated",
            "name": "Gated",
            "steps": [
                {"id": "draft", "type": "task", "configuration": {"agent": "writer", "prompt": "Draft a note"}},
                {
                    "id": "gate",
                    "type": "task",
                    "configuration": {"handler": "support.step_handlers:block_until", "dependsOn": ["draft"]},
                    "inputs": {"path": str(started), "flag": str(release)},
                },
                {
                    "id": "edit",
                    "type": "task",
                    "configuration": {
                        "agent": "editor",
                        "prompt": "Edit: ${steps.draft.output}",
                        "dependsOn": ["gate"],
                    },
                },
            ],
            "triggers": [{"type": "manual"}],
            "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
        }
    )


@pytest.fixture(scope="module")
def killable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBoltServer]:
    """A graph server of this module's own: the tests kill it."""
    server = LocalBoltServer(tmp_path_factory.mktemp("killable-graph"), port=free_port(), http_port=free_port())
    server.start()
    yield server
    server.stop()


def store_for(server: LocalBoltServer, retry_s: int) -> GraphStore:
    config = server.database_config().model_copy(
        update={"max_transaction_retry_time": retry_s, "connection_timeout": 2}
    )
    return GraphStore(config, DATABASE_NAME)


class Run:
    """The workflow run in a thread, so the test can kill and restart the server while it goes on."""

    def __init__(self, definition: WorkflowDefinition, runner: ModelAgentRunner, store: GraphStore, key: str) -> None:
        options = CompileOptions(services=services(agent_runner=runner, recorder=GraphRecorder(store), user_id="ana"))
        self.flow = compile_workflow(definition, options=options)
        self.key = key
        self.result: WorkflowResult | None = None
        self.failed = False
        self.thread = threading.Thread(target=self._go, daemon=True)

    def _go(self) -> None:
        try:
            self.result = asyncio.run(self.flow(resume_key=self.key))
        except WorkflowFailed as exc:
            self.result, self.failed = exc.result, True

    def start(self) -> Run:
        self.thread.start()
        return self

    def wait_for(self, path: Path, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            assert self.thread.is_alive(), "the run ended before reaching the gate"
            assert time.monotonic() < deadline, "the run never reached the gate"
            time.sleep(0.05)

    def join(self, timeout: float = 180) -> WorkflowResult:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the run did not finish"
        assert self.result is not None
        return self.result


def counts(store: GraphStore) -> dict[str, Any]:
    return census(store.driver, store.database)


def test_writes_retry_through_a_graph_server_restart(killable: LocalBoltServer, tmp_path: Path) -> None:
    with store_for(killable, retry_s=60) as store:
        empty(store.driver, store.database)
        started, release = tmp_path / "started", tmp_path / "release"
        run = Run(gated(started, release), example_runner(tmp_path), store, f"restart-{uuid.uuid4()}").start()
        run.wait_for(started)
        killable.stop(kill=True)  # SIGKILL: a crash, not a shutdown
        release.touch()  # the gate's write now meets a dead server, and retries
        time.sleep(1.0)
        killable.start()
        result = run.join()
        assert not run.failed and result.status.value == "completed", result.reason
        assert counts(store) == EXPECTED


def test_a_write_that_finally_fails_fails_its_step_and_resuming_completes_the_graph(
    killable: LocalBoltServer, tmp_path: Path
) -> None:
    runner = example_runner(tmp_path)
    key = f"outage-{uuid.uuid4()}"
    with store_for(killable, retry_s=2) as store:
        empty(store.driver, store.database)
        started, release = tmp_path / "started", tmp_path / "release"
        run = Run(gated(started, release), runner, store, key).start()
        run.wait_for(started)
        killable.stop(kill=True)
        release.touch()
        result = run.join()
        assert run.failed
        gate = result.steps["gate"]
        assert gate.status.value == "failed" and "recording the step in the graph failed" in (gate.reason or "")
        assert "unreachable" in (gate.reason or "")
        assert result.steps["edit"].status.value == "skipped"
        assert "recording the run's end in the graph failed" in (result.reason or "")

        killable.start()
        before = counts(store)
        assert before["Output"] == 1 and before["AgentState"] == 3, "only the draft step's write got through"
        resumed = Run(gated(started, release), runner, store, key).start().join()
        assert resumed.status.value == "completed", resumed.reason
        assert resumed.steps["draft"].cached and resumed.steps["gate"].cached and not resumed.steps["edit"].cached
        assert counts(store) == EXPECTED
        done = store.driver.execute_query(
            "MATCH (t:Team) RETURN t.status AS s, t.outcome_recorded AS r", database_=store.database
        )[0]
        assert [(r["s"], r["r"]) for r in done] == [("completed", True)]
