"""Hand-offs in the run's graph batches and events (``RunGraph``, ``RunEvents``): ASKED links with the slot's
counts, the asked agents' engagements, and ``messages_exchanged``. No server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.handoff_work import DRAFT, TO_CRITIC, TO_CRITIC_AGAIN, TO_RESEARCHER, delegating_work
from support.tool_work import DEFINITION, START, slot_record, step_result

from agentparty.flows.run_events import RunEvents
from agentparty.models.engagements import delegated_cost, delegated_tokens
from agentparty.models.events import AgentProvisionedEvent, TeamPerformanceEvent
from agentparty.models.graph import Agent, Asked, MemberOf, stable_id
from agentparty.models.run_results import StepStatus, WorkflowResult
from agentparty.runtime.run_recorder import RunGraph

RUN_KEY = "run-key-asks"


def test_asked_links_carry_each_slots_question_and_answer_counts() -> None:
    work = delegating_work()
    run = RunGraph(DEFINITION, RUN_KEY, "ana")
    records = [slot_record(work)]
    run.tally.add(step_result(DRAFT), records)
    batch = run.step(records)

    writer, critic, researcher = work.agent.id, work.handoffs[0].work.agent.id, stable_id("agent", "researcher")
    asked = {(e.source_id, e.target_id): e for e in batch.edges if isinstance(e.props, Asked)}
    task = stable_id("task", RUN_KEY)
    assert {k: (e.props.task_id, e.props.step_id, e.props.questions, e.props.answers) for k, e in asked.items()} == {
        (writer, critic): (task, DRAFT, 2, 1),  # asked twice; the second time the critic failed
        (critic, researcher): (task, TO_CRITIC, 1, 1),
    }
    assert asked[(writer, critic)].props.last_asked == START + timedelta(minutes=6)
    assert all(e.key == ("task_id", "step_id") for e in asked.values()), "MERGEd per task and slot, counts SET"
    assert {n.id for n in batch.nodes if isinstance(n, Agent)} == {writer, critic, researcher}
    roles = {(e.source_id, e.props.role) for e in batch.edges if isinstance(e.props, MemberOf)}
    assert roles == {(writer, "research"), (critic, "delegate"), (researcher, "delegate")}

    assert run.tally.members == {writer, critic, researcher}, "an agent another asked joins the team"
    assert run.tally.messages_exchanged == 5
    run.tally.add(step_result(DRAFT), records)  # a resumed run takes in the same step again
    assert run.tally.messages_exchanged == 5
    assert delegated_tokens(work) == 3 * (920 + 195) and delegated_cost(work) == pytest.approx(0.03)


def test_events_report_every_engagement_and_the_team_counts_messages() -> None:
    work = delegating_work()
    events = RunEvents(DEFINITION, RUN_KEY, "flow-run-1", "ana")
    records = [slot_record(work)]
    events.tally.add(step_result(DRAFT), records)
    emitted = events.step_finished(step_result(DRAFT), records)
    provisioned = [e for e in emitted if isinstance(e, AgentProvisionedEvent)]
    assert len(provisioned) == 4 and len({e.event_id for e in provisioned}) == 4, "one per engagement, by slot"
    transitions = [e for e in emitted if e.event_type == "agent_state_transition"]
    assert len(transitions) == 8

    result = WorkflowResult(
        workflow_id=DEFINITION.id, workflow_name=DEFINITION.name, run_id="flow-run-1", status=StepStatus.COMPLETED
    )
    [performance] = [e for e in events.run_finished(result) if isinstance(e, TeamPerformanceEvent)]
    metrics = performance.payload.collaboration_metrics
    assert (metrics.messages_exchanged, metrics.pair_count) == (5, 3)
    assert {s for s, _ in slot_record(work).engagements()} == {DRAFT, TO_CRITIC, TO_RESEARCHER, TO_CRITIC_AGAIN}
