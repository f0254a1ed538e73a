"""What a run leaves in the Prefect UI besides its task runs: the steps table, its agents' turns, and the team.

All are Prefect artifacts keyed by the workflow id, so the UI shows the latest
of each per workflow. The staffing artifact is written before the first step
starts. The steps table (and, when agents took model turns, the turns table:
who answered, tokens per turn, the tool calls each asked for) is sent while the
engine reports the run's final state; the flow's end hook
(:func:`await_run_artifact`, on every final state) awaits it, so the tables
exist before the flow call returns.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

from prefect import Flow, State
from prefect.artifacts import MarkdownArtifact, TableArtifact, acreate_markdown_artifact
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import FlowRun
from prefect.context import FlowRunContext

from agentparty.models import WorkflowDefinition
from agentparty.models.run_results import StepResult, WorkflowResult
from agentparty.models.tools import ToolCallRecord
from agentparty.runtime.masking import Masker
from agentparty.runtime.tracing import current_trace_id

if TYPE_CHECKING:
    from agentparty.flows.staffing import Staffing  # its module loads the recommender (torch): only when staffing

_PENDING_ARTIFACTS: dict[str, asyncio.Future[Any]] = {}


async def await_run_artifact(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """Flow end hook: wait for the run's table artifacts (see :func:`publish_steps_table`)."""
    pending = _PENDING_ARTIFACTS.pop(str(flow_run.id), None)
    if pending is not None:
        await pending


async def publish_steps_table(
    definition: WorkflowDefinition, run_id: str | None, result: WorkflowResult, masker: Masker | None = None
) -> None:
    """Start sending the run's steps table and turns table; :func:`await_run_artifact` waits for them at the end of
    the flow run. ``masker`` (``security.dataMasking``) masks what they show: a step's reason may quote its inputs."""
    if run_id is None:
        return
    description = f"{definition.name}: {result.status.value} in {result.duration_s:.2f}s, {result.tokens} tokens"
    if trace_id := current_trace_id():  # the run's trace, to find it in the trace viewer (runtime/tracing.py)
        description += f"; trace {trace_id}"
    artifact = TableArtifact(
        table=masker.data(result.table()) if masker is not None else result.table(),
        key=_artifact_key(definition, "steps"),
        description=description,
    )
    ctx = FlowRunContext.get()
    # Sent while the engine reports the final state (both wait on a server busy
    # ingesting the run's task events); the flow's end hooks await it, so the
    # artifact exists before the flow call returns. The flow run's own client:
    # a new one would build a TLS context first (~50 ms).
    client = ctx.client if ctx is not None and isinstance(ctx.client, PrefectClient) else None
    sends = [artifact.acreate(client=client)]
    turns = turns_markdown(result)
    if turns is not None and masker is not None:
        turns = masker.text(turns)
    if turns is not None:
        sends.append(
            MarkdownArtifact(
                markdown=turns,
                key=_artifact_key(definition, "turns"),
                description=f"{definition.name}: model turns and tool calls",
            ).acreate(client=client)
        )
    _PENDING_ARTIFACTS[run_id] = asyncio.ensure_future(asyncio.gather(*sends))


def turns_markdown(result: WorkflowResult) -> str | None:
    """The run's model turns as a markdown table: slot, turn, the answering model, tokens, the tool calls and how
    each ended. None when no step took a turn (a run without agent loops gets no empty table)."""
    rows: list[str] = []
    for step in result.steps.values():
        for slot in [step, *(step.items or [])]:
            rows += _turn_rows(slot)
    if not rows:
        return None
    header = "| step | turn | model | input tokens | output tokens | tool calls |\n|---|---|---|---|---|---|"
    return "\n".join([header, *rows])


def _turn_rows(slot: StepResult) -> list[str]:
    rows: list[str] = []
    for turn in slot.turns:
        model = turn.model + (" (cached)" if turn.cached else "")
        calls = ", ".join(_call_cell(call) for call in turn.tool_calls) or "-"
        cells = [slot.step_id, str(turn.turn), model, str(turn.input_tokens), str(turn.output_tokens), calls]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return rows


def _call_cell(call: ToolCallRecord) -> str:
    outcome = "refused" if call.refused else "ok" if call.ok else "error"
    return f"{call.name} {outcome}" + (" (cached)" if call.cached else "")


def _cell(text: str) -> str:
    """A markdown table cell: a pipe would split it, a line break would end the row."""
    return " ".join(text.split()).replace("|", "\\|")


async def publish_staffing(definition: WorkflowDefinition, staffing: Staffing) -> None:
    """The team the recommender staffed the run with, as a markdown artifact."""
    from agentparty.flows.staffing import staffing_markdown  # deferred like the staffing itself: its module loads torch

    await acreate_markdown_artifact(
        markdown=staffing_markdown(staffing),
        key=_artifact_key(definition, "team"),
        description=f"{definition.name}: team {definition.formation_method.value} by {staffing.recommendation.method}",
    )


def _artifact_key(definition: WorkflowDefinition, kind: str) -> str:
    """Prefect's artifact keys allow lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{definition.id}-{kind}".lower()).strip("-")
