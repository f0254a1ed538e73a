"""Live streaming end to end: a real run's turns, deltas and tool calls on ``/ws`` as they happen.

A workflow with one agent step (OpenAI's SDK against the local wire server, scripted:
a ``lookup`` tool call, then a streamed answer) runs on the session's Prefect server
with run services built from settings that name the session's Kafka-protocol broker
(Tansu), so the run streams through ``flows/services.py``'s wiring, its own producer
and the broker. The API app is served by uvicorn on a free port with its feed on the
same broker, and clients are ``websockets`` clients over real sockets. Checked: the
order one client sees (turn start → deltas → tool call → tool result → answer), a
client that stops reading dropped with 1013 while the run and a reading client go on,
and a late subscriber told the current state first. The view and feed alone are
``tests/unit/api/test_live_stream_view.py``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.llm_wire import WireServer
from support.ws_collector import Collector
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.sync.client import ClientConnection, connect
from websockets.uri import parse_uri

from agentparty.api import create_app
from agentparty.api.live import QUEUE_SIZE, LiveFeed
from agentparty.api.security import key_digest
from agentparty.api.serve import serving
from agentparty.flows import CompileOptions, WorkflowResult, compile_workflow
from agentparty.flows.services import run_services
from agentparty.models.access import ApiAccessConfig
from agentparty.models.config import KafkaConfig
from agentparty.runtime.documents import load_workflow
from agentparty.runtime.event_bus import EventBus
from agentparty.runtime.live_stream import close_streams, configured_stream
from agentparty.runtime.local_service import free_port
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.relay import OutboxRelay
from agentparty.runtime.settings import Settings, get_settings

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

KEY = "viewer-key-1"
ACCESS = ApiAccessConfig.model_validate(
    {"apiKeys": [{"name": "watcher", "role": "viewer", "keySha256": key_digest(KEY)}]}
)
LOOKING = "Let me look that up."
ORDER = [
    "turn_started",
    "text",
    "turn_finished",
    "tool_started",
    "tool_finished",
    "turn_started",
    "text",
    "turn_finished",
]


@dataclass
class Setup:
    settings: Settings
    config: KafkaConfig
    url: str
    definition: Path
    wire: WireServer
    feed: LiveFeed

    def client(self, **options: Any) -> ClientConnection:
        """A connection to ``/ws``, once the feed reads both topics from their ends (so it misses nothing)."""
        ws = connect(self.url, **{"max_queue": None, **options})
        assert self.feed.ready.wait(60), "the feed never reached the broker"
        return ws


class StuckClient:
    """A WebSocket client that reads nothing after its handshake until told to (websockets' sans-I/O protocol on a
    plain socket: a client library would go on reading into its own buffers), then reads to the end."""

    def __init__(self, url: str) -> None:
        self.protocol = ClientProtocol(parse_uri(url))
        uri = parse_uri(url)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: it sets the window
        self.sock.connect((uri.host, uri.port))
        self.protocol.send_request(self.protocol.connect())
        self.sock.sendall(b"".join(self.protocol.data_to_send()))

    def read_to_the_end(self, timeout: float = 30) -> tuple[int, Close | None]:
        """The text messages it had been sent, and the close frame that ended them."""
        self.sock.settimeout(timeout)
        texts = 0
        while not self.protocol.close_rcvd:
            data = self.sock.recv(65536)
            if not data:
                break
            self.protocol.receive_data(data)
            texts += sum(isinstance(e, Frame) and e.opcode is Opcode.TEXT for e in self.protocol.events_received())
        self.sock.close()
        return texts, self.protocol.close_rcvd


def streamed(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["payload"] for m in messages if m["message_type"] == "agent_update" and m["payload"]["streaming"]]


def answered(messages: list[dict[str, Any]]) -> bool:
    return any(p["stream_event"] == "turn_finished" and p["activity"] is None for p in streamed(messages))


@pytest.fixture(scope="module")
def wire() -> Iterator[WireServer]:
    with WireServer() as server:
        yield server


@pytest.fixture
def setup(kafka_broker: Any, wire: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-live")
    monkeypatch.setenv("OPENAI_BASE_URL", wire.url + "/v1")
    prefix = f"stream{uuid.uuid4().hex[:8]}."
    config = KafkaConfig(bootstrap_servers=[kafka_broker.bootstrap_servers], group_id="tests")
    settings = get_settings().model_copy(update={"home": tmp_path, "kafka": config, "event_topic_prefix": prefix})
    definition = tmp_path / "live-stream.yaml"
    step = {
        "agent": "researcher",
        "model": "gpt-4o",
        "prompt": "What is the weather in Lisbon?",
        "tools": ["support.agent_tools:lookup"],
        "maxTurns": 4,
    }
    definition.write_text(
        yaml.safe_dump(
            {
                "id": "live-stream",
                "name": "Live stream",
                "triggers": [{"type": "manual"}],
                "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
                "steps": [{"id": "research", "type": "task", "configuration": step}],
            }
        )
    )
    app = create_app(ACCESS, settings=settings)
    feed = app.state.live_feed = LiveFeed(config, prefix)
    wire.reset()
    with serving(app, free_port()) as base:
        url = base.replace("http://", "ws://") + f"/ws?api_key={KEY}"
        yield Setup(settings, config, url, definition, wire, feed)
    wire.reset()
    close_streams()  # this test's producer, before the session's broker goes


def script(wire: WireServer, answer: str, delay: float = 0.0) -> None:
    wire.script(text=LOOKING, tool_calls=[{"name": "lookup", "arguments": {"city": "Lisbon"}, "id": "call-1"}])
    wire.script(text=answer, delay=delay)


def run(setup: Setup, tmp: Path) -> WorkflowResult:
    outbox = Outbox(tmp / f"outbox-{uuid.uuid4().hex[:6]}.sqlite", setup.settings.event_topic_prefix)
    bus = EventBus(outbox, OutboxRelay(outbox, setup.config, message_timeout_ms=3000), mirror=False)
    services = run_services(setup.settings, events=bus, recorder=None, user_id="ana")
    flow = compile_workflow(
        load_workflow(setup.definition), source=setup.definition, options=CompileOptions(services=services)
    )
    try:
        return asyncio.run(flow(inputs={}, resume_key=f"live-{uuid.uuid4()}"))
    finally:
        bus.relay.stop()  # type: ignore[union-attr]


def test_a_client_sees_turn_start_deltas_tool_call_tool_result_then_the_answer_as_they_happen(
    setup: Setup, tmp_path: Path
) -> None:
    answer = "It is sunny in Lisbon today, with a light breeze from the west and twenty-four degrees."
    script(setup.wire, answer)
    watcher = Collector(setup.client())
    result = run(setup, tmp_path)
    assert result.status.value == "completed"
    updates = streamed(watcher.wait_for(answered))

    events = [u["stream_event"] for u in updates]
    collapsed = [e for i, e in enumerate(events) if i == 0 or e != events[i - 1]]
    assert collapsed == ORDER
    assert [u["turn"] for u in updates if u["stream_event"] == "turn_started"] == [1, 2]
    for turn, said in ((1, LOOKING), (2, answer)):
        assert "".join(u["delta"] for u in updates if u["stream_event"] == "text" and u["turn"] == turn) == said
    call, done = (u for u in updates if u["stream_event"] in ("tool_started", "tool_finished"))
    assert call["tool"] == done["tool"] == "lookup" and call["activity"] == "using a tool"
    assert done["message"].startswith("lookup ok ")
    assert updates[-1]["activity"] is None and updates[-1]["message"] == "answered in turn 2 by gpt-4o"
    assert all(u["new_state"] == "running" and u["step_id"] == "research" for u in updates)
    assert len({u["agent_id"] for u in updates}) == 1
    activities = {u["stream_event"]: u["activity"] for u in updates[:-1]}
    assert activities == {
        "turn_started": "thinking",
        "text": "thinking",
        "turn_finished": "using a tool",
        "tool_started": "using a tool",
        "tool_finished": "using a tool",
    }


def test_a_client_that_stops_reading_is_dropped_with_1013_and_neither_the_run_nor_other_clients_wait(
    setup: Setup, tmp_path: Path
) -> None:
    # More than the kernel buffers for a connection that reads nothing (loopback send buffers grow to 4 MB here)
    # plus its queue: 6,000 deltas are ~9 MB of agent_update messages.
    words = [f"w{n}" for n in range(6000)]
    script(setup.wire, " ".join(words))
    reader = Collector(setup.client())
    slow = StuckClient(setup.url)
    assert setup.feed.ready.wait(60)

    result = run(setup, tmp_path)  # the slow client has read nothing all this time: a run waiting on it never ends
    assert result.status.value == "completed"
    deltas = [u["delta"] for u in streamed(reader.wait_for(answered)) if u["stream_event"] == "text" and u["turn"] == 2]
    assert "".join(deltas).split() == words, "the reading client got every delta, in order"
    stream = configured_stream(setup.settings)
    assert stream is not None and stream.dropped == 0 and stream.failed == 0, "the run streamed all it had"

    received, close = slow.read_to_the_end()
    assert close is not None and close.code == 1013 and close.reason == f"fell {QUEUE_SIZE} messages behind"
    assert received < len(reader.texts) - QUEUE_SIZE, "it was dropped, not merely late"
    assert reader.closed is None


def test_a_late_subscriber_gets_the_current_state_first_then_the_live_deltas(setup: Setup, tmp_path: Path) -> None:
    answer = "Sunny and warm, twenty-four degrees, a light westerly breeze."
    script(setup.wire, answer, delay=3.0)  # turn 2 thinks for 3 s: the late client arrives meanwhile
    early = Collector(setup.client())
    late: list[Collector] = []

    def arrive_during_turn_2() -> None:
        early.wait_for(lambda ms: any(u["stream_event"] == "turn_started" and u["turn"] == 2 for u in streamed(ms)))
        late.append(Collector(setup.client()))

    arriving = threading.Thread(target=arrive_during_turn_2, daemon=True)
    arriving.start()
    assert run(setup, tmp_path).status.value == "completed"
    arriving.join(30)
    everything = early.wait_for(answered)
    told = late[0].wait_for(answered)

    first_agent = next(i for i, m in enumerate(told) if m["message_type"] == "agent_update")
    assert all(m["message_type"] == "team_update" for m in told[:first_agent]), "teams first, then agents"
    now = told[first_agent]["payload"]
    assert (now["streaming"], now["new_state"], now["activity"], now["turn"], now["step_id"]) == (
        False,
        "running",
        "thinking",
        2,
        "research",
    )
    assert now["message"] == "turn 2" and 'data-activity="thinking"' in now["svg"]
    live = told[first_agent + 1 :]
    assert live == everything[len(everything) - len(live) :], "then exactly what everyone else got from then on"
    assert "".join(u["delta"] for u in streamed(live) if u["stream_event"] == "text") == answer
    assert not any(u["stream_event"] == "tool_started" for u in streamed(live)), "nothing from before it came"
