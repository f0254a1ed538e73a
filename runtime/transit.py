"""Encryption in transit (``security.encryption.inTransit``): plaintext endpoints refused at start.

With ``inTransit`` on (the default), every command that starts runs or serves
checks each endpoint the process will talk to, or listen on, before it does:

- the HTTP API's listening address (without a TLS certificate and key),
- the graph database (``bolt://``, ``neo4j://``: ``bolt+s``, ``neo4j+s`` and their
  ``+ssc`` forms are TLS),
- the Kafka cluster (``PLAINTEXT`` and ``SASL_PLAINTEXT``: ``SSL`` and ``SASL_SSL`` are TLS),
- each model provider's ``endpoint`` (``http://``), and the base URL the official SDKs
  read from the environment (``OPENAI_BASE_URL``, ``ANTHROPIC_BASE_URL``,
  ``GOOGLE_GEMINI_BASE_URL``) where a provider of that type would use it (one found in
  the environment, or a configured one without ``endpoint``),
- each MCP server of the SDK configuration (``tools.mcpServers``) reached by URL,
- the Prefect API (``http://``).

A plaintext endpoint is allowed when its host is loopback (the local servers
of ``agentparty up`` all are, so the keyless first command is unaffected), or
when every address it resolves to lies in one of the ``trustedNetworks``
(``security.encryption.trustedNetworks`` and ``AGENTPARTY_TRUSTED_NETWORKS``,
CIDRs). Each use of a trusted network is recorded in the audit log
(``network.trusted``). Anything else is refused with an error naming the
endpoint and what it would need.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlparse

from agentparty.models.sdk_config import SDKConfiguration
from agentparty.runtime.audit_trail import AuditTrail
from agentparty.runtime.provider_auth import BASE_URL_ENV
from agentparty.runtime.settings import Settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
TLS_BOLT_SCHEMES = frozenset({"bolt+s", "bolt+ssc", "neo4j+s", "neo4j+ssc"})
TLS_KAFKA_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})


class PlaintextEndpointError(RuntimeError):
    """An endpoint that would carry data unencrypted while ``inTransit`` is on."""


@dataclass(frozen=True)
class Endpoint:
    what: str
    """Which setting it comes from, for the error: ``graph database (AGENTPARTY_DATABASE__URI)``."""
    address: str
    """As configured: a URL or ``host:port``."""
    host: str
    encrypted: bool
    remedy: str
    """What would encrypt it."""


@dataclass(frozen=True)
class TrustedUse:
    endpoint: Endpoint
    network: Network


def _url_endpoint(what: str, url: str, remedy: str, tls_schemes: Iterable[str] = ("https", "wss")) -> Endpoint:
    parsed = urlparse(url)
    return Endpoint(what, url, parsed.hostname or "", parsed.scheme in set(tls_schemes), remedy)


def endpoints(
    settings: Settings,
    config: SDKConfiguration,
    prefect_api_url: str | None = None,
    api_bind: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Endpoint]:
    """Every endpoint this process is configured to use (``api_bind``: the API's listening host, when serving;
    ``environ``: where the providers' SDKs read their base URLs, ``os.environ`` by default)."""
    found: list[Endpoint] = []
    if api_bind is not None:
        tls = settings.api_tls_cert is not None and settings.api_tls_key is not None
        remedy = "set AGENTPARTY_API_TLS_CERT and AGENTPARTY_API_TLS_KEY, or listen on 127.0.0.1"
        found.append(Endpoint("the HTTP API's address (AGENTPARTY_API_HOST)", api_bind, api_bind, tls, remedy))
    if settings.database is not None:
        remedy = "use bolt+s:// or neo4j+s://"
        found.append(
            _url_endpoint("graph database (AGENTPARTY_DATABASE__URI)", settings.database.uri, remedy, TLS_BOLT_SCHEMES)
        )
    if settings.kafka is not None:
        encrypted = settings.kafka.security_protocol in TLS_KAFKA_PROTOCOLS
        for server in settings.kafka.bootstrap_servers:
            host = urlparse(f"//{server}").hostname or server
            what = f"Kafka bootstrap server (security protocol {settings.kafka.security_protocol})"
            found.append(
                Endpoint(what, server, host, encrypted, "set AGENTPARTY_KAFKA__SECURITY_PROTOCOL to SSL or SASL_SSL")
            )
    if settings.state_db_url is not None:
        url = settings.state_db_url.get_secret_value()
        parsed = urlparse(url)
        ssl = dict(part.split("=", 1) for part in parsed.query.split("&") if "=" in part).get("sslmode", "")
        found.append(
            Endpoint(
                "the state database (AGENTPARTY_STATE_DB_URL)",
                f"{parsed.scheme}://{parsed.hostname}:{parsed.port or 5432}{parsed.path}",  # never the password
                parsed.hostname or "",
                ssl in {"require", "verify-ca", "verify-full"},
                "add ?sslmode=verify-full (or require) to the URL",
            )
        )
    for provider in config.authentication.providers:
        if provider.endpoint:
            what = f"model provider {provider.name!r} endpoint"
            found.append(_url_endpoint(what, provider.endpoint, "use an https:// endpoint"))
    found += _provider_env_endpoints(config, os.environ if environ is None else environ)
    for mcp in config.tools.mcp_servers:
        if mcp.url is not None:
            what = f"MCP server {mcp.name!r} url (tools.mcpServers)"
            found.append(_url_endpoint(what, mcp.url, "use an https:// URL"))
    if prefect_api_url:
        found.append(_url_endpoint("the Prefect API (PREFECT_API_URL)", prefect_api_url, "use an https:// URL"))
    return found


def _provider_env_endpoints(config: SDKConfiguration, environ: Mapping[str, str]) -> list[Endpoint]:
    """The SDKs' base-URL variables that a provider will use: the SDK reads its variable whenever it is given no
    base URL, which is so for a provider type found in the environment and a configured one without ``endpoint``."""
    found: list[Endpoint] = []
    providers = config.authentication.providers
    for provider_type, variable in BASE_URL_ENV.items():
        url = environ.get(variable)
        of_type = [p for p in providers if p.type == provider_type]
        if url and (not of_type or any(not p.endpoint for p in of_type)):
            what = f"model provider base URL ({variable})"
            found.append(_url_endpoint(what, url, f"use an https:// URL in {variable}"))
    return found


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The host's addresses: itself when it is one, else what it resolves to (none when it does not)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def classify(host: str, trusted: Sequence[Network]) -> tuple[bool, Network | None]:
    """(loopback, the trusted network it lies in): a host is loopback or trusted only if all its addresses are."""
    if host == "localhost":
        return True, None
    addresses = _addresses(host)
    if not addresses:
        return False, None
    if all(a.is_loopback for a in addresses):
        return True, None
    for network in trusted:
        if all(a.version == network.version and a in network for a in addresses):
            return False, network
    return False, None


def check_in_transit(
    settings: Settings,
    config: SDKConfiguration,
    audit: AuditTrail | None,
    *,
    prefect_api_url: str | None = None,
    api_bind: str | None = None,
    actor: str = "system",
    environ: Mapping[str, str] | None = None,
) -> list[TrustedUse]:
    """Refuse (:class:`PlaintextEndpointError`) any plaintext endpoint outside loopback and the trusted networks,
    when ``inTransit`` is on; record each trusted network used in the audit log. Returns those uses."""
    if not config.security.encryption.in_transit:
        return []
    trusted = [*config.security.encryption.trusted_networks, *settings.trusted_networks]
    refused: list[str] = []
    uses: list[TrustedUse] = []
    for endpoint in endpoints(settings, config, prefect_api_url, api_bind, environ):
        if endpoint.encrypted:
            continue
        loopback, network = classify(endpoint.host, trusted)
        if loopback:
            continue
        if network is not None:
            uses.append(TrustedUse(endpoint, network))
            continue
        refused.append(
            f"{endpoint.what} {endpoint.address} is plaintext and not loopback: {endpoint.remedy}, "
            "or add its network to security.encryption.trustedNetworks"
        )
    if refused:
        raise PlaintextEndpointError(
            "encryption in transit is on (security.encryption.inTransit): " + "; ".join(refused)
        )
    if audit is not None:
        for use in uses:
            audit.append(
                actor, "network.trusted", target=use.endpoint.address, what=use.endpoint.what, network=str(use.network)
            )
    return uses
