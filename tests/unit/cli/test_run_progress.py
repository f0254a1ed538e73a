"""`agentparty run`'s step report: model turns and tool calls under each step; `-v` adds arguments and results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.tool_work import call, sample_turns, step_result
from typer.testing import CliRunner

from agentparty.cli import app
from agentparty.cli import run as run_cli
from agentparty.cli.run import step_lines
from agentparty.models.run_results import StepResult, StepStatus, WorkflowResult
from agentparty.models.tools import TurnRecord


def test_each_turn_and_tool_call_has_a_line_under_its_step() -> None:
    lines = step_lines(step_result())
    assert lines[0].startswith("  ✓ research: completed (1 attempt, 0.00s, 1115 tokens, gpt-4o)")
    assert lines[1:] == [
        "      turn 1 · model gpt-4o · 120+45 tokens",
        "        → search_docs ok 3 ms",
        "        → fetch [mcp web] error 30000 ms",
        "      turn 2 · model gpt-4o · 300+60 tokens (cached)",
        "        → search_docs ok (cached)",
        "        → delete_all refused",
        "      turn 3 · model gpt-4o-mini · 500+90 tokens",
    ]


def test_verbose_adds_arguments_and_results_truncated() -> None:
    long = '{"query": "' + "x" * 300 + '"}'
    turn = TurnRecord(
        turn=1,
        model="gpt-4o",
        tool_calls=[call("c1", arguments=long, result="line one\nline two " + "y" * 300), call("c2")],
    )
    quiet = step_lines(step_result(turns=(turn,)))
    assert not [line for line in quiet if "arguments:" in line or "result:" in line]
    lines = step_lines(step_result(turns=(turn,)), verbose=True)
    assert lines[3] == '            arguments: {"query": "' + "x" * 108 + "…"
    assert lines[4] == "            result: line one line two " + "y" * 101 + "…"
    assert all(len(line.split(": ", 1)[1]) <= 120 for line in lines[3:5])
    assert lines[6:] == [
        '            arguments: {"query": "graph neural networks"}',
        "            result: 3 passages found",
    ]


def test_fan_out_items_show_their_turns_under_their_labels() -> None:
    items = [
        step_result("research[history]", turns=sample_turns()[:1]),
        StepResult(step_id="research[maths]", status=StepStatus.COMPLETED),
        step_result("research[open problems]", turns=sample_turns()[2:]),
    ]
    step = StepResult(step_id="research", status=StepStatus.COMPLETED, attempts=1, items=items)
    assert step_lines(step)[1:] == [
        "      research[history]",
        "        turn 1 · model gpt-4o · 120+45 tokens",
        "          → search_docs ok 3 ms",
        "          → fetch [mcp web] error 30000 ms",
        "      research[open problems]",
        "        turn 3 · model gpt-4o-mini · 500+90 tokens",
    ]


@pytest.mark.parametrize("verbose", [False, True])
def test_run_reports_steps_as_they_end_with_its_verbose_flag(
    verbose: bool, examples_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `run` command hands `-v` to the step report (the flow and servers replaced by stand-ins)."""
    import agentparty.flows
    import agentparty.flows.services

    def compile_workflow(definition: Any, source: Any, options: Any) -> Any:
        async def flow(inputs: Any, resume_key: Any) -> WorkflowResult:
            options.on_step_finished(step_result())
            return WorkflowResult(workflow_id="w", workflow_name="w", status=StepStatus.COMPLETED)

        flow.name = "stand-in"  # type: ignore[attr-defined]
        return flow

    monkeypatch.setattr(run_cli, "use_prefect", lambda quiet: "http://ui/api")
    monkeypatch.setattr(run_cli, "_start_servers", lambda graph, events: (False, False))
    monkeypatch.setattr(agentparty.flows, "compile_workflow", compile_workflow)
    monkeypatch.setattr(agentparty.flows.services, "run_services", lambda *a, **k: None)
    args = ["run", str(examples_dir / "research-report.yaml"), *(["-v"] if verbose else [])]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "        → search_docs ok 3 ms" in result.stdout
    assert ('arguments: {"query": "graph neural networks"}' in result.stdout) is verbose
