"""Step results persisted by an earlier release still load, so ``--resume`` reuses them after an upgrade.

``tests/fixtures/results-0.1.0`` holds the result files of one research-report run
(``agentparty run examples/research-report.yaml --resume fixture-before-layers``)
written by the code before the layers were made one-way (commit de98102): pickles
that name ``agentparty.flows.compiler.StepOutcome``, ``agentparty.tasks.agent.AgentWork``,
``agentparty.tasks.lifecycle.LifecycleTransition`` and ``agentparty.flows.result``'s
models. Those names must keep resolving wherever the classes live now.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import cloudpickle
from prefect.results import ResultRecord

from agentparty.flows.compiler import StepOutcome
from agentparty.models.engagements import AgentWork, LifecycleTransition
from agentparty.models.run_results import WorkflowResult

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "results-0.1.0"


def load(path: Path) -> Any:
    """A step's result record (JSON with the pickle inside), or a flow's result (the bare pickle, base64)."""
    data = path.read_bytes()
    if data.startswith(b"{"):
        return ResultRecord.deserialize(data).result
    return cloudpickle.loads(base64.b64decode(data))


def test_every_result_of_the_earlier_release_loads_as_todays_types() -> None:
    loaded = [load(path) for path in sorted(FIXTURES.iterdir())]
    outcomes = [value for value in loaded if isinstance(value, StepOutcome)]
    flows = [value for value in loaded if isinstance(value, WorkflowResult)]
    assert len(outcomes) == 8 and len(flows) == 2  # 8 step slots (3 fan-out items); the run and its resume
    assert {f.status.value for f in flows} == {"completed"}
    engagements = [work for outcome in outcomes for work in outcome.agents]
    assert len(engagements) == 6 and all(isinstance(work, AgentWork) for work in engagements)
    transitions = [t for work in engagements for t in work.transitions]
    assert transitions and all(isinstance(t, LifecycleTransition) for t in transitions)


def test_fields_added_since_read_as_their_defaults() -> None:
    """Turns (tool calls) came after 0.1.0: its results load with none, on steps and on engagements alike."""
    loaded = [load(path) for path in sorted(FIXTURES.iterdir())]
    flows = [value for value in loaded if isinstance(value, WorkflowResult)]
    steps = [step for flow in flows for step in flow.steps.values()]
    assert steps and all(step.turns == [] for step in steps)
    items = [item for step in steps for item in step.items or []]
    assert items and all(item.turns == [] for item in items)
    works = [work for value in loaded if isinstance(value, StepOutcome) for work in value.agents]
    assert works and all(work.turns == () for work in works)
