"""Runs whose worker or host died are rescheduled without a person: flow-run heartbeats and a Prefect automation.

A deployed run's process sends ``prefect.flow-run.heartbeat`` events every
``AGENTPARTY_RUN_HEARTBEAT_S`` seconds (Prefect's ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``,
passed to the flow-run process as a job variable). When a host dies, its runs
stay ``Running`` on the server and their heartbeats stop. The automation made
here is Prefect's own answer to such "zombie" runs (a proactive ``EventTrigger``:
after a heartbeat, expect another heartbeat or a final state within
``AGENTPARTY_DEAD_RUN_AFTER_S``), with one difference: instead of marking the
run ``Crashed`` it puts it back to ``Scheduled`` (named ``Rescheduled``), so any
worker of the pool, on any host, picks the same flow run up again. The run keeps
its id, hence its run key, so with results in the shared state database
(``runtime/result_storage.py``) every step its first host completed is reused
and none runs twice.

Only runs of Agent Party's deployments (tag ``agentparty``) are watched. A run
paused for an approval keeps its process and its heartbeats, so it is not
rescheduled. A run that kills its host every time would be rescheduled every
time: Prefect counts its attempts in ``run_count``, shown in the UI.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

AUTOMATION_NAME = "agentparty: reschedule runs whose host stopped"
HEARTBEAT_ENV = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"


def dead_run_automation(after_s: int) -> AutomationCore:
    """The automation: no heartbeat and no final state within ``after_s`` seconds of a heartbeat → Scheduled."""
    return AutomationCore(
        name=AUTOMATION_NAME,
        description="A deployed Agent Party run stopped sending heartbeats: its process or host died. "
        "Put it back to Scheduled so a worker on any host resumes it from its persisted results.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=ResourceSpecification(
                {"prefect.resource.role": "tag", "prefect.resource.id": "prefect.tag.agentparty"}
            ),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=after_s),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.SCHEDULED,
                name="Rescheduled",
                message=f"no heartbeat for {after_s} s: its worker or host stopped; rescheduled for any worker",
                force=True,
            )
        ],
    )


def ensure_dead_run_automation(client: Any, after_s: int | None) -> None:
    """Create or replace the automation with a sync Prefect client (``after_s`` None or 0: remove it; runs that
    die then stay Running until someone marks them)."""
    for existing in client.read_automations_by_name(AUTOMATION_NAME):
        client.delete_automation(existing.id)
    if after_s:
        client.create_automation(dead_run_automation(after_s))
