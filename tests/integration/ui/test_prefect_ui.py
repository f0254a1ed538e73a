"""The UI people use: the Prefect UI of the local server, in headless Chromium, shows our deployments and runs.

The examples are deployed and research-report runs end to end in this process
against the session's Prefect server; then a browser opens the deployments list,
the finished run (its state and one task run per step, forEach items each on
their own) and webhook-triage's run form (the workflow's inputs as fields).
Full-page screenshots go to ``test-artifacts/ui/`` (or ``$AGENTPARTY_TEST_ARTIFACTS/ui``).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

import pytest
from support.deploy_support import wait_for
from support.workflow_docs import EXAMPLES

pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed (it comes with the test extra)"
)

from playwright.sync_api import expect
from support.run_services_support import services
from support.ui_support import UI_TIMEOUT_MS, full_page_screenshot

from agentparty.deployments.build import DeployedWorkflow, deploy_workflows, load_sources
from agentparty.flows import CompileOptions, WorkflowResult, compile_workflow
from agentparty.models.run_results import StepStatus
from agentparty.runtime.documents import load_workflow

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # the first test may install Chromium (apt-get)

WORK_POOL = "ui-test"
RESEARCH_TASK_RUNS = {
    "plan",
    "research[history]",
    "research[current methods]",
    "research[open problems]",
    "coverage",
    "enough_sources",
    "draft",
    "review",
}
"""research-report on its default inputs: every step that ran (flag_gaps is skipped), forEach items one by one
(their agent loops' turn and tool-call checkpoints besides)."""
TRIAGE_FIELDS = ("ticket_id", "subject", "body", "customer_tier")


@dataclass(frozen=True)
class UiWorld:
    ui: str
    deployed: dict[str, DeployedWorkflow]
    result: WorkflowResult
    run_name: str
    task_runs: set[str]
    """Their names (a tool called twice in one turn is two task runs of one name)."""
    task_run_count: int


def _task_runs_that_ran(result: WorkflowResult) -> set[str]:
    """Each step (forEach items one by one) that ran, and the checkpoints of agent loops that called tools."""
    names: set[str] = set()
    for step_id, step in result.steps.items():
        ran = [item for item in step.items if item.status is not StepStatus.SKIPPED] if step.items else [step]
        if step.status is StepStatus.SKIPPED:
            ran = []
        for part in ran:
            slot = part.step_id if step.items else step_id
            names.add(slot)
            if any(turn.tool_calls for turn in part.turns):  # a loop with tools checkpoints every turn and call
                for turn in part.turns:
                    names.add(f"{slot} · turn {turn.turn}")
                    names.update(f"{slot} · turn {turn.turn} · {call.name}" for call in turn.tool_calls)
    return names


async def _recorded(flow_run_id: str) -> tuple[Any, dict[str, str], int]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        flow_run = await client.read_flow_run(flow_run_id)  # type: ignore[arg-type]
        task_runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return flow_run, {run.name: run.state_name or "" for run in task_runs}, len(task_runs)


@pytest.fixture(scope="module")
def world(prefect_server: str) -> UiWorld:
    """Deployments of every example and one finished research-report run, all recorded by the server.

    Set up before the browser: it calls Prefect with ``asyncio.run``.
    """
    started = time.monotonic()
    deployed = {d.workflow_id: d for d in deploy_workflows(load_sources([EXAMPLES]), work_pool=WORK_POOL)}
    print(f"deployed {len(deployed)} examples in {time.monotonic() - started:.1f} s")
    started = time.monotonic()
    source = EXAMPLES / "research-report.yaml"
    flow = compile_workflow(
        load_workflow(source), source=source, options=CompileOptions(services=services(recorder=None, events=None))
    )
    result = asyncio.run(flow(inputs={}))
    assert result.status is StepStatus.COMPLETED and result.run_id, result
    expected = _task_runs_that_ran(result)
    assert {name for name in expected if " · turn " not in name} == RESEARCH_TASK_RUNS
    assert "research[history] · turn 1 · search_docs" in expected, expected

    def all_recorded() -> tuple[Any, dict[str, str], int] | None:
        # task-run states reach the server as events, a moment after the flow returns
        flow_run, task_runs, count = asyncio.run(_recorded(result.run_id))  # type: ignore[arg-type]
        done = all(task_runs.get(name) == "Completed" for name in expected)
        return (flow_run, task_runs, count) if done and flow_run.state_name == "Completed" else None

    flow_run, task_runs, count = wait_for(all_recorded, 30, "the run and its completed task runs on the server")
    assert set(task_runs) == expected, task_runs
    print(f"research-report ran and was recorded in {time.monotonic() - started:.1f} s: flow run {result.run_id}")
    return UiWorld(prefect_server.removesuffix("/api"), deployed, result, flow_run.name, expected, count)


def test_deployments_page_lists_every_example(world: UiWorld, page: Any) -> None:
    page.goto(f"{world.ui}/deployments")
    expect(page.get_by_text(re.compile(r"^\d+ Deployments?$"))).to_be_visible()
    expect(page.get_by_role("row").first).to_be_visible(timeout=UI_TIMEOUT_MS)
    full_page_screenshot(page, "deployments")
    # Other tests of the session may add deployments (and pages): find each of ours with the search box.
    search = page.get_by_placeholder("Search deployments")
    for deployment in world.deployed.values():
        flow_name, deployment_name = deployment.name.split("/")
        search.fill(deployment_name)
        row = page.get_by_role("row").filter(has=page.get_by_text(deployment_name, exact=True))
        expect(row).to_have_count(1, timeout=UI_TIMEOUT_MS)
        expect(row).to_contain_text(flow_name)


def test_finished_run_shows_its_state_and_task_runs(world: UiWorld, page: Any) -> None:
    page.goto(f"{world.ui}/runs/flow-run/{world.result.run_id}")
    heading = page.locator("header.page-heading")
    expect(heading).to_contain_text(world.run_name)
    expect(heading).to_contain_text("Completed")
    expect(heading).to_contain_text(f"{world.task_run_count} Task runs")
    page.get_by_role("tablist").get_by_text("Task Runs", exact=True).click()
    panel = page.get_by_role("tabpanel")
    expect(panel).to_contain_text(f"{world.task_run_count} Task runs")
    expect(panel).to_contain_text(f"({world.task_run_count} completed)")
    for name in sorted(world.task_runs):
        expect(panel.get_by_role("link", name=name, exact=True)).to_be_visible()
    full_page_screenshot(page, "flow-run-task-runs")


_FORM_FIELDS_JS = """() => Array.from(document.querySelectorAll('.schema-form-property'), p => {
    const label = p.querySelector(':scope > .p-label__header .schema-form-property__label');
    const input = p.querySelector(':scope > .p-label__body > fieldset > .schema-form-property-input');
    const control = input && input.querySelector('textarea, input, select, button');
    return {
        label: label ? label.textContent.trim() : null,
        kind: input
            ? (input.className.match(/schema-form-property-(object|string|integer|number|boolean|array|null)/)
               || [null, 'other'])[1]
            : null,
        control: control ? control.tagName.toLowerCase() : null,
        text: input ? input.innerText.trim() : '',
    };
})"""


def test_run_form_shows_the_workflow_inputs(world: UiWorld, page: Any) -> None:
    """The custom run page renders ``inputs`` (one object parameter) as one field per workflow input."""
    deployment = world.deployed["webhook-triage"]
    page.goto(f"{world.ui}/deployments/deployment/{deployment.deployment_id}/run")
    expect(page.get_by_text("Parameters", exact=True)).to_be_visible()
    for name in TRIAGE_FIELDS:
        expect(
            page.locator(".schema-form-property__label").filter(has_text=re.compile(rf"^{name}( \(Optional\))?$"))
        ).to_be_visible()
    full_page_screenshot(page, "webhook-triage-run-form")
    fields = {f["label"]: f for f in page.evaluate(_FORM_FIELDS_JS)}
    print("run form fields:", fields)
    assert fields["inputs (Optional)"]["kind"] == "object", fields
    for name in ("ticket_id", "subject", "body"):  # required inputs: no "(Optional)"
        assert (fields[name]["kind"], fields[name]["control"]) == ("string", "textarea"), fields
    tier = fields["customer_tier (Optional)"]
    assert tier["kind"] == "string" and tier["text"] == "free", fields  # the enum's select, on its default
    for name in ("ticket_id", "subject", "body", "customer_tier (Optional)"):
        assert name in fields["inputs (Optional)"]["text"].splitlines(), fields  # nested in the inputs object
