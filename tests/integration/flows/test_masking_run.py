"""Data masking end to end: a run whose inputs hold an e-mail address, a phone number and a card number leaves none
of them on Kafka, in the graph, in Prefect's logs, artifacts and the run's state, or on ``/ws``.

The run has an agent step on the keyless simulated model (its answer quotes the prompt, streamed in fragments),
a handler that logs the contact through Prefect's run logger, and one that fails quoting it (the failure's reason
lands in events and the steps artifact). The run's services are built from settings that name the session's Kafka
broker, as a deployed run's are; the graph is the session's Bolt server. Each place is read back by an independent
client (kafka-python from offset 0, the neo4j driver, the Prefect client, a WebSocket client), and each must hold
the masked forms, so the check cannot pass on empty places.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.kafka_raw import read_raw
from websockets.sync.client import ClientConnection, connect

from agentparty.api import create_app
from agentparty.api.live import LiveFeed
from agentparty.api.security import key_digest
from agentparty.api.serve import serving
from agentparty.flows import CompileOptions, WorkflowFailed, compile_workflow
from agentparty.flows.services import run_services
from agentparty.models import WorkflowDefinition
from agentparty.models.access import ApiAccessConfig
from agentparty.models.config import KafkaConfig
from agentparty.models.graph import stable_id
from agentparty.runtime.event_bus import EventBus
from agentparty.runtime.graph_store import GraphStore
from agentparty.runtime.live_stream import close_streams
from agentparty.runtime.local_service import free_port
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.relay import OutboxRelay
from agentparty.runtime.run_recorder import GraphRecorder
from agentparty.runtime.settings import get_settings

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

EMAIL, PHONE, CARD = "jane.doe@example.com", "+1 415 555 2671", "4111 1111 1111 1111"
CONTACT = f"{EMAIL}, {PHONE}, card {CARD}"
PII = (EMAIL, PHONE, CARD, CARD.replace(" ", ""), "415 555 2671")
KEY = "viewer-key-masking"
DEFINITION = {
    "id": "masking-run",
    "name": "Masking run",
    "triggers": [{"type": "manual"}],
    "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
    "inputs": {"contact": {"type": "string"}},
    "steps": [
        {"id": "reply", "type": "task", "configuration": {"agent": "clerk", "prompt": "Write to ${inputs.contact}"}},
        {
            "id": "note",
            "type": "task",
            "configuration": {"handler": "support.masking_handlers:log_contact"},
            "inputs": {"contact": "${inputs.contact}"},
        },
        {
            "id": "reach",
            "type": "task",
            "configuration": {"handler": "support.masking_handlers:refuse_contact", "dependsOn": ["note"]},
            "inputs": {"contact": "${inputs.contact}"},
        },
    ],
}


def leaks(text: str) -> list[str]:
    return [value for value in PII if value in text]


@pytest.fixture
def clean_streams() -> Iterator[None]:
    yield
    close_streams()  # this test's producer, before the session's broker goes


async def prefect_logs_artifacts_and_state(run_id: str) -> tuple[list[str], list[str], str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId

    async with get_client() as client:
        logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[uuid.UUID(run_id)])))
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(run_id)]))
        )
        flow_run = await client.read_flow_run(uuid.UUID(run_id))
    state = flow_run.state.message if flow_run.state is not None else None
    return [log.message for log in logs], [json.dumps(a.data) + (a.description or "") for a in artifacts], state or ""


def read_until_the_run_ends(ws: ClientConnection) -> list[str]:
    """What ``/ws`` sent until the team's final update, and for a moment after (stream items may trail it)."""
    shown: list[str] = []
    while True:
        shown.append(str(ws.recv(timeout=60)))
        message = json.loads(shown[-1])
        if message["message_type"] == "team_update" and message["payload"]["status"] == "failed":
            break
    with contextlib.suppress(TimeoutError):
        while True:
            shown.append(str(ws.recv(timeout=1.0)))
    return shown


def graph_text(store: GraphStore, run_key: str) -> str:
    """Every property of the run's task, its outputs, its team and their agents and relationships."""
    records, _, _ = store.driver.execute_query(
        "MATCH (t:Task {id: $task}) OPTIONAL MATCH (t)-[r]-(n) OPTIONAL MATCH (n)-[r2]-(m) "
        "RETURN properties(t) AS t, collect(properties(r)) AS r, collect(properties(n)) AS n, "
        "collect(properties(r2)) AS r2, collect(properties(m)) AS m",
        task=stable_id("task", run_key),
        database_=store.database,
    )
    return json.dumps([dict(record) for record in records], default=str)


def test_no_personal_data_leaves_the_run(
    kafka_broker: Any, graph_store: GraphStore, tmp_path: Path, clean_streams: None
) -> None:
    prefix = f"mask{uuid.uuid4().hex[:8]}."
    config = KafkaConfig(bootstrap_servers=[kafka_broker.bootstrap_servers], group_id="tests")
    settings = get_settings().model_copy(update={"home": tmp_path, "kafka": config, "event_topic_prefix": prefix})
    access = ApiAccessConfig.model_validate(
        {"apiKeys": [{"name": "w", "role": "viewer", "keySha256": key_digest(KEY)}]}
    )
    app = create_app(access, settings=settings)
    feed = app.state.live_feed = LiveFeed.from_settings(settings)
    outbox = Outbox(tmp_path / "outbox.sqlite", prefix)
    bus = EventBus(outbox, OutboxRelay(outbox, config, message_timeout_ms=3000), mirror=True)
    services = run_services(settings, events=bus, recorder=GraphRecorder(graph_store), user_id="ana")
    flow = compile_workflow(WorkflowDefinition.model_validate(DEFINITION), options=CompileOptions(services=services))
    run_key = f"masking-{uuid.uuid4()}"
    with serving(app, free_port()) as base, connect(base.replace("http", "ws", 1) + f"/ws?api_key={KEY}") as ws:
        assert feed.ready.wait(60), "the feed never reached the broker"
        try:
            with pytest.raises(WorkflowFailed) as failed:
                asyncio.run(flow(inputs={"contact": CONTACT}, resume_key=run_key))
        finally:
            bus.relay.stop()  # type: ignore[union-attr]
        result = failed.value.result
        assert result.steps["reply"].status.value == "completed" and result.steps["reach"].status.value == "failed"
        assert EMAIL in json.dumps(result.steps["reply"].output)  # the run itself sees its inputs as given
        shown = read_until_the_run_ends(ws)

    records = read_raw(
        kafka_broker.bootstrap_servers,
        [f"{prefix}{t}" for t in ("workflows", "agents", "tasks", "teams", "agent-stream")],
    )
    on_kafka = "\n".join(r.value.decode() for r in records)
    logs, artifacts, state = asyncio.run(prefect_logs_artifacts_and_state(result.run_id or ""))
    places = {
        "kafka": on_kafka,
        "graph": graph_text(graph_store, run_key),
        "prefect logs": "\n".join(logs),
        "prefect artifacts": "\n".join(artifacts),
        "prefect state": state,
        "/ws": "\n".join(shown),
    }
    found = {where: leaks(text) for where, text in places.items() if leaks(text)}
    assert not found, f"personal data left the run: {found}"
    for where in ("kafka", "graph", "/ws"):
        assert "[email]" in places[where] and "[card]" in places[where], f"{where} holds no masked answer"
    assert "writing to [email], [phone], card [card]" in places["prefect logs"]
    assert "cannot reach [email]" in places["prefect artifacts"] and "cannot reach [email]" in state
