"""The Task and Team machines as runs use them: routes from any state a run can find, and the moves its graph
batches carry (``RunGraph.started/step/finished``). No server."""

from __future__ import annotations

import pytest

from agentparty.models import WorkflowDefinition
from agentparty.models.run_results import StepStatus, WorkflowResult
from agentparty.models.states import TASK_MACHINE, TEAM_MACHINE, IllegalTransition
from agentparty.models.task_analysis import CapabilityMatch, TaskAnalysis
from agentparty.runtime.graph_store import StatusMove
from agentparty.runtime.run_recorder import RunGraph

DEFINITION = WorkflowDefinition.model_validate(
    {
        "id": "lifecycle",
        "name": "Lifecycle",
        "steps": [{"id": "a", "type": "task", "configuration": {"agent": "writer", "prompt": "hi"}, "timeout": 60}],
        "triggers": [{"type": "manual"}],
        "errorHandling": {"retryAttempts": 1, "backoffStrategy": "fixed", "baseDelay": 0},
    }
)


def keys(machine, source: str, target: str, resume: bool = True) -> list[str]:  # type: ignore[no-untyped-def]
    return [t.key for t in machine.route(source, target, resume=resume)]


def test_a_new_task_is_routed_through_every_state_of_the_machine() -> None:
    assert keys(TASK_MACHINE, "submitted", "in_progress") == [
        "submitted_to_analyzed",
        "analyzed_to_assigned",
        "assigned_to_in_progress",
    ]
    assert keys(TASK_MACHINE, "in_progress", "completed") == ["in_progress_to_completed"]
    assert keys(TASK_MACHINE, "failed", "in_progress") == ["failed_to_in_progress"]  # a resumed failed run
    assert keys(TASK_MACHINE, "in_progress", "in_progress") == []  # re-applied: nothing moves
    with pytest.raises(IllegalTransition):  # an ending does not resume a failed task on its way
        TASK_MACHINE.route("failed", "completed")


@pytest.mark.parametrize(
    ("machine", "source", "target", "allowed"),
    [
        (TASK_MACHINE, "completed", "in_progress", "nothing (terminal state)"),  # a late write after the end
        (TASK_MACHINE, "cancelled", "analyzed", "nothing (terminal state)"),
        (TEAM_MACHINE, "completed", "active", "nothing (terminal state)"),
    ],
)
def test_no_route_back_from_a_terminal_state(machine, source: str, target: str, allowed: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IllegalTransition) as refused:
        machine.route(source, target)
    assert f"cannot go from '{source}' to '{target}'" in str(refused.value) and allowed in str(refused.value)


@pytest.mark.parametrize(
    ("machine", "source", "target", "allowed"),
    [
        (TASK_MACHINE, "submitted", "in_progress", "analyzed, cancelled, failed"),
        (TASK_MACHINE, "analyzed", "completed", "assigned, cancelled, failed"),
        (TEAM_MACHINE, "forming", "completed", "active, failed"),
        (TEAM_MACHINE, "failed", "completed", "active"),
    ],
)
def test_the_machines_refuse_a_skipped_state_naming_what_is_allowed(  # type: ignore[no-untyped-def]
    machine, source: str, target: str, allowed: str
) -> None:
    with pytest.raises(IllegalTransition) as refused:
        machine.check(source, target)
    assert str(refused.value).endswith(f"allowed from '{source}': {allowed}")


def test_a_team_goes_active_with_its_first_member_and_back_to_work_when_resumed() -> None:
    assert keys(TEAM_MACHINE, "forming", "completed") == ["forming_to_active", "active_to_completed"]
    assert keys(TEAM_MACHINE, "forming", "failed") == ["forming_to_failed"]
    assert keys(TEAM_MACHINE, "failed", "active") == ["failed_to_active"]


def moves(batch) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(m.label, m.target) for m in batch.moves]


def test_run_batches_create_records_at_the_initial_state_and_move_them_by_the_machines() -> None:
    analysis = TaskAnalysis(
        capabilities=[CapabilityMatch(name="writing", confidence=0.62)], token_estimate=1200, time_estimate=60
    )
    run = RunGraph(DEFINITION, "run-1", "ana", analysis=analysis)
    started = run.started()
    task = next(n for n in started.nodes if n.label == "Task")
    team = next(n for n in started.nodes if n.label == "Team")
    assert (task.status, task.status_history, team.status) == ("submitted", ["submitted"], "forming")  # type: ignore[attr-defined]
    assert "status" in task.kept_fields and "status" in team.kept_fields  # an upsert never moves a status
    assert moves(started) == [("Task", "in_progress")]
    (move,) = started.moves
    assert isinstance(move, StatusMove) and (move.props["estimated_completion"] - run.started_at).total_seconds() == 60
    requires = {e.target_id: e.props.importance for e in started.edges if e.props.type == "REQUIRES"}  # type: ignore[attr-defined]
    assert list(requires.values()) == [0.62] and task.required_capabilities == ["writing"]  # type: ignore[attr-defined]

    assert moves(run.step([])) == []  # no member yet: the team stays forming
    ok = WorkflowResult(workflow_id="lifecycle", workflow_name="Lifecycle", status=StepStatus.COMPLETED)
    done, _ = run.finished(ok)
    assert moves(done) == [("Task", "completed"), ("Team", "completed")]
    assert "completed_at" in done.moves[0].props
    failed, _ = run.finished(ok.model_copy(update={"status": StepStatus.FAILED}))
    assert moves(failed) == [("Task", "failed"), ("Team", "failed")]
