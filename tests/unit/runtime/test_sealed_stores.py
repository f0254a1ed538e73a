"""Every store that keeps data at rest seals it (runtime/sealing.py): a round trip each, nothing readable in the
file, a flipped byte a clear error, plaintext rows from before still read, and re-encryption after a rotation."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prefect.results import ResultRecord, ResultRecordMetadata
from prefect.serializers import PickleSerializer

from agentparty.flows.step_task import StepOutcome
from agentparty.models import CreateAgentTemplateRequest
from agentparty.models.agent import WorkflowState
from agentparty.models.api import CREATE_AGENT_TEMPLATE_EXAMPLE
from agentparty.models.events import TaskSubmittedEvent
from agentparty.models.memory import MemoryConfig
from agentparty.models.messages import SystemMessage
from agentparty.runtime.agent_memory import AgentMemoryStore, Engagement
from agentparty.runtime.conversations import ConversationStore
from agentparty.runtime.data_keys import DEFAULT_KEY_FILE, load_key_ring, rotate_key_file
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.reencrypt import reencrypt
from agentparty.runtime.sealed_results import SealedPickleSerializer, reseal_result_file
from agentparty.runtime.sealing import SealedRecordError, Sealer, is_sealed
from agentparty.runtime.template_store import SqliteTemplateStore
from agentparty.runtime.webhook_deliveries import WebhookDeliveries
from agentparty.tasks.templates import TemplateRegistry

SECRET = "Project Nightingale launches on 2027-03-14"


def make_sealer(home: Path, enabled: bool = True) -> Sealer:
    return Sealer(enabled, "AES-256-GCM", lambda: load_key_ring(home, None, None))


def raw_values(path: Path, table: str, column: str) -> list[Any]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL")]


def flip_first(path: Path, table: str, column: str) -> None:
    """Alter one byte inside the first sealed value's ciphertext, as an attacker with the file could."""
    with sqlite3.connect(path) as db:
        rowid, value = db.execute(f"SELECT rowid, {column} FROM {table} WHERE {column} IS NOT NULL").fetchone()
        if isinstance(value, bytes):
            altered: Any = value[:-3] + bytes([value[-3] ^ 1]) + value[-2:]
        else:
            raw = bytearray(base64.b64decode(value[4:]))
            raw[-3] ^= 1
            altered = "ap1:" + base64.b64encode(bytes(raw)).decode()
        db.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (altered, rowid))


def conversations(home: Path, sealer: Sealer) -> tuple[Callable[[], Any], Path, str, str]:
    store = ConversationStore(home / "state" / "conversations.sqlite", sealer=sealer)
    key = store.begin("agent-1", "eng", "run-1", "slot", WorkflowState(workflow_id="w", run_id="run-1"))
    store.append(key, [SystemMessage(content=SECRET)])
    return (lambda: store.page(key).messages[0].content), store.path, "messages", "body"


def outbox(home: Path, sealer: Sealer) -> tuple[Callable[[], Any], Path, str, str]:
    box = Outbox(home / "state" / "outbox.sqlite", sealer=sealer)
    payload = {"task_id": "t-1", "title": SECRET, "submitted_by": "ana", "token_budget": 10}
    box.append([TaskSubmittedEvent.model_validate({"correlation_id": "run-1", "payload": payload})])
    return (lambda: json.loads(box.pending()[0].value)["payload"]["title"]), box.path, "outbox", "value"


def deliveries(home: Path, sealer: Sealer) -> tuple[Callable[[], Any], Path, str, str]:
    store = WebhookDeliveries(home / "state" / "webhooks.sqlite", sealer=sealer)
    accepted = store.accept("wf", "key-1", "flow/deployment", {"note": SECRET})
    delivery_id = accepted.delivery.delivery_id

    def read() -> Any:
        found = store.get(delivery_id)
        assert found is not None and found.inputs is not None and store.pending()[0].inputs == found.inputs
        return found.inputs["note"]

    return read, store.path, "webhook_deliveries", "inputs"


def memory(home: Path, sealer: Sealer) -> tuple[Callable[[], Any], Path, str, str]:
    store = AgentMemoryStore(home / "state" / "memory.sqlite", sealer=sealer)
    store.write("agent-1", "plan", {"text": SECRET}, limits=MemoryConfig(), where=Engagement("run-1", "s"))

    def read() -> Any:
        entry = store.get("agent-1", "plan")
        assert entry is not None and store.entries("agent-1")[0].value == entry.value
        return entry.value["text"]

    return read, store.path, "memory_entries", "value"


def templates(home: Path, sealer: Sealer) -> tuple[Callable[[], Any], Path, str, str]:
    store = SqliteTemplateStore(home / "state" / "templates.sqlite", sealer=sealer)
    registry = TemplateRegistry(store)
    request = json.loads(json.dumps(CREATE_AGENT_TEMPLATE_EXAMPLE))
    request["personality"] = SECRET  # it goes into the version's system prompt
    created = registry.create(CreateAgentTemplateRequest.model_validate(request))
    registry.publish(created.template.name, "1.0.0", approved_by="ana")

    def read() -> Any:
        prompt = registry.resolve(created.template.name).record.system_prompt
        return SECRET if SECRET in prompt else prompt

    return read, store.path, "versions", "doc"


