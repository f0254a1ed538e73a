"""API keys of the key list: rotation with an overlap window, maxAge and revocation (401 with the reason), last use."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from agentparty.api import create_app
from agentparty.runtime.api_keys import ApiKeyStore
from agentparty.runtime.settings import Settings

HOUR = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _app(home: Path, rotation: dict[str, Any] | None = None) -> tuple[Any, Clock]:
    config = home / "sdk.yaml"
    config.write_text(yaml.safe_dump({"authentication": {"apiKeyRotation": rotation or {}}}))
    app = create_app(settings=Settings(home=home, sdk_config=config))
    clock = Clock()
    app.state.access.clock = clock
    return app, clock


def _get(client: TestClient, key: str) -> Any:
    return client.get("/templates", headers={"X-API-Key": key})


def test_a_rotated_key_works_through_its_overlap_then_is_401_with_the_reason(api_home: Path) -> None:
    store = ApiKeyStore.at(api_home)
    old, _ = store.create("ci", "viewer")
    app, clock = _app(api_home)
    client = TestClient(app)
    assert _get(client, old).status_code == 200
    new, _ = store.rotate("ci", overlap_hours=2)
    app.state.access.reload()
    assert _get(client, old).status_code == 200 and _get(client, new).status_code == 200  # the overlap
    clock.now += 3 * HOUR
    refused = _get(client, old)
    assert refused.status_code == 401
    assert "'ci' was rotated; its overlap window ended" in refused.json()["detail"]
    assert _get(client, new).status_code == 200
    states = {r.digest: r for r in store.records("ci")}
    assert len(states) == 2 and sum(r.current for r in states.values()) == 1


def test_past_max_age_a_key_is_401_naming_the_setting(api_home: Path) -> None:
    key, _ = ApiKeyStore.at(api_home).create("old-timer", "viewer")
    app, clock = _app(api_home, {"enabled": True, "rotationInterval": 1, "maxAge": 2})
    client = TestClient(app)
    assert _get(client, key).status_code == 200
    clock.now += 2 * HOUR + 1
    refused = _get(client, key)
    assert refused.status_code == 401
    detail = refused.json()["detail"]
    assert "older than maxAge (2 h, authentication.apiKeyRotation.maxAge)" in detail
    assert "rotate-key old-timer" in detail and key not in detail


def test_without_rotation_enabled_max_age_is_not_applied(api_home: Path) -> None:
    key, _ = ApiKeyStore.at(api_home).create("steady", "viewer")
    app, clock = _app(api_home, {"enabled": False, "maxAge": 1, "rotationInterval": 1})
    clock.now += 10 * HOUR
    assert _get(TestClient(app), key).status_code == 200


def test_a_revoked_key_is_401_at_once_even_in_its_overlap(api_home: Path) -> None:
    store = ApiKeyStore.at(api_home)
    old, _ = store.create("leaked", "viewer")
    store.rotate("leaked", overlap_hours=24)
    app, _ = _app(api_home)
    client = TestClient(app)
    assert _get(client, old).status_code == 200
    assert store.revoke("leaked") == 2
    app.state.access.reload()
    refused = _get(client, old)
    assert refused.status_code == 401 and "was revoked" in refused.json()["detail"]


def test_last_use_is_recorded_at_most_once_a_minute_per_key(api_home: Path) -> None:
    store = ApiKeyStore.at(api_home)
    key, _ = store.create("busy", "viewer")
    app, clock = _app(api_home)
    client = TestClient(app)
    assert store.records("busy")[0].last_used_at is None
    first = clock.now
    assert _get(client, key).status_code == 200
    deadline = time.monotonic() + 5
    while store.records("busy")[0].last_used_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.records("busy")[0].last_used_at == pytest.approx(first)
    clock.now += 30  # within the minute: no write
    assert _get(client, key).status_code == 200
    time.sleep(0.2)
    assert store.records("busy")[0].last_used_at == pytest.approx(first)
    clock.now += 31
    assert _get(client, key).status_code == 200
    deadline = time.monotonic() + 5
    while store.records("busy")[0].last_used_at == pytest.approx(first) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.records("busy")[0].last_used_at == pytest.approx(clock.now)


def test_an_unknown_key_says_so(api_home: Path) -> None:
    app, _ = _app(api_home)
    refused = _get(TestClient(app), "ap_not-issued")
    assert refused.status_code == 401 and refused.json()["detail"] == "unknown API key"
