"""``agentparty run -v`` streams: each agent's text as it comes, its turns and tool calls, one slot per line.

The printing observer is fed the callbacks a loop makes (two agents interleaved);
the ``run`` command is checked to hand it to the run's services only with ``-v``.
A real loop on the simulated model telling an observer is ``tests/unit/tasks/test_live_updates.py``.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pytest
from support.tool_work import step_result
from typer.testing import CliRunner

from agentparty.cli import app
from agentparty.cli import run as run_cli
from agentparty.cli.run_stream import ConsoleStream
from agentparty.models.messages import AgentMessage
from agentparty.models.run_results import StepStatus, WorkflowResult
from agentparty.models.tools import ToolCall, ToolCallRecord, TurnRecord
from agentparty.tasks.agent_loop import LoopPlace


def place(slot: str) -> LoopPlace:
    return LoopPlace(run_key="r", step_id=slot, slot=slot, agent_id=f"id-{slot}", agent_name=slot)


def test_text_streams_on_its_slots_line_and_other_activity_breaks_it() -> None:
    out = io.StringIO()
    console = ConsoleStream(out)
    a, b = place("research"), place("review")
    console.turn_started(a, 1)
    console.text(a, 1, "Looking ")
    console.text(a, 1, "it up")
    console.text(b, 1, "Reading the ")  # another agent writes: a new line, named
    console.text(a, 1, ".\nDone")  # back to the first: named again; a newline stays indented
    console.turn_finished(
        a,
        TurnRecord(turn=1, model="simulated", input_tokens=12, output_tokens=5),
        AgentMessage(
            content="", agent_id="id-research", model="simulated", tool_calls=[ToolCall(id="c1", name="lookup")]
        ),
    )
    console.tool_started(a, 1, ToolCall(id="c1", name="lookup"))
    console.waiting_for_approval(a, 1, ToolCall(id="c1", name="lookup"))
    console.tool_finished(a, 1, ToolCallRecord(call_id="c1", name="lookup", arguments="{}", ok=True, duration_ms=3.2))
    log = logging.StreamHandler(out)  # a log handler writing where the text goes, as a terminal shows both
    logging.getLogger().handlers.insert(0, log)  # the first: no other handler's filter closes the line for it
    try:
        console.text(a, 2, "Sun")
        console.text(a, 2, "n")
        logging.getLogger("agentparty.tests").warning("a log line")  # closes the open line before it is written
    finally:
        logging.getLogger().removeHandler(log)
    console.text(a, 2, "ny.")
    console.end_line()
    console.end_line()  # nothing open: nothing written
    assert out.getvalue().splitlines() == [
        "    ┆ research: turn 1 · thinking",
        "    ┆ research · turn 1: Looking it up",
        "    ┆ review · turn 1: Reading the ",
        "    ┆ research · turn 1: .",
        "    ┆   Done",
        "    ┆ research: turn 1 · asks for lookup · 12+5 tokens",
        "    ┆ research: → calling lookup",
        "    ┆ research: … lookup waits for a human's approval",
        "    ┆ research: ← lookup ok 3 ms",
        "    ┆ research · turn 2: Sunn",
        "a log line",
        "    ┆ research · turn 2: ny.",
    ]
    assert out.getvalue().endswith("ny.\n")


@pytest.mark.parametrize("verbose", [False, True])
def test_run_hands_the_console_to_the_runs_services_only_with_verbose(
    verbose: bool, examples_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agentparty.flows
    import agentparty.flows.services

    handed: dict[str, Any] = {}

    def run_services(*_args: Any, **kwargs: Any) -> None:
        handed.update(kwargs)

    def compile_workflow(definition: Any, source: Any, options: Any) -> Any:
        async def flow(inputs: Any, resume_key: Any) -> WorkflowResult:
            for observer in handed["observers"]:  # what an agent step of the run would tell it
                observer.text(place("research"), 1, "streamed words")
            options.on_step_finished(step_result())
            return WorkflowResult(workflow_id="w", workflow_name="w", status=StepStatus.COMPLETED)

        flow.name = "stand-in"  # type: ignore[attr-defined]
        return flow

    monkeypatch.setattr(run_cli, "use_prefect", lambda quiet: "http://ui/api")
    monkeypatch.setattr(run_cli, "_start_servers", lambda graph, events: (False, False))
    monkeypatch.setattr(agentparty.flows, "compile_workflow", compile_workflow)
    monkeypatch.setattr(agentparty.flows.services, "run_services", run_services)
    args = ["run", str(examples_dir / "research-report.yaml"), *(["-v"] if verbose else [])]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert [type(o).__name__ for o in handed["observers"]] == (["ConsoleStream"] if verbose else [])
    lines = result.stdout.splitlines()
    step_line = next(i for i, line in enumerate(lines) if line.startswith("  ✓ research"))
    if verbose:
        assert lines[step_line - 1] == "    ┆ research · turn 1: streamed words"  # its line closed before the step's
    else:
        assert "streamed words" not in result.stdout
