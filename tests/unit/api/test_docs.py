"""OpenAPI docs served offline: every asset URL is local and served; the seed models carry their examples."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agentparty.api.docs import ASSETS_URL
from agentparty.models.api import AGENT_STATE_RESPONSE_EXAMPLE, CREATE_AGENT_TEMPLATE_EXAMPLE

URL_ATTRIBUTE = re.compile(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""")


@pytest.fixture
def client(make_app: Any) -> TestClient:
    return TestClient(make_app())


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_doc_pages_reference_only_local_assets_that_are_served(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
    urls = URL_ATTRIBUTE.findall(html)
    assets = [u for u in urls if u.startswith(ASSETS_URL)]
    assert assets, urls
    assert all(u.startswith("/") for u in urls), urls
    for url in assets:
        served = client.get(url)
        assert served.status_code == 200 and len(served.content) > 100, url
    assert "/openapi.json" in html


def test_openapi_documents_the_seed_models_with_their_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert schemas["CreateAgentTemplateRequest"]["examples"] == [CREATE_AGENT_TEMPLATE_EXAMPLE]
    assert schemas["AgentStateResponse"]["examples"] == [AGENT_STATE_RESPONSE_EXAMPLE]
    assert {
        "/webhooks/{workflow_id}",
        "/templates",
        "/agents",
        "/agents/{agent_id}/state",
        "/teams",
        "/workflows",
        "/runs",
    } <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    assert spec["paths"]["/webhooks/{workflow_id}"]["post"]["responses"]["409"]
