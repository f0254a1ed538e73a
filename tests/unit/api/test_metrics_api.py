"""``GET /metrics`` behind a key, the formats exportFormats lists, request latency per route template, refusals."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient
from support.api_support import access_config, auth

from agentparty.api import create_app
from agentparty.models.sdk_config import MetricsConfig
from agentparty.runtime.settings import Settings
from agentparty.runtime.telemetry_metrics import configure


def _app(home: Path, metrics: dict[str, Any]) -> TestClient:
    config = home / "sdk.yaml"
    config.write_text(yaml.safe_dump({"monitoring": {"metrics": metrics}}))
    return TestClient(create_app(access_config(), settings=Settings(home=home, sdk_config=config)))


def test_metrics_need_a_key_and_serve_the_listed_formats(api_home: Path) -> None:
    client = _app(api_home, {"exportFormats": ["prometheus", "json", "csv"]})
    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", headers=auth("viewer"))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert "# TYPE agentparty_api_request_duration_seconds histogram" in response.text
    snapshot = client.get("/metrics/json", headers=auth("viewer")).json()
    assert {"agentparty_api_refusals", "agentparty_memory_limit_bytes"} <= {m["name"] for m in snapshot["metrics"]}
    rows = client.get("/metrics/csv", headers=auth("viewer")).text.splitlines()
    assert rows[0] == "metric,type,sample,labels,value" and len(rows) > 10


def test_the_seed_default_serves_json_only_and_says_why_not_prometheus(make_app: Any) -> None:
    client = TestClient(make_app())
    refused = client.get("/metrics", headers=auth("viewer"))
    assert refused.status_code == 404
    assert "prometheus is not in monitoring.metrics.exportFormats (listed: json)" in refused.text
    assert client.get("/metrics/json", headers=auth("viewer")).status_code == 200


def test_metrics_off_is_said_on_every_route(api_home: Path) -> None:
    client = _app(api_home, {"enabled": False, "exportFormats": ["prometheus", "json"]})
    try:
        for route in ("/metrics", "/metrics/json"):
            response = client.get(route, headers=auth("viewer"))
            assert response.status_code == 404 and "monitoring.metrics.enabled is false" in response.text
    finally:
        configure(MetricsConfig())  # recording is per process: back on for the tests after this one


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_requests_are_timed_by_route_template_and_refusals_counted(api_home: Path) -> None:
    client = _app(api_home, {"exportFormats": ["prometheus"]})
    before = client.get("/metrics", headers=auth("viewer")).text
    unknown = uuid.uuid4().hex
    client.get(f"/templates/{unknown}", headers=auth("viewer"))
    client.get("/templates")  # no key: 401
    client.get(f"/no-such-route/{unknown}", headers=auth("viewer"))
    after = client.get("/metrics", headers=auth("viewer")).text

    assert unknown not in after  # never a raw path
    count = "agentparty_api_request_duration_seconds_count"
    assert _sample(after, count, route="/templates/{name}", method="GET", status="404") == (
        _sample(before, count, route="/templates/{name}", method="GET", status="404") + 1
    )
    assert _sample(after, count, route="(unmatched)", status="404") >= 1
    assert _sample(after, "agentparty_api_refusals_total", code="401") == (
        _sample(before, "agentparty_api_refusals_total", code="401") + 1
    )


def test_a_role_without_read_on_metrics_is_refused(api_home: Path) -> None:
    access = access_config().model_copy(deep=True)
    access.roles["viewer"] = [access.roles["viewer"][0].model_copy(update={"resource": "runs"})]
    client = TestClient(create_app(access, settings=Settings(home=api_home)))
    response = client.get("/metrics/json", headers=auth("viewer"))
    assert response.status_code == 403 and "may not read metrics" in json.dumps(response.json())
