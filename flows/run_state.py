"""The state one workflow run shares among its parts: inputs, keys, results so far, the concurrency bound, abort reason.

The scheduler (``flows/scheduler.py``) makes one :class:`RunState` per flow run
and hands it to the parts that act on the run: the step kinds read earlier
results through it, the fallbacks and the team staffing record why the run
aborts. Passing it down keeps those modules free of the scheduler above them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentparty.flows.run_observers import RunObservers
from agentparty.models import WorkflowDefinition
from agentparty.models.references import ReferenceScope
from agentparty.models.run_results import StepResult, StepStatus
from agentparty.runtime.mcp_tools import McpPool

if TYPE_CHECKING:
    from agentparty.flows.staffing import Staffing  # its module loads the recommender (torch): only when staffing


@dataclass
class RunState:
    """One flow run of a workflow, as its scheduler, step kinds and fallbacks see it."""

    definition: WorkflowDefinition
    inputs: dict[str, Any]
    """The run inputs, defaults applied and checked against the definition's ``inputs``."""
    run_key: str
    """The resume key, else the flow run id, else ``local``: part of every step's cache key."""
    run_id: str | None
    """The Prefect flow run id; None when the flow function runs outside Prefect."""
    slots: asyncio.Semaphore
    """The run's concurrency bound: one slot per step running at once."""
    observers: RunObservers
    results: dict[str, StepResult] = field(default_factory=dict)
    """Step id → result, for each step that has finished."""
    aborted: str | None = None
    """Why the run stopped starting steps (the first reason given); None while it goes on."""
    staffing: Staffing | None = None
    """The team the recommender staffed capability-only agent steps with, if any."""
    result_version: str | None = None
    """The definition version step results are keyed under when a resumed run began with another, compatible one
    (``flows/resume_versions.py``); None: the definition's own."""
    mcp: McpPool = field(default_factory=McpPool)
    """The run's MCP connections: opened when a step first uses a server, shared by its steps, closed at its end."""

    def abort(self, reason: str) -> None:
        """Stop starting steps; the first reason given is the one the run reports."""
        self.aborted = self.aborted or reason

    def scope(self, item: Any = None, has_item: bool = False) -> ReferenceScope:
        """What references in a step resolve against: run inputs, completed outputs, the forEach item."""
        return ReferenceScope(
            inputs=self.inputs,
            step_outputs={sid: r.output for sid, r in self.results.items() if r.status is StepStatus.COMPLETED},
            item=item,
            has_item=has_item,
            skipped=frozenset(sid for sid, r in self.results.items() if r.status is StepStatus.SKIPPED),
        )
