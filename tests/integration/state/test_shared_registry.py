"""Agent templates and API keys on both state backends: what one host writes, another reads.

Each test builds a second store on the same backend as another host would (on
PostgreSQL a second pool): a template published through one is resolved
through the other, and a key created or rotated on one authenticates (or is
refused) on the other, with its last use shared.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentparty.models import CreateAgentTemplateRequest
from agentparty.models.api import CREATE_AGENT_TEMPLATE_EXAMPLE
from agentparty.models.authentication import ApiKeyRotationConfig
from agentparty.models.step_errors import TemplateError
from agentparty.runtime.api_keys import ApiKeyProblem, ApiKeyStore, key_digest, refusal
from agentparty.runtime.state_backend import PostgresBackend, SqliteBackend, StateBackend
from agentparty.runtime.template_store import SharedTemplateStore
from agentparty.tasks.templates import TemplateRegistry


@pytest.fixture
def other_host(state_backend: StateBackend) -> Iterator[StateBackend]:
    """The same store reached again, as from another process or host (on PostgreSQL, a pool of its own)."""
    if isinstance(state_backend, PostgresBackend):
        other = PostgresBackend(state_backend.url)
        yield other
        other.close()
        return
    assert isinstance(state_backend, SqliteBackend)
    yield SqliteBackend(state_backend.folder)


def test_a_template_published_on_one_host_resolves_on_another(
    state_backend: StateBackend, other_host: StateBackend
) -> None:
    here = TemplateRegistry(SharedTemplateStore(state_backend))
    request = CreateAgentTemplateRequest.model_validate(json.loads(json.dumps(CREATE_AGENT_TEMPLATE_EXAMPLE)))
    created = here.create(request)
    here.publish(request.name, "1.0.0", approved_by="ana")

    there = TemplateRegistry(SharedTemplateStore(other_host))
    resolved = there.resolve(request.name)
    assert resolved.template.id == created.template.id
    assert resolved.record.status == "published" and resolved.record.approved_by == "ana"
    assert request.name in there.store.names()

    with pytest.raises(TemplateError, match="exists and cannot change"):
        there.store.insert_version(resolved.record)  # versions are immutable, whichever host tries
    there.deprecate(request.name, "1.0.0")
    with pytest.raises(TemplateError, match="no published version"):
        here.resolve(request.name)


def test_an_api_key_created_on_one_host_authenticates_on_another(
    state_backend: StateBackend, other_host: StateBackend
) -> None:
    here, there = ApiKeyStore(state_backend), ApiKeyStore(other_host)
    assert there.records() == [] and not there.exists()
    key, record = here.create("ci", "operator")
    assert there.exists()
    [seen] = there.records("ci")
    assert seen.digest == key_digest(key) == record.digest and seen.role == "operator"
    assert refusal(seen, ApiKeyRotationConfig(), time.time()) is None
    with pytest.raises(ApiKeyProblem):
        there.create("ci", "viewer")  # the name has a current key, on every host

    used = time.time()
    there.touch({record.digest: used})
    here.touch({record.digest: used - 60})  # a replica reporting an older use never moves it back
    assert here.records("ci")[0].last_used_at == pytest.approx(used)

    new_key, rotated = there.rotate("ci", overlap_hours=1)
    old, new = here.records("ci")
    assert new.digest == key_digest(new_key) == rotated.digest and new.current and new.role == "operator"
    assert old.valid_until is not None and refusal(old, ApiKeyRotationConfig(), old.valid_until + 1) is not None
    assert here.revoke("ci") == 2
    assert all(refusal(r, ApiKeyRotationConfig(), time.time()) for r in there.records("ci"))
    assert not here.add_digest("ci", "viewer", new.digest)  # a known digest is not added twice


def test_reading_keys_of_a_home_without_any_creates_no_file(tmp_path: Path) -> None:
    store = ApiKeyStore.at(tmp_path)
    assert store.records() == [] and store.path is not None and not store.path.exists()
