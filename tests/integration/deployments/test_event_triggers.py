"""Event triggers on a real Prefect server: an emitted event, a mirrored lifecycle event and a Kafka message each start a run."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from support.deploy_support import (
    PROBE,
    runs_not_probed,
    stamp_workflow,
    wait_for,
    wait_until_automation_reacts,
    write_definition,
)
from support.run_services_support import services

from agentparty.deployments.build import deploy_workflows, load_sources
from agentparty.deployments.kafka_bridge import ROUTE_LABEL, KafkaEventBridge, bridge_event_name, routes_for

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]


def _deploy_one(folder: Path) -> str:
    (deployed,) = deploy_workflows(load_sources([folder]), work_pool=f"test-{uuid.uuid4().hex[:8]}")
    return deployed.deployment_id


def test_an_emitted_event_starts_a_run_with_parameters_templated_from_it(workflow_dir: Path) -> None:
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    name = f"agentparty.test.ping-{uuid.uuid4().hex[:6]}"
    trigger = {
        "type": "event",
        "configuration": {
            "expect": [name],
            "match": {"prefect.resource.id": "customer.*"},
            "parameters": {"label": "{{ event.resource.id }}/{{ event.payload.order }}"},
        },
    }
    write_definition(workflow_dir, stamp_workflow("on-ping", [trigger]))
    deployment_id = _deploy_one(workflow_dir)
    wait_until_automation_reacts(
        deployment_id,
        lambda n: emit_event(
            event=name, resource={"prefect.resource.id": f"customer.{PROBE}-{n}"}, payload={"order": n}
        ),
    )

    emit_event(event=name, resource={"prefect.resource.id": "other.7"}, payload={"order": "ignored"})
    emit_event(event=name, resource={"prefect.resource.id": "customer.42"}, payload={"order": "A-17"})
    EventsWorker.drain_all()

    (run,) = wait_for(lambda: runs_not_probed(deployment_id), 60, "a run started by the event")
    assert run.parameters == {"inputs": {"label": "customer.42/A-17"}}


def test_a_mirrored_lifecycle_event_starts_a_run(workflow_dir: Path, tmp_path: Path) -> None:
    """Workflow B runs whenever workflow A completes: A's mirrored ``workflow_run_completed`` event fires B's trigger."""
    from prefect.events import emit_event

    from agentparty.flows import CompileOptions, compile_workflow
    from agentparty.runtime.documents import load_workflow
    from agentparty.runtime.event_bus import EventBus
    from agentparty.runtime.outbox import Outbox

    upstream_id = f"upstream-{uuid.uuid4().hex[:6]}"
    trigger = {
        "type": "event",
        "configuration": {
            "expect": ["agentparty.workflow_run_completed"],
            "match": {"agentparty.workflow": upstream_id},
            "parameters": {"label": "{{ event.resource.id }}"},
        },
    }
    write_definition(workflow_dir, stamp_workflow("after-upstream", [trigger]))
    deployment_id = _deploy_one(workflow_dir)
    wait_until_automation_reacts(
        deployment_id,
        lambda n: emit_event(
            event="agentparty.workflow_run_completed",
            resource={"prefect.resource.id": f"agentparty.task.{PROBE}-{n}", "agentparty.workflow": upstream_id},
        ),
    )

    upstream_dir = tmp_path / "upstream"
    upstream_dir.mkdir()
    (upstream_dir / "deploy_handlers.py").write_text((workflow_dir / "deploy_handlers.py").read_text())
    path = write_definition(upstream_dir, stamp_workflow(upstream_id, [{"type": "manual"}]))
    bus = EventBus(Outbox(tmp_path / "outbox.sqlite"), relay=None, mirror=True)
    flow = compile_workflow(
        load_workflow(path), source=path, options=CompileOptions(services=services(events=bus, recorder=None))
    )
    result = asyncio.run(flow(inputs={"label": "upstream"}))
    assert result.status.value == "completed"

    from agentparty.models.graph import stable_id

    (run,) = wait_for(lambda: runs_not_probed(deployment_id), 60, "a run started by the mirrored event")
    assert run.parameters == {"inputs": {"label": f"agentparty.task.{stable_id('task', result.run_id or '')}"}}


def test_a_kafka_message_that_passes_the_filter_starts_a_run(workflow_dir: Path, kafka_broker: Any) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    from prefect.events import emit_event

    from agentparty.models.config import KafkaConfig

    topic = f"orders-{uuid.uuid4().hex[:6]}"
    trigger = {
        "type": "event",
        "configuration": {
            "kafka": {"topic": topic, "filter": {"kind": "order", "customer.tier": "pro"}},
            "parameters": {"label": "{{ event.payload.message.id }}"},
        },
    }
    path = write_definition(workflow_dir, stamp_workflow("on-order", [trigger]))
    deployment_id = _deploy_one(workflow_dir)
    wait_until_automation_reacts(  # the bridge's event, as the bridge would emit it for this trigger
        deployment_id,
        lambda n: emit_event(
            event=bridge_event_name(topic),
            resource={"prefect.resource.id": f"{bridge_event_name(topic)}.{PROBE}-{n}", ROUTE_LABEL: "on-order.0"},
            payload={"message": {"id": f"{PROBE}-{n}"}},
        ),
    )

    servers = kafka_broker.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": servers})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)
    producer = Producer({"bootstrap.servers": servers})
    for message in (
        {"kind": "refund", "id": "R-1", "customer": {"tier": "pro"}},
        {"kind": "order", "id": "O-1", "customer": {"tier": "free"}},
        {"kind": "order", "id": "O-2", "customer": {"tier": "pro"}},
    ):
        producer.produce(topic, json.dumps(message).encode(), key=message["id"].encode())
    producer.flush(10)

    from agentparty.runtime.documents import load_workflow

    bridge = KafkaEventBridge(
        routes_for([load_workflow(path)]),
        KafkaConfig(bootstrap_servers=[servers], group_id="tests"),
        group_id=f"bridge-{uuid.uuid4().hex[:6]}",
    )
    stop = threading.Event()
    thread = threading.Thread(target=bridge.run, args=(stop,), daemon=True)
    thread.start()
    try:
        (run,) = wait_for(lambda: runs_not_probed(deployment_id), 60, "a run started by the Kafka message")
        assert run.parameters == {"inputs": {"label": "O-2"}}
        wait_for(lambda: bridge.bridged == 1, 10, "the bridge to report one bridged message")
    finally:
        stop.set()
        thread.join(10)
        bridge.close()
    assert len(runs_not_probed(deployment_id)) == 1
