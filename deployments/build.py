"""One Prefect deployment per workflow definition, with its schedules and event triggers.

A definition's ``triggers`` become Prefect's own objects, so the server does the
work: ``schedule`` → ``prefect.schedules`` Cron / Interval / RRule (timezone and
run inputs kept), ``event`` → a ``DeploymentEventTrigger`` automation whose run
inputs are Jinja templates over the matching event, ``manual`` → the run form
(default inputs as the deployment's parameters). ``webhook`` triggers need no
server object: the HTTP service (``agentparty api``) checks the signature and
starts the run. Kafka-bridged event triggers expect the events that
:mod:`agentparty.deployments.kafka_bridge` emits.

The deployment points at the module-level entrypoint of
:mod:`agentparty.flows.deployed` (DESIGN.md §6) and carries the definition's
folder in ``AGENTPARTY_WORKFLOWS``, so a worker's flow-run process rebuilds the
same flow from the same file. A copy of the definition is stored with the
deployment (:mod:`agentparty.deployments.definition_copies`), so the API needs
no access to that file.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.events.schemas.automations import TriggerTypes
from prefect.events.schemas.deployment_triggers import DeploymentTriggerTypes
from prefect.exceptions import ObjectAlreadyExists
from prefect.schedules import Cron, Interval, RRule, Schedule
from prefect.types.entrypoint import EntrypointType
from prefect.workers.process import ProcessWorker

from agentparty.deployments.dead_runs import HEARTBEAT_ENV, ensure_dead_run_automation
from agentparty.deployments.definition_copies import store_copy
from agentparty.deployments.kafka_bridge import ROUTE_LABEL, bridge_event_name
from agentparty.deployments.naming import INPUTS_PARAMETER, deployment_name, full_name
from agentparty.flows.compiler import compile_workflow
from agentparty.flows.deployed import WORKFLOWS_ENV
from agentparty.models import WorkflowDefinition
from agentparty.models.workflow import EventTrigger, ManualTrigger, ScheduleTrigger, WebhookTrigger
from agentparty.runtime.documents import WorkflowCatalog, load_workflow
from agentparty.runtime.result_storage import share_results_through_server
from agentparty.runtime.settings import get_settings

TAGS = ("agentparty", "workflow")


@dataclass(frozen=True)
class DeployedWorkflow:
    """What ``agentparty deploy`` reports for one definition."""

    workflow_id: str
    name: str
    """``FLOW/DEPLOYMENT``."""
    deployment_id: str
    source: Path
    schedules: tuple[str, ...]
    event_triggers: tuple[str, ...]
    webhook: bool


def schedules_for(definition: WorkflowDefinition) -> list[Schedule]:
    """Prefect schedules for the definition's ``schedule`` triggers (their run inputs become the runs' parameters)."""
    schedules: list[Schedule] = []
    for trigger in definition.triggers:
        if not isinstance(trigger, ScheduleTrigger):
            continue
        config = trigger.configuration
        common: dict[str, Any] = {
            "timezone": config.timezone,
            "active": config.active,
            "parameters": {INPUTS_PARAMETER: dict(config.parameters)},
        }
        if config.cron is not None:
            schedules.append(Cron(config.cron, **common))
        elif config.interval is not None:
            schedules.append(Interval(timedelta(seconds=config.interval), **common))
        elif config.rrule is not None:
            schedules.append(RRule(config.rrule, **common))
    return schedules


def event_triggers_for(definition: WorkflowDefinition) -> list[DeploymentTriggerTypes | TriggerTypes]:
    """Automations for the definition's ``event`` triggers; run inputs are templates over ``event``."""
    triggers: list[DeploymentTriggerTypes | TriggerTypes] = []
    for index, trigger in enumerate(definition.triggers):
        if not isinstance(trigger, EventTrigger):
            continue
        config = trigger.configuration
        expect = set(config.expect)
        match: dict[str, Any] = dict(config.match)
        if config.kafka is not None:  # only the bridge's events for this very trigger (its filter passed)
            match.setdefault("prefect.resource.id", f"{bridge_event_name(config.kafka.topic)}.*")
            match[ROUTE_LABEL] = f"{definition.id}.{index}"
        triggers.append(
            DeploymentEventTrigger(
                name=f"{definition.id} on {', '.join(sorted(expect))}"[:200],
                description=f"Runs workflow {definition.id!r} (trigger {index}).",
                expect=expect,
                match=match or {"prefect.resource.id": "*"},
                match_related=dict(config.match_related),
                threshold=config.threshold,
                within=timedelta(seconds=config.within),
                posture="Reactive",
                parameters={INPUTS_PARAMETER: dict(config.parameters)},
            )
        )
    return triggers


def default_inputs(definition: WorkflowDefinition) -> dict[str, Any]:
    """The manual trigger's default run inputs (the run form starts from them)."""
    defaults: dict[str, Any] = {}
    for trigger in definition.triggers:
        if isinstance(trigger, ManualTrigger):
            defaults.update(trigger.configuration.parameters)
    return defaults


