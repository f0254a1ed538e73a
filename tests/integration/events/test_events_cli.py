"""`agentparty events init|tail|relay` and `run` with events, read back by our consumer, by an independent Kafka
client and from Prefect's own event feed.

The independent client is kafka-python (a pure-Python implementation of the protocol, sharing nothing with
librdkafka). Debian's kcat cannot be used against the local broker: it bundles librdkafka 2.0.2, whose
ApiVersionRequest Tansu refuses ("Read underflow"), with or without ``api.version.request=false``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentparty.cli import app

runner = CliRunner()


@pytest.fixture
def with_broker(prefect_server: str, kafka_broker: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The session's Prefect server and broker as the configured ones; topics under a prefix of this test's own."""
    from agentparty.runtime.settings import get_settings

    prefix = f"cli{uuid.uuid4().hex[:8]}."
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    monkeypatch.setenv("AGENTPARTY_KAFKA__BOOTSTRAP_SERVERS", kafka_broker.bootstrap_servers)  # type: ignore[attr-defined]
    monkeypatch.setenv("AGENTPARTY_KAFKA__GROUP_ID", "cli-tests")
    monkeypatch.setenv("AGENTPARTY_EVENT_TOPIC_PREFIX", prefix)
    get_settings.cache_clear()
    yield prefix
    get_settings.cache_clear()


def test_run_emits_and_tail_another_client_and_prefect_see_the_same_events(
    with_broker: str, kafka_broker: object, examples_dir: Path
) -> None:
    prefix = with_broker
    created = runner.invoke(app, ["events", "init"])
    assert created.exit_code == 0 and all(
        f"{prefix}{f}" in created.stdout for f in ("agents", "teams", "tasks", "workflows")
    )
    assert "already exist" in runner.invoke(app, ["events", "init"]).stdout

    ran = runner.invoke(app, ["run", str(examples_dir / "nightly-digest.yaml"), "-i", "max_items=2", "--no-graph"])
    assert ran.exit_code == 0, ran.output
    assert "events: all delivered" in ran.stdout
    run_id = next(line for line in ran.stdout.splitlines() if line.startswith("UI: ")).rsplit("/", 1)[1]

    tailed = runner.invoke(
        app, ["events", "tail", "--json", "--type", "step_completed", "--type", "workflow_run_completed"]
    )
    assert tailed.exit_code == 0, tailed.output
    ours = [json.loads(line) for line in tailed.stdout.splitlines()]
    assert sorted(e["payload"]["step_id"] or "" for e in ours if e["event_type"] == "step_completed") == [
        "collect",
        "publish",
        "summarise",
    ]
    assert all(e["correlation_id"] == run_id for e in ours)

    from kafka import KafkaConsumer

    other = KafkaConsumer(
        f"{prefix}workflows",
        bootstrap_servers=kafka_broker.bootstrap_servers,  # type: ignore[attr-defined]
        auto_offset_reset="earliest",
        group_id=None,
        consumer_timeout_ms=1000,
    )
    by_other: dict[str, tuple[str, dict[str, str]]] = {}
    deadline = time.monotonic() + 60
    while not {e["event_id"] for e in ours} <= set(by_other) and time.monotonic() < deadline:
        for m in other:  # until a second passes without a message
            by_other[json.loads(m.value)["event_id"]] = (m.key.decode(), {k: v.decode() for k, v in m.headers})
    other.close()
    assert {e["event_id"] for e in ours} <= set(by_other)
    key, headers = by_other[ours[0]["event_id"]]
    assert key == ours[0]["payload"]["task_id"]
    assert headers == {"event_type": ours[0]["event_type"], "event_version": "1.0", "correlation_id": run_id}

    assert _prefect_events(run_id, "agentparty.step_completed", expected=3) == 3


def _prefect_events(flow_run_id: str, name: str, expected: int, timeout: float = 30.0) -> int:
    """How many events of this name Prefect's event feed holds for the flow run. It ingests asynchronously, so
    this waits until ``expected`` have arrived (or ``timeout`` passes), then a second more for any extra."""
    from prefect.client.orchestration import get_client

    async def count() -> int:
        async with get_client() as client:
            response = await client._client.post(
                "/events/filter",
                json={
                    "filter": {"event": {"name": [name]}, "related": {"id": [f"prefect.flow-run.{flow_run_id}"]}},
                    "limit": 50,
                },
            )
            response.raise_for_status()
            return len(response.json()["events"])

    deadline = time.monotonic() + timeout
    while True:
        found = asyncio.run(count())
        if found >= expected:
            time.sleep(1.0)
            return asyncio.run(count())
        if time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_relay_once_sends_what_a_run_left_in_the_outbox(with_broker: str, agentparty_home: Path) -> None:
    from agentparty.models.events import TaskSubmittedEvent, TaskSubmittedPayload
    from agentparty.runtime.outbox import Outbox

    outbox = Outbox.at(agentparty_home, with_broker)
    event = TaskSubmittedEvent(
        correlation_id="offline", payload=TaskSubmittedPayload(task_id="t", title="x", submitted_by="u", token_budget=0)
    )
    assert outbox.append([event]) == [event]
    sent = runner.invoke(app, ["events", "relay", "--once"])
    assert sent.exit_code == 0 and "pending 0" in sent.stdout, sent.output
    tailed = runner.invoke(app, ["events", "tail", "--json", "--type", "task_submitted"])
    assert event.event_id in {json.loads(line)["event_id"] for line in tailed.stdout.splitlines()}