STORES = [conversations, outbox, deliveries, memory, templates]


@pytest.mark.parametrize("make", STORES, ids=lambda f: f.__name__)
def test_each_store_round_trips_and_keeps_nothing_readable(tmp_path: Path, make: Any) -> None:
    read, path, table, column = make(tmp_path, make_sealer(tmp_path))
    assert read() == SECRET
    values = raw_values(path, table, column)
    assert values and all(is_sealed(v) for v in values)
    assert SECRET.encode() not in path.read_bytes() and not any("Nightingale" in str(v) for v in values)


@pytest.mark.parametrize("make", STORES, ids=lambda f: f.__name__)
def test_a_flipped_byte_in_any_store_is_an_error_naming_it(tmp_path: Path, make: Any) -> None:
    read, path, table, column = make(tmp_path, make_sealer(tmp_path))
    flip_first(path, table, column)
    with pytest.raises(SealedRecordError) as raised:
        read()
    assert f"{table}[" in str(raised.value) and "store" in str(raised.value)


@pytest.mark.parametrize("make", STORES, ids=lambda f: f.__name__)
def test_off_writes_plaintext_and_reencrypt_seals_it_later(tmp_path: Path, make: Any) -> None:
    read, path, table, column = make(tmp_path, make_sealer(tmp_path, enabled=False))
    assert not any(is_sealed(v) for v in raw_values(path, table, column))  # rows from before encryption
    report = reencrypt(tmp_path, make_sealer(tmp_path))
    assert report.total >= 1
    assert all(is_sealed(v) for v in raw_values(path, table, column))
    assert read() == SECRET  # the store's own sealer (off) still opens what is sealed


@pytest.mark.parametrize("make", STORES, ids=lambda f: f.__name__)
def test_reencrypt_after_a_rotation_moves_every_record_to_the_newest_key(tmp_path: Path, make: Any) -> None:
    sealer = make_sealer(tmp_path)
    read, path, table, column = make(tmp_path, sealer)
    old = sealer.ring.newest.id
    new = rotate_key_file(tmp_path / DEFAULT_KEY_FILE)
    assert read() == SECRET  # old key still opens
    rotated = make_sealer(tmp_path)
    assert reencrypt(tmp_path, rotated).total >= 1
    assert {rotated.key_id(v) for v in raw_values(path, table, column)} == {new.id} != {old}
    assert read() == SECRET
    assert reencrypt(tmp_path, rotated).total == 0  # nothing left to move


def test_persisted_results_are_sealed_and_resealed(tmp_path: Path) -> None:
    outcome = StepOutcome(output={"summary": SECRET})
    record = ResultRecord(metadata=ResultRecordMetadata(serializer=SealedPickleSerializer()), result=outcome)
    data = record.serialize()
    assert SECRET.encode() not in data and b"Nightingale" not in base64.b64decode(json.loads(data)["result"])
    assert ResultRecord.deserialize(data).result == outcome
    # a result persisted before encryption (Prefect's pickle serializer) is sealed by reencrypt
    plain = ResultRecord(metadata=ResultRecordMetadata(serializer=PickleSerializer()), result=outcome).serialize()
    path = tmp_path / "result"
    path.write_bytes(plain)
    assert reseal_result_file(path, make_sealer(tmp_path))
    stored = json.loads(path.read_bytes())
    assert stored["metadata"]["serializer"]["type"] == "agentparty-sealed-pickle"
    assert is_sealed(base64.b64decode(stored["result"]))
    # a flow's result is stored bare (the serializer's bytes alone): sealed too, once
    bare = tmp_path / "flow-result"
    bare.write_bytes(PickleSerializer().dumps(outcome))
    sealer = make_sealer(tmp_path)
    assert reseal_result_file(bare, sealer) and not reseal_result_file(bare, sealer)
    assert is_sealed(base64.b64decode(bare.read_bytes())) and SECRET.encode() not in bare.read_bytes()


def test_the_configuration_turns_it_off_only_without_soc2(tmp_path: Path) -> None:
    from agentparty.runtime.documents import DocumentError
    from agentparty.runtime.sealing import sealer_for
    from agentparty.runtime.settings import Settings

    config = tmp_path / "sdk.yaml"
    config.write_text("security: {encryption: {atRest: false}}\n")
    with pytest.raises(DocumentError, match=r"encryption\.atRest"):
        sealer_for(Settings(home=tmp_path, sdk_config=config))
    config.write_text("security: {encryption: {atRest: false}}\nmonitoring: {logging: {compliance: {soc2: false}}}\n")
    sealer = sealer_for(Settings(home=tmp_path, sdk_config=config))
    assert not sealer.enabled
    read, path, table, column = conversations(tmp_path, sealer)
    assert read() == SECRET and SECRET in raw_values(path, table, column)[0]
    config.write_text("security: {encryption: {algorithm: ChaCha20-Poly1305}}\n")
    chacha = sealer_for(Settings(home=tmp_path, sdk_config=config))
    assert chacha.enabled and chacha.seal(b"x", "p")[5 + len(chacha.ring.newest.id)] == 2  # the algorithm's code
