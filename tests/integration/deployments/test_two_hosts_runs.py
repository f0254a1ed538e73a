"""A run whose host dies mid-run completes on the other host, re-executing no completed step, with no person involved.

Two hosts are network namespaces on a bridge (``support/netns.py``); each has
its own ``AGENTPARTY_HOME`` and an ``agentparty worker``, and they share only
what sits on the bridge's address: PostgreSQL (engine state and run results)
and the Prefect server. Host A's worker takes the run and is SIGKILLed with its
flow-run process while a step waits; the run's heartbeats stop, the automation
``agentparty deploy`` made (``deployments/dead_runs.py``) puts it back to
Scheduled, and host B's worker resumes the same flow run from A's persisted
results. Graph and events are off here: the test is about runs and state.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.api_support import wait_until_serving
from support.netns import SERVICES_ADDRESS, Host, netns_available, two_hosts

from agentparty.runtime.local_service import free_port
from agentparty.runtime.postgres_server import LocalPostgres
from agentparty.runtime.prefect_server import LocalPrefectServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

TESTS = Path(__file__).resolve().parents[2]
AGENTPARTY = str(Path(sys.executable).with_name("agentparty"))
HEARTBEAT_S, DEAD_AFTER_S = 30, 45


@pytest.fixture(scope="module")
def shared_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not netns_available():
        pytest.fail("this test needs network namespaces (CAP_NET_ADMIN); run it as root", pytrace=False)
    home = tmp_path_factory.mktemp("two-host-services")
    with two_hosts("r") as hosts:
        cluster = LocalPostgres(home, host=SERVICES_ADDRESS, preferred_port=free_port(), clients=("10.77.0.0/24",))
        cluster.start()
        server = LocalPrefectServer(home / "prefect-home", host=SERVICES_ADDRESS, port=free_port())
        try:
            cluster.ensure_database("state")
            server.start()
            yield {"hosts": hosts, "state_url": cluster.url("state", driver="postgresql"), "api": server.api_url}
        finally:
            server.stop()
            cluster.remove()


def _definition(folder: Path) -> Path:
    log, started, flag = folder / "executions.log", folder / "started", folder / "release"
    doc = {
        "id": "host-move",
        "name": "Host move",
        "steps": [
            {"id": "first", "type": "task", "configuration": {"handler": "support.step_handlers:append_to_file"},
             "inputs": {"path": str(log), "line": "first"}},
            {"id": "stuck", "type": "task",
             "configuration": {"handler": "support.step_handlers:block_until", "dependsOn": ["first"]},
             "inputs": {"path": str(started), "flag": str(flag)}},
            {"id": "last", "type": "task",
             "configuration": {"handler": "support.step_handlers:append_to_file", "dependsOn": ["stuck"]},
             "inputs": {"path": str(log), "line": "last"}},
        ],
        "triggers": [{"type": "manual"}],
        "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
    }  # fmt: skip
    path = folder / "host-move.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _env(home: Path, api: str, state_url: str, keys: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTPARTY_", "PREFECT_"))}
    return base | {
        "PYTHONPATH": str(TESTS),
        "AGENTPARTY_HOME": str(home),
        "AGENTPARTY_STATE_DB_URL": state_url,
        "AGENTPARTY_DATA_KEYS": keys,
        "AGENTPARTY_GRAPH": "off",
        "AGENTPARTY_EVENTS": "off",
        "AGENTPARTY_TRUSTED_NETWORKS": "10.77.0.0/24",  # plaintext on the link (security.encryption.inTransit)
        "AGENTPARTY_RUN_HEARTBEAT_S": str(HEARTBEAT_S),
        "AGENTPARTY_DEAD_RUN_AFTER_S": str(DEAD_AFTER_S),
        "PREFECT_API_URL": api,
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }


def _worker(host: Host, env: dict[str, str], pool: str, log: Path) -> subprocess.Popen[bytes]:
    return host.popen([AGENTPARTY, "worker", "--pool", pool, "--name", host.name], env=env,
                      stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def _flow_run(api: str, run_id: Any) -> Any:
    from prefect.client.orchestration import PrefectClient

    async def read() -> Any:
        async with PrefectClient(api) as client:
            return await client.read_flow_run(run_id)

    return asyncio.run(read())


def _kill_host(host: Host) -> None:
    """SIGKILL every process of the host's network namespace, as a power cut would."""
    pids = subprocess.run(["ip", "netns", "pids", host.name], capture_output=True, text=True, check=True).stdout
    for pid in map(int, pids.split()):
        with contextlib.suppress(ProcessLookupError):  # ended on its own meanwhile
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while subprocess.run(["ip", "netns", "pids", host.name], capture_output=True, text=True).stdout.strip():
        assert time.monotonic() < deadline, "processes of the dead host are still alive"
        time.sleep(0.2)


def _start_run(api: str, name: str) -> Any:
    from prefect.client.orchestration import PrefectClient

    async def start() -> Any:
        async with PrefectClient(api) as client:
            deployment = await client.read_deployment_by_name(name)
            return await client.create_flow_run_from_deployment(deployment.id, parameters={"inputs": {}})

    return asyncio.run(start())


def _states(api: str, run_id: Any) -> list[str]:
    from prefect.client.orchestration import PrefectClient

    async def read() -> list[str]:
        async with PrefectClient(api) as client:
            return [s.name for s in await client.read_flow_run_states(run_id)]

    return asyncio.run(read())


