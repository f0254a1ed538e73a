"""The local Prometheus and Alertmanager of a home: started on the rendered files, reported, stopped by ``down``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from support.alert_receivers import wait_for
from support.alerting_support import webhook_channel

from agentparty.runtime.local_service import free_port
from agentparty.runtime.monitoring_servers import LocalAlertmanager, LocalPrometheus

AGENTPARTY = str(Path(sys.executable).with_name("agentparty"))


def agentparty(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AGENTPARTY, *args], env=env, capture_output=True, text=True, timeout=120)


def rule_names(prometheus: LocalPrometheus) -> set[str]:
    with urllib.request.urlopen(f"{prometheus.url}/api/v1/rules", timeout=5) as answer:
        groups = json.loads(answer.read())["data"]["groups"]
    return {rule["name"] for group in groups for rule in group["rules"]}


@pytest.mark.slow  # two servers and four CLI processes
def test_up_monitoring_renders_and_starts_both_and_down_stops_them(
    monitoring_binaries: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What ``agentparty up --monitoring`` adds to ``up`` (the Prefect, graph and Kafka servers are other tests')."""
    from agentparty.cli._bootstrap import local
    from agentparty.cli.local import _start_monitoring
    from agentparty.runtime.settings import get_settings

    home = tmp_path / "home"
    served = tmp_path / "served.yaml"  # Prometheus' format served, or render refuses (exportFormats defaults to json)
    served.write_text(yaml.safe_dump({"monitoring": {"metrics": {"exportFormats": ["json", "prometheus"]}}}))
    env = {
        "AGENTPARTY_HOME": str(home),
        "AGENTPARTY_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
        "AGENTPARTY_SDK_CONFIG": str(served),
    }
    for name in ("PROMETHEUS_PORT", "ALERTMANAGER_PORT", "PREFECT_PORT", "GRAPH_PORT", "GRAPH_HTTP_PORT", "KAFKA_PORT"):
        env[f"AGENTPARTY_{name}"] = str(free_port())  # none of them taken; `down` finds nothing else of this home
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    servers = local()
    prometheus, alertmanager = servers.prometheus, servers.alertmanager
    try:
        _start_monitoring(servers)
        said = capsys.readouterr().out
        assert f"wrote {home / 'monitoring' / 'rules.yml'}" in said
        assert f"Prometheus started: {prometheus.url}" in said and f"Alertmanager started: {alertmanager.url}" in said
        command = Path(f"/proc/{prometheus.pid()}/cmdline").read_text().split("\0")
        assert "--storage.tsdb.retention.time=168h" in command  # monitoring.metrics.retentionPeriod
        _start_monitoring(servers)
        assert "Prometheus already running" in capsys.readouterr().out
        full = {**os.environ, **env}
        sdk = tmp_path / "sdk.yaml"
        alert = {
            "type": "security",
            "threshold": 30,
            "severity": "low",
            "channels": [webhook_channel(secret_name=None)],
        }
        sdk.write_text(
            yaml.safe_dump({"monitoring": {"alerts": [alert], "metrics": {"exportFormats": ["prometheus"]}}})
        )
        rendered = agentparty({**full, "AGENTPARTY_SDK_CONFIG": str(sdk)}, "monitoring", "render")
        assert "Prometheus reloads them" in rendered.stdout and "Alertmanager reloads them" in rendered.stdout
        wait_for(lambda: "AgentPartySecurityAlert0" in rule_names(prometheus), 30, "the new rule loaded")
        status = agentparty(full, "status")
        assert f"Prometheus: running ({prometheus.url})" in status.stdout, status.stdout + status.stderr
        assert f"Alertmanager: running ({alertmanager.url})" in status.stdout
        down = agentparty(full, "down")
        assert "Prometheus stopped" in down.stdout and "Alertmanager stopped" in down.stdout, down.stdout
        assert prometheus.pid() is None and alertmanager.pid() is None and not prometheus.healthy()
    finally:
        prometheus.stop()
        alertmanager.stop()
        get_settings.cache_clear()


def test_a_missing_binary_says_which_package_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="apt-get install prometheus-alertmanager"):
        LocalAlertmanager(tmp_path, tmp_path).start()
    with pytest.raises(FileNotFoundError, match=r"apt-get install prometheus$"):
        LocalPrometheus(tmp_path, tmp_path).start()
