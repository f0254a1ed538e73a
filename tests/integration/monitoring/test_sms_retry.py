"""A real Alertmanager retries one phone number's SMS alone: after a gateway failure each number has one message.

The rendered ``alertmanager.yml`` gives each phone number of an SMS channel its
own ``webhook_configs`` entry (``/alerts/relay/alert-i-j/k``), and Alertmanager
retries each entry on its own. Here Debian's Alertmanager runs on the rendered
files, the API (a real uvicorn server) relays, and the SMS gateway (a real local
HTTP server) fails the second number's first post: the first number must not get
the SMS a second time, the second must get it once after the retry.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml
from support.alert_receivers import RecordingReceiver, wait_for
from support.alerting_support import monitoring, sms_channel
from support.api_support import access_config

from agentparty.api import create_app
from agentparty.api.serve import serving
from agentparty.runtime.local_service import free_port
from agentparty.runtime.monitoring_files import default_targets, monitoring_dir, render_monitoring
from agentparty.runtime.monitoring_servers import LocalAlertmanager
from agentparty.runtime.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _failing_once_for(number: str, failures: dict[str, int]) -> Callable[[bytes], int]:
    """A gateway's answer: 503 to the first post to ``number`` (counted down in ``failures``), 200 to the rest."""
    failures[number] = 1

    def answer(body: bytes) -> int:
        to = json.loads(body)["to"]
        if failures.get(to, 0) > 0:
            failures[to] -= 1
            return 503
        return 200

    return answer


def _sent(gateway: RecordingReceiver, accepted: bool) -> list[str]:
    """The numbers of the SMS the gateway accepted (or refused), in order."""
    return [json.loads(p.body)["to"] for p in gateway.posts if (p.status == 200) == accepted]


def test_a_gateway_failing_once_for_one_number_leaves_each_number_one_sms(
    monitoring_binaries: dict[str, str], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with RecordingReceiver() as gateway:
        channel = sms_channel(f"{gateway.url}/sms")
        numbers = channel["configuration"]["phoneNumbers"]
        sdk = home / "sdk.yaml"
        alert = {"type": "security", "threshold": 30, "severity": "critical", "channels": [channel]}
        sdk.write_text(yaml.safe_dump({"monitoring": monitoring(alert)}))
        settings = Settings(
            home=home, sdk_config=sdk, api_port=free_port(), alertmanager_port=free_port(), alert_group_wait_s=1
        )
        folder = monitoring_dir(home)
        render_monitoring(settings, settings.load_sdk_configuration().monitoring, folder, default_targets(settings))
        failures: dict[str, int] = {}
        gateway.answer = _failing_once_for(numbers[1], failures)
        alertmanager = LocalAlertmanager(home, folder, port=settings.alertmanager_port)
        with serving(create_app(access_config(), settings=settings), settings.api_port):
            try:
                alertmanager.start()
                fired = [{"labels": {"alertname": "AgentPartySecurityAlert0", "agentparty_alert": "alert-0"}}]
                httpx.post(f"{alertmanager.url}/api/v2/alerts", json=fired, timeout=10).raise_for_status()
                wait_for(lambda: len(_sent(gateway, True)) >= len(numbers), 60, "an SMS to every number")
                time.sleep(5)  # room for a duplicate to arrive, were the whole receiver retried
            finally:
                alertmanager.stop()
        assert failures == {numbers[1]: 0}  # the gateway did fail once
        assert Counter(_sent(gateway, True)) == Counter(numbers)  # each number exactly one SMS
        assert _sent(gateway, False) == [numbers[1]]