def test_a_run_whose_host_dies_completes_on_the_other_host(shared_services: dict[str, Any], tmp_path: Path) -> None:
    host_a, host_b = shared_services["hosts"]
    api, state_url = shared_services["api"], shared_services["state_url"]
    keys = "k1=" + base64.b64encode(os.urandom(32)).decode()
    pool = f"two-hosts-{uuid.uuid4().hex[:6]}"
    path = _definition(tmp_path)
    deployer = _env(tmp_path / "deployer", api, state_url, keys)
    deployed = subprocess.run([AGENTPARTY, "deploy", str(path), "--pool", pool, "--no-training"], env=deployer,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr  # it made results shared (state on PostgreSQL)

    worker_a = _worker(host_a, _env(tmp_path / "home-a", api, state_url, keys), pool, tmp_path / "worker-a.log")
    worker_b = None
    try:
        run = _start_run(api, "Host move/host-move")
        deadline = time.monotonic() + 240
        while not (tmp_path / "started").exists():
            assert worker_a.poll() is None, (tmp_path / "worker-a.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "host A never reached the waiting step"
            time.sleep(0.5)
        _kill_host(host_a)  # host A dies: every process in its namespace (the worker starts runs in new sessions)
        worker_a.wait(timeout=30)
        assert (tmp_path / "executions.log").read_text().splitlines() == ["first"]
        (tmp_path / "release").write_text("go")

        worker_b = _worker(host_b, _env(tmp_path / "home-b", api, state_url, keys), pool, tmp_path / "worker-b.log")
        deadline = time.monotonic() + DEAD_AFTER_S + HEARTBEAT_S + 240
        flow_run = _flow_run(api, run.id)
        while not (flow_run.state and flow_run.state.is_final()):
            assert time.monotonic() < deadline, f"the run never completed: {_states(api, run.id)}"
            time.sleep(2)
            flow_run = _flow_run(api, run.id)
    finally:
        for worker in (worker_a, worker_b):
            if worker is not None and worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(timeout=30)

    assert flow_run.state.is_completed(), (flow_run.state, (tmp_path / "worker-b.log").read_text()[-3000:])
    assert "Rescheduled" in _states(api, run.id), "the automation, not a person, rescheduled it"
    assert (tmp_path / "executions.log").read_text().splitlines() == ["first", "last"], "a completed step ran again"


def _api(host: Host, env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    return host.popen([AGENTPARTY, "api", "--host", host.address, "--port", str(port)], env=env,
                      stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def _runs_of(api: str, deployment_name: str) -> list[Any]:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async def read() -> list[Any]:
        async with PrefectClient(api) as client:
            deployment = await client.read_deployment_by_name(deployment_name)
            found: list[Any] = []
            while True:
                page = await client.read_flow_runs(
                    deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                    limit=200, offset=len(found),
                )  # fmt: skip
                found += page
                if len(page) < 200:
                    return found

    return asyncio.run(read())


def test_100_webhooks_over_two_api_replicas_make_exactly_100_runs(
    shared_services: dict[str, Any], tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    from support.api_support import HANDLERS, SECRET, SECRET_ENV, access_config, hook_definition, signed

    hosts, api, state_url = shared_services["hosts"], shared_services["api"], shared_services["state_url"]
    keys = "k1=" + base64.b64encode(os.urandom(32)).decode()
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "api_handlers.py").write_text(HANDLERS)
    definition = hook_definition("two-replicas", webhook={"waitForRunSeconds": 2})
    path = folder / "two-replicas.yaml"
    path.write_text(yaml.safe_dump(definition))
    pool = f"replicas-{uuid.uuid4().hex[:6]}"
    deployed = subprocess.run([AGENTPARTY, "deploy", str(path), "--pool", pool, "--no-training"],
                              env=_env(tmp_path / "deployer", api, state_url, keys), capture_output=True, text=True,
                              timeout=300)  # fmt: skip
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr

    replicas, port = [], free_port()
    for host in hosts:
        home = tmp_path / f"api-{host.name}"
        home.mkdir()
        access = home / "api-access.yaml"
        access.write_text(yaml.safe_dump(access_config().model_dump(mode="json", by_alias=True, exclude_none=True)))
        env = _env(home, api, state_url, keys) | {"AGENTPARTY_API_ACCESS": str(access), SECRET_ENV: SECRET}
        replicas.append((host, _api(host, env, port, tmp_path / f"api-{host.name}.log")))
    try:
        urls = [f"http://{host.address}:{port}" for host, _ in replicas]
        for (host, process), url in zip(replicas, urls, strict=True):
            wait_until_serving(url, process, tmp_path / f"api-{host.name}.log")

        def send(i: int) -> int:
            payload = {"ticket_id": f"T-{i}", "priority": 1 + i % 5}
            return httpx.post(f"{urls[i % 2]}/webhooks/two-replicas", timeout=120, **signed(payload)).status_code

        with ThreadPoolExecutor(max_workers=10) as pool_of_senders:
            codes = list(pool_of_senders.map(send, range(100)))
        assert codes.count(202) == 100, {code: codes.count(code) for code in set(codes)}

        name = f"{definition['name']}/two-replicas"
        deadline = time.monotonic() + 180
        while len(runs := _runs_of(api, name)) < 100:
            assert time.monotonic() < deadline, f"only {len(runs)} runs were created"
            time.sleep(1)
        time.sleep(5)  # a replica creating a 101st run would have done so by now
        runs = _runs_of(api, name)
    finally:
        for _, process in replicas:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
    assert len(runs) == 100
    tickets = sorted(run.parameters["inputs"]["ticket_id"] for run in runs)
    assert tickets == sorted(f"T-{i}" for i in range(100)), "each delivery made its own run, once"
