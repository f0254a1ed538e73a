"""What a run leaves in the Prefect UI besides its task runs: the steps table and the team it was staffed with.

Both are Prefect artifacts keyed by the workflow id, so the UI shows the latest
of each per workflow. The staffing artifact is written before the first step
starts. The steps table is sent while the engine reports the run's final state;
the flow's end hook (:func:`await_run_artifact`, on every final state) awaits it,
so the table exists before the flow call returns.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

from prefect import Flow, State
from prefect.artifacts import TableArtifact, acreate_markdown_artifact
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import FlowRun
from prefect.context import FlowRunContext

from agentparty.models import WorkflowDefinition
from agentparty.models.run_results import WorkflowResult

if TYPE_CHECKING:
    from agentparty.flows.staffing import Staffing  # its module loads the recommender (torch): only when staffing

_PENDING_ARTIFACTS: dict[str, asyncio.Future[Any]] = {}


async def await_run_artifact(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """Flow end hook: wait for the run's table artifact (see :func:`publish_steps_table`)."""
    pending = _PENDING_ARTIFACTS.pop(str(flow_run.id), None)
    if pending is not None:
        await pending


async def publish_steps_table(definition: WorkflowDefinition, run_id: str | None, result: WorkflowResult) -> None:
    """Start sending the run's steps table; :func:`await_run_artifact` waits for it at the end of the flow run."""
    if run_id is None:
        return
    artifact = TableArtifact(
        table=result.table(),
        key=_artifact_key(definition, "steps"),
        description=f"{definition.name}: {result.status.value} in {result.duration_s:.2f}s, {result.tokens} tokens",
    )
    ctx = FlowRunContext.get()
    # Sent while the engine reports the final state (both wait on a server busy
    # ingesting the run's task events); the flow's end hooks await it, so the
    # artifact exists before the flow call returns. The flow run's own client:
    # a new one would build a TLS context first (~50 ms).
    client = ctx.client if ctx is not None and isinstance(ctx.client, PrefectClient) else None
    _PENDING_ARTIFACTS[run_id] = asyncio.ensure_future(artifact.acreate(client=client))


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
