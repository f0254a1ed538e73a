"""An `agentparty worker --metrics-address` serves the metrics its flow-run processes recorded: each run executes in
a process the worker starts and that exits at the end, and its counts still show on the worker's /metrics, and are
pushed over OTLP to a stand-in receiver the test runs (``support/otlp_stand_in.py``: no real OTLP metrics receiver
exists on this machine)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.deploy_support import stamp_workflow, wait_for, write_definition
from support.otlp_stand_in import StandInOtlpReceiver, attributes_of, metrics_of, stand_in_receiver

from agentparty.deployments.build import deploy_workflows, load_sources
from agentparty.runtime.local_service import free_port

pytestmark = pytest.mark.slow
RUNS = 3


@pytest.fixture
def receiver() -> Iterator[StandInOtlpReceiver]:
    with stand_in_receiver() as server:
        yield server


@pytest.fixture
def worker(
    prefect_server: str, agentparty_home: Path, tmp_path: Path, receiver: StandInOtlpReceiver
) -> Iterator[dict[str, Any]]:
    pool = f"metrics-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "sdk.yaml"
    config.write_text(
        yaml.safe_dump(
            {"monitoring": {"metrics": {"exportFormats": ["prometheus", "otlp"], "collectionInterval": 500}}}
        )
    )
    address = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "AGENTPARTY_HOME": str(agentparty_home),
        "AGENTPARTY_SDK_CONFIG": str(config),
        "AGENTPARTY_GRAPH": "off",
        "AGENTPARTY_EVENTS": "off",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"http://127.0.0.1:{receiver.server_port}/v1/metrics",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = tmp_path / "worker.log"
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("agentparty")), "worker", "--pool", pool, "--metrics-address", address],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: b"metrics of this worker" in log.read_bytes() or process.poll() is not None, 60, "the worker")
        assert process.poll() is None, log.read_text()
        yield {
            "pool": pool,
            "url": f"http://{address}",
            "pid": process.pid,
            "home": agentparty_home,
            "log": log,
            "otlp": receiver,
        }
    finally:
        process.terminate()
        process.wait(timeout=30)


def _scrape(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        return str(response.read().decode())


def _value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if re.match(rf"{name}[{{ ]", line) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.timeout(600)
def test_flow_run_processes_counts_show_on_the_worker_s_metrics(worker: dict[str, Any], workflow_dir: Path) -> None:
    from prefect.deployments import run_deployment

    workflow_id = f"metrics-work-{uuid.uuid4().hex[:6]}"
    work = stamp_workflow(
        workflow_id, [{"type": "manual"}], errorHandling={"retryAttempts": 0, "backoffStrategy": "fixed"}
    )
    work["steps"].append(
        {"id": "ask", "type": "task", "configuration": {"agent": "counter", "prompt": "Count ${inputs.label}"}}
    )
    write_definition(workflow_dir, work)
    (deployed,) = deploy_workflows(load_sources([workflow_dir / f"{workflow_id}.yaml"]), work_pool=worker["pool"])
    before = _scrape(worker["url"])
    runs = [
        run_deployment(deployed.deployment_id, parameters={"inputs": {"label": f"r{i}"}}, timeout=300)
        for i in range(RUNS)
    ]
    assert all(run.state.is_completed() for run in runs), [run.state for run in runs]

    def all_finished() -> str | None:
        scraped = _scrape(worker["url"])
        return scraped if _value(scraped, "agentparty_runs_finished_total", workflow=workflow_id) == RUNS else None

    text = wait_for(all_finished, 30, "the runs on the worker's /metrics")
    assert _value(text, "agentparty_runs_started_total", workflow=workflow_id) == RUNS
    assert _value(text, "agentparty_runs_finished_total", workflow=workflow_id, outcome="completed") == RUNS
    steps = "agentparty_step_duration_seconds_count"
    assert _value(text, steps, kind="task", outcome="completed") - _value(before, steps, kind="task") >= 2 * RUNS
    calls = "agentparty_model_calls_total"
    assert _value(text, calls, provider="simulated", outcome="ok") - _value(before, calls, provider="simulated") >= RUNS
    tokens = "agentparty_model_tokens_total"
    assert _value(text, tokens, direction="output") > _value(before, tokens, direction="output")
    assert _value(text, "process_resident_memory_bytes") > 0  # the worker's own

    # the exited runs' files are folded into the archive by a later scrape, not kept one set per run
    directory = worker["home"] / "metrics" / f"worker-{worker['pid']}"

    def folded() -> bool:
        after = _scrape(worker["url"])
        assert _value(after, "agentparty_runs_finished_total", workflow=workflow_id) == RUNS  # nothing lost folding
        return not [p for p in directory.glob("counter_*.db") if p.name != "counter_archive.db"]

    wait_for(folded, 30, "the exited flow-run processes' files folded", interval=0.6)
    assert (directory / "counter_archive.db").exists()

    # the same figures pushed over OTLP (exportFormats: otlp) to the test's stand-in receiver
    def pushed() -> bool:
        for request in reversed(worker["otlp"].requests):
            runs = metrics_of(request).get("agentparty_runs_started")
            if runs is not None:
                return [p.as_double for p in runs.sum.data_points if attributes_of(p) == {"workflow": workflow_id}] == [
                    RUNS
                ]
        return False

    wait_for(pushed, 30, "the runs pushed over OTLP")
