"""End to end: a failing model fires the error-rate rule in a real Prometheus, and a real Alertmanager delivers it.

Everything is real and local: Debian's Prometheus and Alertmanager (installed by
the setup when missing, as the UI tests install Chromium), ``agentparty api``
with its keyless metrics listener, ``agentparty worker`` whose flow runs call an
OpenAI-compatible endpoint that refuses every request (``support.llm_wire``),
``aiosmtpd`` as the SMTP server, and a signed-webhook receiver this test runs.
Prometheus scrapes the API and the worker every second and evaluates the rules
``agentparty monitoring render`` wrote (short windows through the settings the
renderer takes); Alertmanager mails the alert and posts it through the API's
relay, which signs it. The test reads the mail and verifies the signature.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.alert_receivers import Post, RecordingReceiver, SmtpSink, wait_for
from support.alerting_support import ALERT_SECRET, ALERT_SECRET_ENV, check_rendered, email_channel, webhook_channel
from support.llm_wire import WireServer

from agentparty.api.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from agentparty.runtime.local_service import free_port
from agentparty.runtime.monitoring_servers import LocalAlertmanager, LocalPrometheus

pytest.importorskip("aiosmtpd")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # the first run may install the Debian packages
AGENTPARTY = str(Path(sys.executable).with_name("agentparty"))
RUNS = 4
ERROR_RULE = "AgentPartyModelErrorRateHigh"


@pytest.fixture
def receivers() -> Iterator[tuple[SmtpSink, RecordingReceiver]]:
    with SmtpSink() as smtp, RecordingReceiver() as hook:
        yield smtp, hook


def _sdk_config(home: Path, smtp: SmtpSink, hook: RecordingReceiver) -> Path:
    channels = [email_channel(smtp.smarthost, requireTls=False), webhook_channel(f"{hook.url}/alerts")]
    section = {
        "metrics": {"collectionInterval": 1000, "exportFormats": ["prometheus", "json"]},
        "alerts": [{"type": "error", "threshold": 50, "severity": "high", "channels": channels}],
        "performanceThresholds": {"maxErrorRate": 20},
    }
    path = home / "sdk.yaml"
    path.write_text(yaml.safe_dump({"monitoring": section}))
    return path


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


def _up(prometheus: LocalPrometheus) -> dict[str, str]:
    targets = _get(f"{prometheus.url}/api/v1/targets")["data"]["activeTargets"]
    return {t["labels"]["job"]: t["health"] for t in targets}


@pytest.fixture
def stack(
    prefect_server: str,
    monitoring_binaries: dict[str, str],
    receivers: tuple[SmtpSink, RecordingReceiver],
    tmp_path: Path,
) -> Iterator[dict[str, Any]]:
    """API, worker, Prometheus and Alertmanager on free ports of a fresh home, on the rendered files."""
    smtp, hook = receivers
    home = tmp_path / "home"
    home.mkdir()
    ports = {name: free_port() for name in ("api", "api_metrics", "worker_metrics", "prometheus", "alertmanager")}
    wire = WireServer().start()
    env = {
        **os.environ,
        "AGENTPARTY_HOME": str(home),
        "AGENTPARTY_SDK_CONFIG": str(_sdk_config(home, smtp, hook)),
        "AGENTPARTY_API_PORT": str(ports["api"]),
        "AGENTPARTY_PROMETHEUS_PORT": str(ports["prometheus"]),
        "AGENTPARTY_ALERTMANAGER_PORT": str(ports["alertmanager"]),
        "AGENTPARTY_METRICS_ADDRESS": f"127.0.0.1:{ports['api_metrics']}",
        "AGENTPARTY_MONITORING_WORKER_ADDRESSES": f"127.0.0.1:{ports['worker_metrics']}",
        "AGENTPARTY_ALERT_WINDOW_S": "30",
        "AGENTPARTY_ALERT_FOR_S": "1",
        "AGENTPARTY_ALERT_GROUP_WAIT_S": "1",
        "AGENTPARTY_ALERT_GROUP_INTERVAL_S": "1",
        "AGENTPARTY_GRAPH": "off",
        "AGENTPARTY_EVENTS": "off",
        "PREFECT_API_URL": prefect_server,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "OPENAI_API_KEY": "sk-test-alerting-0000000000",
        "OPENAI_BASE_URL": f"{wire.url}/v1",
        ALERT_SECRET_ENV: ALERT_SECRET,
    }
    rendered = subprocess.run([AGENTPARTY, "monitoring", "render"], env=env, capture_output=True, text=True)
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    folder = home / "monitoring"
    check_rendered(folder)
    pool = f"alerting-{uuid.uuid4().hex[:8]}"
    worker_env = {k: v for k, v in env.items() if k != "AGENTPARTY_METRICS_ADDRESS"}
    processes = [
        _start([AGENTPARTY, "api"], env, tmp_path / "api.log"),
        _start(
            [AGENTPARTY, "worker", "--pool", pool, "--metrics-address", f"127.0.0.1:{ports['worker_metrics']}"],
            worker_env,
            tmp_path / "worker.log",
        ),
    ]
    alertmanager = LocalAlertmanager(home, folder, port=ports["alertmanager"])
    prometheus = LocalPrometheus(home, folder, port=ports["prometheus"])
    try:
        alertmanager.start()
        prometheus.start(retention_hours=1)
        yield {"home": home, "pool": pool, "wire": wire, "prometheus": prometheus, "logs": tmp_path}
    finally:
        prometheus.stop()
        alertmanager.stop()
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        wire.stop()


def _deploy(folder: Path, pool: str) -> str:
    from agentparty.deployments.build import deploy_workflows, load_sources

    definition = {
        "id": f"alerting-{uuid.uuid4().hex[:6]}",
        "name": "Alerting failing model",
        "inputs": {"topic": {"type": "string", "default": "anything"}},
        "steps": [
            {
                "id": "ask",
                "type": "task",
                "configuration": {"agent": "asker", "model": "gpt-4o", "prompt": "Say something about ${inputs.topic}"},
            }
        ],
        "triggers": [{"type": "manual"}],
        "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed", "fallbackAction": "abort"},
    }
    path = folder / f"{definition['id']}.yaml"
    path.write_text(yaml.safe_dump(definition, sort_keys=False))
    [deployed] = deploy_workflows(load_sources([path]), work_pool=pool)
    return deployed.name


def _logs(folder: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(folder.glob("*.log")))


def _signed_alert(posts: list[Post]) -> dict[str, Any] | None:
    for post in posts:
        body = json.loads(post.body)
        if any(a["labels"].get("alertname") == ERROR_RULE for a in body.get("alerts", [])):
            return {"post": post, "body": body}
    return None


def test_a_failing_model_fires_the_error_rate_rule_and_alertmanager_mails_and_posts_it_signed(
    stack: dict[str, Any], receivers: tuple[SmtpSink, RecordingReceiver]
) -> None:
    from prefect.deployments import run_deployment

    smtp, hook = receivers
    prometheus: LocalPrometheus = stack["prometheus"]
    wait_for(lambda: _up(prometheus) == {"agentparty-api": "up", "agentparty-worker": "up"}, 120, "both targets up")
    for _ in range(RUNS * 4):
        stack["wire"].script(status=400, error="the model refuses this request")
    name = _deploy(stack["logs"], stack["pool"])
    for i in range(RUNS):
        run_deployment(name, parameters={"inputs": {"topic": f"run {i}"}}, timeout=0)

    try:
        mail = wait_for(lambda: [m for m in smtp.messages if ERROR_RULE in m.as_string()], 300, "alert mail")
        signed = wait_for(lambda: _signed_alert(hook.posts), 120, "signed webhook post")
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\nrequests to the model: {len(stack['wire'].requests)}\n{_logs(stack['logs'])}"
        ) from None
    assert "ops@example.com" in mail[0]["To"] and mail[0]["From"] == "alerts@example.com"
    post: Post = signed["post"]
    timestamp, presented = post.headers[TIMESTAMP_HEADER.lower()], post.headers[SIGNATURE_HEADER.lower()]
    assert verify_signature(ALERT_SECRET, timestamp, post.body, presented)
    assert not verify_signature("not-the-secret", timestamp, post.body, presented)
    [alert] = [a for a in signed["body"]["alerts"] if a["labels"]["alertname"] == ERROR_RULE]
    assert alert["labels"]["provider"] == "openai" and alert["labels"]["model"] == "gpt-4o"
    assert alert["labels"]["agentparty_source"] == "thresholds" and signed["body"]["receiver"] == "alert-0"
    firing = _get(f"{prometheus.url}/api/v1/alerts")["data"]["alerts"]
    assert any(a["labels"]["alertname"] == ERROR_RULE and a["state"] == "firing" for a in firing)