def runner_deployment(definition: WorkflowDefinition, source: Path) -> RunnerDeployment:
    """The deployment for one definition (apply it to a work pool)."""
    source = source.resolve()
    flow = compile_workflow(definition, source=source)
    defaults = default_inputs(definition)
    deployment = flow.to_deployment(
        name=deployment_name(definition),
        entrypoint_type=EntrypointType.MODULE_PATH,
        schedules=schedules_for(definition),
        triggers=event_triggers_for(definition),
        parameters={INPUTS_PARAMETER: defaults} if defaults else None,
        description=definition.description or definition.name,
        version=definition.version,
        tags=[*TAGS, *definition.tags],
        job_variables={
            "env": {
                WORKFLOWS_ENV: _search_path_with(source.parent),
                HEARTBEAT_ENV: str(get_settings().run_heartbeat_s),  # dead runs are found by their silence
            }
        },
        enforce_parameter_schema=True,
    )
    assert isinstance(deployment, RunnerDeployment)  # a sync caller gets the deployment, not a coroutine
    return deployment


def _search_path_with(folder: Path) -> str:
    """The definition's folder first, then whatever the deploying process already searched."""
    current = get_settings().workflows
    parts = [str(folder), *(str(p) for p in current if p.resolve() != folder)]
    return os.pathsep.join(parts)


def ensure_work_pool(name: str) -> bool:
    """Create the process work pool when missing (with the process worker's job template); True if created."""

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type=ProcessWorker.type,
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                    description="Agent Party workflow runs (agentparty worker)",
                )
            )
        except ObjectAlreadyExists:
            return False
    return True


def deploy_workflows(
    sources: Iterable[tuple[WorkflowDefinition, Path]],
    *,
    work_pool: str,
) -> list[DeployedWorkflow]:
    """Create or update one deployment per definition on ``work_pool`` (created when missing), each with a
    copy of its definition on the server (:mod:`agentparty.deployments.definition_copies`: the API reads it).

    Call from synchronous code: Prefect's ``apply`` dispatches to its sync
    client outside an event loop.
    """
    ensure_work_pool(work_pool)
    settings = get_settings()
    with get_client(sync_client=True) as client:
        ensure_dead_run_automation(client, settings.dead_run_after_s)
    if settings.state_backend().dialect == "postgresql":  # results every worker reaches (runtime/result_storage.py)
        asyncio.run(_share_results())
    registry = settings.model_registry()
    deployed: list[DeployedWorkflow] = []
    for definition, source in sources:
        deployment = runner_deployment(definition, source)
        deployment_id = deployment.apply(work_pool_name=work_pool)
        assert isinstance(deployment_id, UUID)  # a sync caller gets the id, not a coroutine
        store_copy(
            definition, source, deployment=full_name(definition), deployment_id=deployment_id, model_registry=registry
        )
        deployed.append(
            DeployedWorkflow(
                workflow_id=definition.id,
                name=full_name(definition),
                deployment_id=str(deployment_id),
                source=source.resolve(),
                schedules=tuple(_describe_schedule(s) for s in deployment.schedules or []),
                event_triggers=tuple(_expected_event(t) for t in deployment.triggers),
                webhook=any(isinstance(t, WebhookTrigger) for t in definition.triggers),
            )
        )
    return deployed


async def _share_results() -> None:
    async with get_client() as client:
        await share_results_through_server(client)


def deploy_training(work_pool: str) -> DeployedWorkflow:
    """The scheduled GNN training flow, on the same pool (``flows/train_gnn.py``)."""
    from agentparty.flows.train_gnn import FLOW_NAME, train_gnn, training_deployment  # deferred: imports torch

    ensure_work_pool(work_pool)
    deployment = training_deployment()
    deployment_id = deployment.apply(work_pool_name=work_pool)
    return DeployedWorkflow(
        workflow_id=train_gnn.name,
        name=f"{FLOW_NAME}/{deployment.name}",
        deployment_id=str(deployment_id),
        source=Path(train_gnn.fn.__code__.co_filename),
        schedules=tuple(_describe_schedule(s) for s in deployment.schedules or []),
        event_triggers=(),
        webhook=False,
    )


def _describe_schedule(schedule: Any) -> str:
    inner = getattr(schedule, "schedule", schedule)
    timezone = getattr(inner, "timezone", None) or "UTC"
    if getattr(inner, "cron", None):
        return f"cron {inner.cron} {timezone}"
    if getattr(inner, "interval", None):
        return f"every {inner.interval.total_seconds():g}s"
    return f"rrule {getattr(inner, 'rrule', '?')}"


def load_sources(paths: Sequence[Path]) -> list[tuple[WorkflowDefinition, Path]]:
    """Definitions from files or folders (a folder: every workflow definition directly in it)."""

    registry = get_settings().model_registry()
    catalog = WorkflowCatalog()
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                found for wid in sorted(catalog.ids_in(path.resolve())) if (found := catalog.find(wid, path.resolve()))
            )
        else:
            files.append(path)
    return [(load_workflow(file, registry), file) for file in files]


def _expected_event(trigger: DeploymentTriggerTypes | TriggerTypes) -> str:
    """The event a trigger waits for, as ``agentparty deploy`` reports it ("*" for any)."""
    expect = getattr(trigger, "expect", None)  # event triggers have it; metric and compound ones do not
    return sorted(expect)[0] if expect else "*"
