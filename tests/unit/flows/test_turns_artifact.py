"""The run artifact's turns table (``flows/artifacts.py``): built from the WorkflowResult, sent beside the steps table.

No server: the table is pure, and the artifacts' ``acreate`` is replaced by a recorder.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from prefect.artifacts import MarkdownArtifact, TableArtifact
from support.tool_work import DEFINITION, call, sample_turns, step_result

from agentparty.flows.artifacts import await_run_artifact, publish_steps_table, turns_markdown
from agentparty.models.run_results import StepResult, StepStatus, WorkflowResult
from agentparty.models.tools import TurnRecord

HEADER = ["| step | turn | model | input tokens | output tokens | tool calls |", "|---|---|---|---|---|---|"]


def result_of(*steps: StepResult) -> WorkflowResult:
    return WorkflowResult(
        workflow_id="tooled",
        workflow_name="Tooled",
        status=StepStatus.COMPLETED,
        steps={step.step_id: step for step in steps},
    )


def test_one_row_per_turn_with_model_tokens_and_how_each_call_ended() -> None:
    table = turns_markdown(result_of(step_result(), StepResult(step_id="notify", status=StepStatus.COMPLETED)))
    assert table is not None and table.splitlines() == [
        *HEADER,
        "| research | 1 | gpt-4o | 120 | 45 | search_docs ok, fetch error |",
        "| research | 2 | gpt-4o (cached) | 300 | 60 | search_docs ok (cached), delete_all refused |",
        "| research | 3 | gpt-4o-mini | 500 | 90 | - |",
    ]


def test_fan_out_items_are_rows_of_their_own_slots_and_cells_stay_in_their_column() -> None:
    turn = TurnRecord(turn=1, model="a|b\nc", input_tokens=1, output_tokens=2, tool_calls=[call("c1")])
    items = [step_result("research[x | y]", turns=(turn,)), step_result("research[z]", turns=sample_turns()[2:])]
    table = turns_markdown(result_of(StepResult(step_id="research", status=StepStatus.COMPLETED, items=items)))
    assert table is not None and table.splitlines()[2:] == [
        "| research[x \\| y] | 1 | a\\|b c | 1 | 2 | search_docs ok |",
        "| research[z] | 3 | gpt-4o-mini | 500 | 90 | - |",
    ]


def test_a_run_without_turns_has_no_turns_table() -> None:
    assert turns_markdown(result_of(StepResult(step_id="notify", status=StepStatus.COMPLETED))) is None


@pytest.mark.parametrize("with_turns", [True, False])
def test_the_turns_table_is_sent_beside_the_steps_table(with_turns: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[Any] = []

    async def record(self: Any, client: Any = None) -> None:
        sent.append(self)

    monkeypatch.setattr(TableArtifact, "acreate", record)
    monkeypatch.setattr(MarkdownArtifact, "acreate", record)
    result = result_of(step_result() if with_turns else StepResult(step_id="notify", status=StepStatus.COMPLETED))

    async def publish() -> None:
        await publish_steps_table(DEFINITION, "run-1", result)
        await await_run_artifact(None, SimpleNamespace(id="run-1"), None)  # type: ignore[arg-type]

    asyncio.run(publish())
    assert [(type(a).__name__, a.key) for a in sent] == [("TableArtifact", "tooled-steps")] + (
        [("MarkdownArtifact", "tooled-turns")] if with_turns else []
    )
    if with_turns:
        assert sent[1].markdown == turns_markdown(result)
