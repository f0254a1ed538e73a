"""State machines as data: seed 002's diagram exactly, seed 000's lifecycle, team and task status."""

from __future__ import annotations

import itertools

import pytest

from agentparty.models import (
    AGENT_LIFECYCLE_MACHINE,
    AGENT_RUNTIME_MACHINE,
    TASK_MACHINE,
    TEAM_MACHINE,
    GovernanceRules,
    IllegalTransition,
)
from agentparty.models.governance import ApprovalMode
from agentparty.models.states import RUNTIME_TO_LIFECYCLE, AgentLifecycleState, AgentRuntimeStatus, UnknownTrigger

# Seed 002's mermaid diagram, transcribed: (from, to, trigger). "[*]" final is "terminated".
SEED_002_DIAGRAM = {
    ("created", "idle", "start"),
    ("idle", "processing", "receiveMessage"),
    ("processing", "idle", "completeTask"),
    ("processing", "error", "exception"),
    ("error", "processing", "retry"),
    ("error", "idle", "abort"),
    ("processing", "paused", "pause"),
    ("paused", "processing", "resume"),
    ("idle", "terminated", "shutdown"),
}


def test_runtime_machine_is_exactly_the_seed_diagram() -> None:
    actual = {(t.source.value, t.target.value, t.trigger) for t in AGENT_RUNTIME_MACHINE.transitions}
    assert actual == SEED_002_DIAGRAM
    assert AGENT_RUNTIME_MACHINE.initial is AgentRuntimeStatus.CREATED


def test_illegal_transition_names_from_to_and_what_is_allowed() -> None:
    with pytest.raises(IllegalTransition) as caught:
        AGENT_RUNTIME_MACHINE.check("idle", "paused")
    assert (
        str(caught.value)
        == "agent runtime: cannot go from 'idle' to 'paused'; allowed from 'idle': processing, terminated"
    )
    assert caught.value.allowed == ("processing", "terminated")
    with pytest.raises(IllegalTransition, match="allowed from 'terminated': nothing \\(terminal state\\)"):
        AGENT_LIFECYCLE_MACHINE.check("terminated", "running")


def test_unknown_state_names_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown state 'sleeping'; states are: created, idle"):
        AGENT_RUNTIME_MACHINE.check("sleeping", "idle")


def test_triggers_follow_the_diagram() -> None:
    assert AGENT_RUNTIME_MACHINE.fire("processing", "pause") is AgentRuntimeStatus.PAUSED
    assert AGENT_RUNTIME_MACHINE.fire("error", "retry") is AgentRuntimeStatus.PROCESSING
    with pytest.raises(
        UnknownTrigger,
        match=r"'pause\(\)' does not apply in state 'idle'; triggers there: receiveMessage\(\), shutdown\(\)",
    ):
        AGENT_RUNTIME_MACHINE.fire("idle", "pause")


def test_lifecycle_contains_the_seed_governance_transitions() -> None:
    for key in ("initialized_to_running", "running_to_completed", "running_to_paused"):
        assert AGENT_LIFECYCLE_MACHINE.transition_for_key(key) is not None
    assert AGENT_LIFECYCLE_MACHINE.can("paused", "running")
    assert not AGENT_LIFECYCLE_MACHINE.can("initialized", "completed")


def test_every_runtime_state_maps_onto_a_lifecycle_state() -> None:
    assert set(RUNTIME_TO_LIFECYCLE) == set(AgentRuntimeStatus)
    assert RUNTIME_TO_LIFECYCLE[AgentRuntimeStatus.ERROR] is AgentLifecycleState.FAILED


@pytest.mark.parametrize(
    ("machine", "path"),
    [
        (TEAM_MACHINE, ["forming", "active", "completed"]),
        (TASK_MACHINE, ["submitted", "analyzed", "assigned", "in_progress", "failed", "in_progress", "completed"]),
        (
            AGENT_LIFECYCLE_MACHINE,
            ["initialized", "running", "paused", "running", "completed", "running", "failed", "terminated"],
        ),
    ],
)
def test_happy_paths_are_legal(machine, path: list[str]) -> None:  # type: ignore[no-untyped-def]
    for source, target in itertools.pairwise(path):
        machine.check(source, target)


@pytest.mark.parametrize(
    ("machine", "source", "target"),
    [
        (TEAM_MACHINE, "completed", "active"),
        (TEAM_MACHINE, "forming", "completed"),
        (TASK_MACHINE, "submitted", "completed"),
        (TASK_MACHINE, "cancelled", "in_progress"),
    ],
)
def test_shortcuts_and_reopening_terminal_states_are_illegal(machine, source: str, target: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IllegalTransition):
        machine.check(source, target)


def test_governance_rules_name_real_transitions() -> None:
    rules = GovernanceRules.model_validate({"transitions": {"running_to_paused": {"approval": "human", "timeout": 60}}})
    assert rules.rule_for("running", "paused").approval is ApprovalMode.HUMAN
    assert rules.rule_for("running", "paused").effective_timeout == 60
    assert rules.rule_for("initialized", "running").approval is ApprovalMode.AUTOMATIC
    with pytest.raises(ValueError, match="unknown transition 'runing_to_paused'"):
        GovernanceRules.model_validate({"transitions": {"runing_to_paused": {"approval": "human"}}})
    with pytest.raises(ValueError, match="timeout applies only to approval 'human'"):
        GovernanceRules.model_validate({"transitions": {"running_to_paused": {"approval": "automatic", "timeout": 5}}})
