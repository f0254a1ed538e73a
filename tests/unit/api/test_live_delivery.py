"""Each live message sent is timed against ``communication.realtime.maxLatency`` (``api/live_delivery.py``)."""

from __future__ import annotations

import logging
import time

import pytest
from prometheus_client import REGISTRY

from agentparty.api import live_delivery
from agentparty.api.live_delivery import Stamped, delivered
from agentparty.models.sdk_config import RealtimeConfig


def sample(name: str, protocol: str) -> float:
    return REGISTRY.get_sample_value(name, {"protocol": protocol}) or 0.0


def test_a_stamped_message_is_timed_and_a_late_one_counted_and_warned_about_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_delivery, "_warned", {})
    realtime = RealtimeConfig(max_latency=100)
    count, late = "agentparty_live_delivery_latency_seconds_count", "agentparty_live_deliveries_late_total"
    before = sample(count, "sse"), sample(late, "sse")

    on_time = delivered("sse", Stamped("{}", time.time() - 0.01), realtime)
    with caplog.at_level(logging.WARNING, "agentparty.api.live"):
        slow = [delivered("sse", Stamped("{}", time.time() - 0.5), realtime) for _ in range(3)]
    assert on_time is not None and on_time < 0.1
    assert all(seconds is not None and seconds >= 0.5 for seconds in slow)
    assert sample(count, "sse") - before[0] == 4 and sample(late, "sse") - before[1] == 3
    warnings = [r.getMessage() for r in caplog.records if "maxLatency 100 ms" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("live sse: a message reached its client")


def test_the_snapshot_is_not_timed() -> None:
    before = sample("agentparty_live_delivery_latency_seconds_count", "websocket")
    assert delivered("websocket", '{"message_type": "team_update"}', RealtimeConfig()) is None
    assert sample("agentparty_live_delivery_latency_seconds_count", "websocket") == before


def test_a_stamped_text_is_still_the_text() -> None:
    stamped = Stamped('{"a": 1}', 12.5)
    assert stamped == '{"a": 1}' and isinstance(stamped, str) and stamped.occurred == 12.5
