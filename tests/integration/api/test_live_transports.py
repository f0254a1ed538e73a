"""Server-Sent Events and long polling beside ``/ws``: the same messages, the heartbeat, the latency metric.

The set-up of ``test_live_stream.py`` (a real run streaming through the session's
Kafka-protocol broker, the API under uvicorn with its feed on that broker): a
WebSocket client, an SSE client and a long-polling client subscribe before the
run, and each gets exactly the same messages in the same order.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from integration.api.test_live_stream import KEY, Collector, Setup, answered, run, script, setup, wire
from prometheus_client import REGISTRY

from agentparty.models.sdk_config import RealtimeConfig

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]
__all__ = ["setup", "wire"]  # the fixtures, from test_live_stream.py

HEADERS = {"X-API-Key": KEY}


def base_url(setup: Setup) -> str:
    return setup.url.replace("ws://", "http://").split("/ws?", 1)[0]


@dataclass
class Reader:
    """A client in a thread of its own; ``texts`` are the messages it received, in order."""

    texts: list[str] = field(default_factory=list)
    pings: int = 0
    connected: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    close: Callable[[], None] = lambda: None

    def stop(self) -> None:
        """Leave (the server unsubscribes it), so that the server can stop."""
        self.stopping.set()
        self.close()

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(text) for text in list(self.texts)]

    def start(self, target: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                target()
            except BaseException as exc:  # reported by wait_for (unless it is leaving)
                if not self.stopping.is_set():
                    self.error = exc

        threading.Thread(target=guarded, daemon=True).start()
        assert self.connected.wait(60), f"never connected: {self.error}"

    def wait_for(self, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 60) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while not done(messages := self.messages):
            assert self.error is None, self.error
            assert time.monotonic() < deadline, f"gave up waiting; got {len(messages)} messages"
            time.sleep(0.05)
        return messages


def sse_reader(url: str) -> Reader:
    reader = Reader()

    def read() -> None:
        with httpx.stream("GET", f"{url}/live/sse", headers=HEADERS, timeout=None) as response:
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
            reader.close = response.close
            reader.connected.set()
            for line in response.iter_lines():
                if line.startswith("data: "):
                    reader.texts.append(line.removeprefix("data: "))
                elif line.startswith(":"):
                    reader.pings += 1

    reader.start(read)
    return reader


def poll_reader(url: str) -> Reader:
    reader = Reader()

    def poll() -> None:
        with httpx.Client(base_url=url, headers=HEADERS, timeout=30) as client:
            cursor = None
            while not reader.stopping.is_set():
                cursor_was = cursor
                answer = client.get("/live/poll", params={"cursor": cursor} if cursor else {})
                assert answer.status_code == 200, answer.text
                body = answer.json()
                cursor = body["cursor"]
                reader.texts += [json.dumps(message) for message in body["messages"]]
                if cursor_was is not None and not body["messages"]:
                    reader.pings += 1  # an empty answer after heartbeatInterval
                reader.connected.set()

    reader.start(poll)
    return reader


def latency_count(protocol: str) -> float:
    value = REGISTRY.get_sample_value("agentparty_live_delivery_latency_seconds_count", {"protocol": protocol})
    return value or 0.0


def test_sse_long_polling_and_websocket_clients_receive_the_same_messages(setup: Setup, tmp_path: Path) -> None:
    setup.feed.realtime = RealtimeConfig(protocol="sse", heartbeat_interval=300, max_latency=200)
    before = {p: latency_count(p) for p in ("websocket", "sse", "long_polling")}
    url = base_url(setup)
    advertised = httpx.get(f"{url}/live", headers=HEADERS).json()
    assert (advertised["protocol"], advertised["url"], advertised["heartbeat_interval_ms"]) == ("sse", "/live/sse", 300)

    script(setup.wire, "It is sunny in Lisbon, twenty-four degrees, with a light breeze from the west.")
    ws = Collector(setup.client())
    sse = sse_reader(url)
    polled = poll_reader(url)
    assert run(setup, tmp_path).status.value == "completed"

    expected = ws.wait_for(answered)
    sse.wait_for(answered)
    polled.wait_for(answered)
    deadline = time.monotonic() + 30
    while not (ws.messages == sse.messages == polled.messages):  # the last few may still be on their way
        assert time.monotonic() < deadline, (len(ws.messages), len(sse.messages), len(polled.messages))
        time.sleep(0.1)
    assert len(sse.messages) >= len(expected) > 5
    assert [m["message_type"] for m in sse.messages] == [m["message_type"] for m in ws.messages]

    sse_pings, empty_polls, started = sse.pings, polled.pings, time.monotonic()
    while sse.pings < sse_pings + 3 or polled.pings < empty_polls + 3:  # with nothing more to say
        assert time.monotonic() - started < 10, "no heartbeats: SSE comment pings, empty long-polling answers"
        time.sleep(0.05)
    assert time.monotonic() - started >= 0.6, "three heartbeats of 300 ms, not sooner"
    for protocol in ("websocket", "sse", "long_polling"):
        assert latency_count(protocol) - before[protocol] >= len(expected) // 2, f"{protocol} deliveries timed"
    for reader in (sse, polled):
        reader.stop()
    ws.ws.close()


def test_a_long_polling_cursor_is_the_key_s_own_and_expires_into_410(setup: Setup) -> None:
    url = base_url(setup)
    with httpx.Client(base_url=url, headers=HEADERS, timeout=30) as client:
        first = client.get("/live/poll").json()
        assert "cursor" in first and isinstance(first["messages"], list)
        unknown = client.get("/live/poll", params={"cursor": "not-a-cursor"})
        assert unknown.status_code == 410 and "poll without a cursor to start again" in unknown.text
        no_key = httpx.get(f"{url}/live/poll", params={"cursor": first["cursor"]})
        assert no_key.status_code == 401
