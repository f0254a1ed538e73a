"""`agentparty deploy`: one deployment per definition, with its run form, schedules and triggers, on a real server."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from pathlib import Path
from typing import Any

import pytest
from support.deploy_support import flow_runs_of, stamp_workflow, wait_for, write_definition
from typer.testing import CliRunner

from agentparty.deployments.build import deploy_workflows, load_sources
from agentparty.flows.deployed import WORKFLOWS_ENV, entrypoint_for

pytestmark = pytest.mark.usefixtures("prefect_server")


def _pool() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def _read_deployment(name: str) -> Any:
    from prefect.client.orchestration import get_client

    async def read() -> Any:
        async with get_client() as client:
            return await client.read_deployment_by_name(name)

    return asyncio.run(read())


def _automations_of(deployment_id: str) -> list[Any]:
    from prefect.client.orchestration import get_client

    async def read() -> list[Any]:
        async with get_client() as client:
            return await client.read_resource_related_automations(f"prefect.deployment.{deployment_id}")

    return asyncio.run(read())


def test_examples_deploy_with_forms_schedules_and_triggers(examples_dir: Path) -> None:
    pool = _pool()
    deployed = {d.workflow_id: d for d in deploy_workflows(load_sources([examples_dir]), work_pool=pool)}
    assert set(deployed) == {"research-report", "nightly-digest", "webhook-triage", "enrich-ticket"}

    triage = _read_deployment("Webhook triage/webhook-triage")
    assert triage.entrypoint == entrypoint_for("webhook-triage")
    assert triage.work_pool_name == pool
    assert triage.enforce_parameter_schema
    assert triage.job_variables["env"][WORKFLOWS_ENV].split(":")[0] == str(examples_dir.resolve())
    form = triage.parameter_openapi_schema["properties"]["inputs"]
    assert form["type"] == "object"
    assert set(form["properties"]) == {"ticket_id", "subject", "body", "customer_tier"}
    assert form["properties"]["customer_tier"]["enum"] == ["free", "pro", "enterprise"]
    assert set(form["required"]) == {"ticket_id", "subject", "body"}
    assert deployed["webhook-triage"].webhook

    digest = _read_deployment("Nightly digest/nightly-digest")
    (schedule,) = digest.schedules
    assert schedule.schedule.cron == "0 2 * * *"
    assert schedule.schedule.timezone == "Europe/Berlin"
    assert deployed["nightly-digest"].schedules == ("cron 0 2 * * * Europe/Berlin",)

    again = {d.workflow_id: d for d in deploy_workflows(load_sources([examples_dir]), work_pool=pool)}
    assert {k: v.deployment_id for k, v in again.items()} == {k: v.deployment_id for k, v in deployed.items()}
    assert len(_read_deployment("Nightly digest/nightly-digest").schedules) == 1


def test_an_event_trigger_is_one_automation_that_survives_redeploys(workflow_dir: Path) -> None:
    trigger = {
        "type": "event",
        "configuration": {"expect": ["agentparty.test.redeploy"], "parameters": {"label": "{{ event.id }}"}},
    }
    write_definition(workflow_dir, stamp_workflow("redeployed", [trigger]))
    pool = _pool()
    (first,) = deploy_workflows(load_sources([workflow_dir]), work_pool=pool)
    (second,) = deploy_workflows(load_sources([workflow_dir]), work_pool=pool)
    assert first.deployment_id == second.deployment_id
    (automation,) = _automations_of(second.deployment_id)
    assert automation.trigger.expect == {"agentparty.test.redeploy"}
    (action,) = automation.actions
    assert action.parameters == {"inputs": {"label": "{{ event.id }}"}}


def test_interval_schedule_produces_runs_with_the_schedule_inputs(workflow_dir: Path) -> None:
    trigger = {
        "type": "schedule",
        "configuration": {"interval": 2, "timezone": "Europe/Berlin", "parameters": {"label": "tick"}},
    }
    write_definition(workflow_dir, stamp_workflow("ticker", [trigger]))
    (deployed,) = deploy_workflows(load_sources([workflow_dir]), work_pool=_pool())
    assert deployed.schedules == ("every 2s",)

    runs = wait_for(
        lambda: [r for r in flow_runs_of(deployed.deployment_id) if r.auto_scheduled] or None, 90, "scheduled runs"
    )
    starts = sorted(r.expected_start_time for r in runs)
    assert len(starts) >= 3
    assert {(b - a).total_seconds() for a, b in itertools.pairwise(starts)} == {2.0}
    assert all(r.parameters == {"inputs": {"label": "tick"}} for r in runs)


def test_deploy_cli_reports_each_deployment_and_refuses_invalid_definitions(workflow_dir: Path, tmp_path: Path) -> None:
    from agentparty.cli import app

    write_definition(
        workflow_dir,
        stamp_workflow(
            "cli-deployed", [{"type": "manual", "configuration": {"parameters": {"label": "form-default"}}}]
        ),
    )
    result = CliRunner().invoke(app, ["deploy", str(workflow_dir), "--pool", _pool(), "--no-training"])
    assert result.exit_code == 0, result.output
    assert "Cli Deployed/cli-deployed" in result.output
    assert _read_deployment("Cli Deployed/cli-deployed").parameters == {"inputs": {"label": "form-default"}}

    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nname: Bad\nsteps: []\ntriggers: [{type: schedule, configuration: {cron: 'not a cron'}}]\n")
    result = CliRunner().invoke(app, ["deploy", str(bad), "--pool", _pool()])
    assert result.exit_code == 1
    assert "cron" in result.output and "nothing deployed" in result.output


def test_a_failed_run_s_result_reads_back_in_another_process() -> None:
    """Prefect persists a failed run's WorkflowFailed; unpickling it must give back the whole WorkflowResult."""
    import pickle

    from agentparty.models.run_results import StepResult, StepStatus, WorkflowFailed, WorkflowResult

    result = WorkflowResult(
        workflow_id="w",
        workflow_name="W",
        status=StepStatus.FAILED,
        reason="step 'a' failed",
        steps={"a": StepResult(step_id="a", status=StepStatus.FAILED, reason="boom")},
    )
    again = pickle.loads(pickle.dumps(WorkflowFailed(result)))
    assert again.result == result
    assert str(again) == str(WorkflowFailed(result))


def test_bridge_cli_says_when_no_trigger_needs_kafka(examples_dir: Path) -> None:
    from agentparty.cli import app

    result = CliRunner().invoke(app, ["bridge", str(examples_dir)])
    assert result.exit_code == 1
    assert "kafka" in result.output
