"""``WS /ws`` for keys whose permission has conditions, with real runs on a real Kafka-protocol broker (Tansu).

Three runs of two workflows (each one agent step streaming its answer through OpenAI's
SDK against the local wire server) run on the session's Prefect server, each started
"by" an API key: its flow run carries the ``agentparty.owner:`` tag that
``POST /workflows/{id}/runs`` gives it. The API is served by uvicorn with its feed on the
same broker. A key limited to one workflow, a key limited to its own runs and an
unconditioned admin key each connect before the runs and again after them (the
snapshot). Each must hear exactly the runs within its conditions: team updates by team,
agent updates by the answer text their deltas carry. The filter alone is
``tests/unit/api/test_live_scope.py``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import tags
from support.llm_wire import WireServer
from support.ws_collector import Collector
from websockets.sync.client import connect

from agentparty.api import create_app
from agentparty.api.live import LiveFeed
from agentparty.api.security import key_digest
from agentparty.api.serve import serving
from agentparty.flows import CompileOptions, WorkflowResult, compile_workflow
from agentparty.flows.services import run_services
from agentparty.models.access import DEFAULT_ROLES, ApiAccessConfig, owner_tag
from agentparty.models.config import KafkaConfig
from agentparty.models.run_history import team_id_for
from agentparty.runtime.documents import load_workflow
from agentparty.runtime.event_bus import EventBus
from agentparty.runtime.live_stream import close_streams
from agentparty.runtime.local_service import free_port
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.relay import OutboxRelay
from agentparty.runtime.settings import Settings, get_settings

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

ALPHA, BETA = "live-alpha", "live-beta"
KEYS = {"root": "root-key-1", "scoped": "scoped-key-1", "bot-b": "bot-b-key-1"}
ACCESS = ApiAccessConfig.model_validate(
    {
        "roles": {
            **DEFAULT_ROLES,
            "alpha-only": [{"resource": "events", "actions": ["read"], "conditions": {"workflows": [ALPHA]}}],
            "own-runs": [{"resource": "events", "actions": ["read"], "conditions": {"owner": "self"}}],
        },
        "apiKeys": [
            {"name": "root", "role": "admin", "keySha256": key_digest(KEYS["root"])},
            {"name": "scoped", "role": "alpha-only", "keySha256": key_digest(KEYS["scoped"])},
            {"name": "bot-b", "role": "own-runs", "keySha256": key_digest(KEYS["bot-b"])},
        ],
    }
)
ANSWERS = {
    "r1": "Alpha answer of the first run, started by bot-a.",
    "r2": "Bravo answer of the second run, started by bot-b.",
    "r3": "Charlie answer of the third run, started by bot-b.",
}


@dataclass
class Setup:
    settings: Settings
    config: KafkaConfig
    url: str
    definitions: dict[str, Path]
    wire: WireServer
    feed: LiveFeed

    def client(self, key: str) -> Collector:
        ws = connect(f"{self.url}?api_key={KEYS[key]}", max_queue=None)
        assert self.feed.ready.wait(60), "the feed never reached the broker"
        return Collector(ws)

    def run(self, workflow: str, owner: str, tmp: Path) -> str:
        """Run ``workflow`` as if key ``owner`` had started it over the API; its team id."""
        outbox = Outbox(tmp / f"outbox-{uuid.uuid4().hex[:6]}.sqlite", self.settings.event_topic_prefix)
        bus = EventBus(outbox, OutboxRelay(outbox, self.config, message_timeout_ms=3000), mirror=False)
        services = run_services(self.settings, events=bus, recorder=None, user_id="ana")
        path = self.definitions[workflow]
        flow = compile_workflow(load_workflow(path), source=path, options=CompileOptions(services=services))
        key = f"scope-{uuid.uuid4()}"
        try:
            with tags(owner_tag(owner)):  # what POST /workflows/{id}/runs tags the flow run with
                result: WorkflowResult = asyncio.run(flow(inputs={}, resume_key=key))
        finally:
            bus.relay.stop()  # type: ignore[union-attr]
        assert result.status.value == "completed"
        return team_id_for(key)


@pytest.fixture(scope="module")
def wire() -> Iterator[WireServer]:
    with WireServer() as server:
        yield server


def _definition(folder: Path, workflow_id: str, agent: str, step_id: str) -> Path:
    path = folder / f"{workflow_id}.yaml"
    step = {"agent": agent, "model": "gpt-4o", "prompt": "What is the weather in Lisbon?"}
    document = {
        "id": workflow_id,
        "name": workflow_id,
        "triggers": [{"type": "manual"}],
        "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
        "steps": [{"id": step_id, "type": "task", "configuration": step}],
    }
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture
def setup(kafka_broker: Any, wire: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-live")
    monkeypatch.setenv("OPENAI_BASE_URL", wire.url + "/v1")
    prefix = f"scope{uuid.uuid4().hex[:8]}."
    config = KafkaConfig(bootstrap_servers=[kafka_broker.bootstrap_servers], group_id="tests")
    settings = get_settings().model_copy(update={"home": tmp_path, "kafka": config, "event_topic_prefix": prefix})
    definitions = {
        ALPHA: _definition(tmp_path, ALPHA, "researcher", "research"),
        BETA: _definition(tmp_path, BETA, "analyst", "analyse"),
    }
    app = create_app(ACCESS, settings=settings)
    feed = app.state.live_feed = LiveFeed(config, prefix)
    wire.reset()
    with serving(app, free_port()) as base:
        yield Setup(settings, config, base.replace("http://", "ws://") + "/ws", definitions, wire, feed)
    wire.reset()
    close_streams()  # this test's producer, before the session's broker goes


def teams(messages: list[dict[str, Any]]) -> set[str]:
    return {m["payload"]["team_id"] for m in messages if m["message_type"] == "team_update"}


def final(team_id: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda ms: any(
        m["message_type"] == "team_update"
        and m["payload"]["team_id"] == team_id
        and m["payload"]["status"] == "completed"
        for m in ms
    )


def said(messages: list[dict[str, Any]]) -> str:
    """Every streamed delta, joined (each run's answer is distinct)."""
    return "".join(
        m["payload"]["delta"] or ""
        for m in messages
        if m["message_type"] == "agent_update" and m["payload"]["stream_event"] == "text"
    )


def agents_by_step(messages: list[dict[str, Any]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for m in messages:
        if m["message_type"] == "agent_update" and m["payload"]["streaming"]:
            out.setdefault(m["payload"]["step_id"], set()).add(m["payload"]["agent_id"])
    return out


def agents(messages: list[dict[str, Any]]) -> set[str]:
    return {m["payload"]["agent_id"] for m in messages if m["message_type"] == "agent_update"}


def test_keys_with_conditions_hear_only_their_runs_live_and_in_the_snapshot(setup: Setup, tmp_path: Path) -> None:
    live = {key: setup.client(key) for key in KEYS}
    team: dict[str, str] = {}
    for run, (workflow, owner) in {"r1": (ALPHA, "bot-a"), "r2": (BETA, "bot-b"), "r3": (ALPHA, "bot-b")}.items():
        setup.wire.script(text=ANSWERS[run])
        team[run] = setup.run(workflow, owner, tmp_path)
        # Everything about this run has reached the feed's subscriptions before the next run starts (one feed
        # publishes to all of them in one order), so what a filtered client lacks below was filtered, not late.
        live["root"].wait_for(lambda ms, run=run: final(team[run])(ms) and ANSWERS[run] in said(ms))
    got = {
        "root": live["root"].messages,
        "scoped": live["scoped"].wait_for(lambda ms: final(team["r3"])(ms) and ANSWERS["r3"] in said(ms)),
        "bot-b": live["bot-b"].wait_for(lambda ms: final(team["r3"])(ms) and ANSWERS["r3"] in said(ms)),
    }
    by_step = agents_by_step(got["root"])
    researcher, analyst = by_step["research"], by_step["analyse"]
    assert len(researcher) == len(analyst) == 1 and researcher != analyst

    assert teams(got["root"]) == set(team.values())
    assert all(answer in said(got["root"]) for answer in ANSWERS.values())
    assert teams(got["scoped"]) == {team["r1"], team["r3"]}, "workflows: [live-alpha]"
    assert ANSWERS["r1"] in said(got["scoped"]) and ANSWERS["r2"] not in said(got["scoped"])
    assert agents(got["scoped"]) == researcher, "nothing of the analyst, who only worked in live-beta"
    assert teams(got["bot-b"]) == {team["r2"], team["r3"]}, "owner: self"
    assert ANSWERS["r2"] in said(got["bot-b"]) and ANSWERS["r1"] not in said(got["bot-b"])
    assert agents(got["bot-b"]) == researcher | analyst

    late = {key: setup.client(key) for key in KEYS}  # told the current state first; no run goes on now
    late["root"].wait_for(lambda ms: teams(ms) == set(team.values()) and agents(ms) == researcher | analyst)
    time.sleep(1.0)  # the snapshots were queued whole at subscription: what has not come by now is not coming
    snapshot = {key: collector.messages for key, collector in late.items()}
    assert all(not m["payload"].get("streaming") for ms in snapshot.values() for m in ms)
    assert (teams(snapshot["scoped"]), agents(snapshot["scoped"])) == ({team["r1"], team["r3"]}, researcher)
    # The researcher's latest update is of r3 (live-alpha, started by bot-b): both conditioned keys are told it.
    assert (teams(snapshot["bot-b"]), agents(snapshot["bot-b"])) == ({team["r2"], team["r3"]}, researcher | analyst)
    for collector in (*live.values(), *late.values()):
        collector.ws.close()
