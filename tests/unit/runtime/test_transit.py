"""Encryption in transit (``runtime/transit.py``): plaintext endpoints refused, loopback and trusted networks not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from agentparty.models.config import DatabaseConfig, KafkaConfig
from agentparty.models.sdk_config import EncryptionConfig, SDKConfiguration
from agentparty.models.tools import McpServer, ToolPolicy
from agentparty.runtime.audit import AuditLog
from agentparty.runtime.settings import Settings
from agentparty.runtime.transit import PlaintextEndpointError, check_in_transit


def settings(tmp_path: Path, **update: Any) -> Settings:
    return Settings(home=tmp_path, **update)


def database(uri: str) -> DatabaseConfig:
    return DatabaseConfig(uri=uri, username="neo4j", password="secret")  # type: ignore[arg-type]


def kafka(server: str, protocol: str = "PLAINTEXT") -> KafkaConfig:
    extra: dict[str, Any] = {}
    if protocol.startswith("SASL"):
        extra = {"sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password": "p"}
    return KafkaConfig(bootstrap_servers=[server], security_protocol=protocol, group_id="g", **extra)  # type: ignore[arg-type]


def config(**encryption: Any) -> SDKConfiguration:
    return SDKConfiguration.model_validate({"security": {"encryption": encryption}} if encryption else {})


def test_the_local_defaults_are_loopback_and_pass(tmp_path: Path) -> None:
    s = settings(tmp_path)
    uses = check_in_transit(
        s, config(), AuditLog.at(tmp_path), prefect_api_url="http://127.0.0.1:4200/api", api_bind="127.0.0.1"
    )
    assert uses == []
    assert list(AuditLog.at(tmp_path).entries()) == []


@pytest.mark.parametrize(
    ("update", "named"),
    [
        (
            {"database": database("bolt://10.20.30.40:7687")},
            "graph database (AGENTPARTY_DATABASE__URI) bolt://10.20.30.40:7687",
        ),
        ({"kafka": kafka("10.20.30.40:9092")}, "Kafka bootstrap server (security protocol PLAINTEXT) 10.20.30.40:9092"),
        ({"kafka": kafka("10.20.30.40:9092", "SASL_PLAINTEXT")}, "10.20.30.40:9092"),
    ],
)
def test_a_plaintext_endpoint_is_refused_naming_it(tmp_path: Path, update: dict[str, Any], named: str) -> None:
    with pytest.raises(PlaintextEndpointError, match="inTransit") as refused:
        check_in_transit(settings(tmp_path, **update), config(), None)
    assert named in str(refused.value)


def test_the_api_address_prefect_and_providers_are_checked(tmp_path: Path) -> None:
    sdk = SDKConfiguration.model_validate(
        {
            "authentication": {
                "providers": [
                    {
                        "name": "gateway",
                        "type": "openai",
                        "endpoint": "http://10.9.8.7:8000/v1",
                        "authentication": {"type": "api_key", "configuration": {"apiKeyEnv": "GATEWAY_KEY"}},
                    }
                ]
            }
        }
    )
    with pytest.raises(PlaintextEndpointError) as refused:
        check_in_transit(settings(tmp_path), sdk, None, prefect_api_url="http://10.9.8.6:4200/api", api_bind="0.0.0.0")
    message = str(refused.value)
    assert "the HTTP API's address (AGENTPARTY_API_HOST) 0.0.0.0" in message
    assert "model provider 'gateway' endpoint http://10.9.8.7:8000/v1" in message
    assert "the Prefect API (PREFECT_API_URL) http://10.9.8.6:4200/api" in message


def test_tls_endpoints_pass(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("x")
    s = settings(
        tmp_path,
        database=database("neo4j+s://graph.example.com:7687"),
        kafka=kafka("kafka.example.com:9093", "SASL_SSL"),
        api_tls_cert=cert,
        api_tls_key=key,
    )
    assert (
        check_in_transit(s, config(), None, prefect_api_url="https://prefect.example.com/api", api_bind="0.0.0.0") == []
    )


def test_a_trusted_network_is_accepted_and_audited(tmp_path: Path) -> None:
    s = settings(tmp_path, database=database("bolt://10.20.30.40:7687"), kafka=kafka("10.1.2.3:9092"))
    audit = AuditLog.at(tmp_path)
    with pytest.raises(PlaintextEndpointError, match=r"10\.1\.2\.3:9092"):  # the broker is outside 10.20/16
        check_in_transit(s, config(trustedNetworks=["10.20.0.0/16"]), audit)
    s = s.model_copy(update={"trusted_networks": Settings(trusted_networks="10.1.0.0/16").trusted_networks})
    uses = check_in_transit(s, config(trustedNetworks=["10.20.0.0/16"]), audit)
    assert [(u.endpoint.address, str(u.network)) for u in uses] == [
        ("bolt://10.20.30.40:7687", "10.20.0.0/16"),
        ("10.1.2.3:9092", "10.1.0.0/16"),
    ]
    entries = [e for e in audit.entries() if e.action == "network.trusted"]
    assert [(e.actor, e.target, e.details["network"]) for e in entries] == [
        ("system", "bolt://10.20.30.40:7687", "10.20.0.0/16"),
        ("system", "10.1.2.3:9092", "10.1.0.0/16"),
    ]


def test_in_transit_off_checks_nothing_and_trusted_networks_need_it(tmp_path: Path) -> None:
    base = SDKConfiguration()
    encryption = base.security.encryption.model_copy(update={"in_transit": False})
    off = base.model_copy(update={"security": base.security.model_copy(update={"encryption": encryption})})
    assert check_in_transit(settings(tmp_path, database=database("bolt://10.20.30.40:7687")), off, None) == []
    with pytest.raises(ValidationError, match="trustedNetworks takes effect only with inTransit on"):
        EncryptionConfig.model_validate({"inTransit": False, "trustedNetworks": ["10.0.0.0/8"]})
    with pytest.raises(ValidationError, match=r"trustedNetworks\.0"):
        EncryptionConfig.model_validate({"trustedNetworks": ["not-a-network"]})


def test_tls_settings_come_in_pairs(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="api_tls_key"):
        Settings(home=tmp_path, api_tls_cert=tmp_path / "c.pem")


# -- provider base URLs from the environment, MCP servers by URL -------------------------------------------------


def provider(name: str, kind: str = "openai", endpoint: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": name,
        "type": kind,
        "authentication": {"type": "api_key", "configuration": {"apiKeyEnv": "K"}},
    }
    return {**doc, "endpoint": endpoint} if endpoint else doc


def with_providers(*providers: dict[str, Any], **encryption: Any) -> SDKConfiguration:
    doc: dict[str, Any] = {"authentication": {"providers": list(providers)}}
    return SDKConfiguration.model_validate({**doc, "security": {"encryption": encryption}} if encryption else doc)


@pytest.mark.parametrize("variable", ["OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL"])
def test_a_plaintext_base_url_from_the_environment_is_refused_naming_the_variable(
    tmp_path: Path, variable: str
) -> None:
    environ = {variable: "http://10.9.8.7:8000/v1"}
    with pytest.raises(PlaintextEndpointError) as refused:
        check_in_transit(settings(tmp_path), config(), None, environ=environ)
    message = str(refused.value)
    assert f"model provider base URL ({variable}) http://10.9.8.7:8000/v1 is plaintext" in message
    assert f"use an https:// URL in {variable}" in message
    for allowed in ("https://llm.example.com/v1", "http://127.0.0.1:11434/v1", "http://localhost:8000"):
        assert check_in_transit(settings(tmp_path), config(), None, environ={variable: allowed}) == []


def test_a_base_url_variable_counts_only_where_a_provider_would_read_it(tmp_path: Path) -> None:
    environ = {"OPENAI_BASE_URL": "http://10.9.8.7:8000/v1"}
    every_openai_has_an_endpoint = with_providers(provider("a", endpoint="https://a.example.com/v1"))
    assert check_in_transit(settings(tmp_path), every_openai_has_an_endpoint, None, environ=environ) == []
    only_anthropic = with_providers(provider("c", "anthropic", "https://c.example.com"))
    with pytest.raises(PlaintextEndpointError, match=r"OPENAI_BASE_URL"):  # an OpenAI provider comes from the env
        check_in_transit(settings(tmp_path), only_anthropic, None, environ=environ)
    one_without = with_providers(provider("a", endpoint="https://a.example.com/v1"), provider("b"))
    with pytest.raises(PlaintextEndpointError, match=r"OPENAI_BASE_URL"):  # "b" gets the SDK's variable
        check_in_transit(settings(tmp_path), one_without, None, environ=environ)


def test_a_base_url_variable_in_a_trusted_network_is_accepted_and_audited(tmp_path: Path) -> None:
    audit = AuditLog.at(tmp_path)
    environ = {"ANTHROPIC_BASE_URL": "http://10.20.30.40:8080"}
    uses = check_in_transit(settings(tmp_path), config(trustedNetworks=["10.20.0.0/16"]), audit, environ=environ)
    assert [(u.endpoint.address, str(u.network)) for u in uses] == [("http://10.20.30.40:8080", "10.20.0.0/16")]
    (entry,) = [e for e in audit.entries() if e.action == "network.trusted"]
    assert (entry.target, entry.details["what"]) == (
        "http://10.20.30.40:8080",
        "model provider base URL (ANTHROPIC_BASE_URL)",
    )


def mcp_config(url: str, **encryption: Any) -> SDKConfiguration:
    sdk = config(**encryption)
    # constructed unvalidated: McpServer itself refuses plain http off loopback, so the check is a second line
    server = McpServer.model_construct(name="docs", url=url, command=None)
    return sdk.model_copy(update={"tools": ToolPolicy.model_construct(mcp_servers=[server])})


def test_mcp_servers_by_url_are_checked_naming_the_server(tmp_path: Path) -> None:
    with pytest.raises(PlaintextEndpointError) as refused:
        check_in_transit(settings(tmp_path), mcp_config("http://10.9.8.7:3000/mcp"), None, environ={})
    assert "MCP server 'docs' url (tools.mcpServers) http://10.9.8.7:3000/mcp is plaintext" in str(refused.value)
    audit = AuditLog.at(tmp_path)
    trusted = mcp_config("http://10.20.30.40:3000/mcp", trustedNetworks=["10.20.0.0/16"])
    assert len(check_in_transit(settings(tmp_path), trusted, audit, environ={})) == 1
    assert [e.details["what"] for e in audit.entries()] == ["MCP server 'docs' url (tools.mcpServers)"]
    for allowed in ("https://mcp.example.com/mcp", "http://127.0.0.1:3000/mcp"):
        validated = SDKConfiguration.model_validate({"tools": {"mcpServers": [{"name": "docs", "url": allowed}]}})
        assert check_in_transit(settings(tmp_path), validated, None, environ={}) == []


def test_a_plaintext_state_database_off_loopback_is_refused_and_tls_or_trust_admits_it(tmp_path: Path) -> None:
    plain = "postgresql://agentparty:secret@10.9.8.7:5432/state"
    with pytest.raises(PlaintextEndpointError, match=r"state database \(AGENTPARTY_STATE_DB_URL\)") as refused:
        check_in_transit(settings(tmp_path, state_db_url=plain), config(), None)
    assert "secret" not in str(refused.value) and "sslmode" in str(refused.value)
    assert check_in_transit(settings(tmp_path, state_db_url=plain + "?sslmode=verify-full"), config(), None) == []
    assert check_in_transit(settings(tmp_path, state_db_url="postgresql://a:b@127.0.0.1:5432/s"), config(), None) == []
    uses = check_in_transit(settings(tmp_path, state_db_url=plain), config(trustedNetworks=["10.9.8.0/24"]), None)
    assert [use.endpoint.what for use in uses] == ["the state database (AGENTPARTY_STATE_DB_URL)"]
