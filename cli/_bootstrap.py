"""What every ``agentparty`` command starts from: the settings, the local servers, the Prefect API, the graph.

Written once here rather than in each command module. Imports of the engine
stay inside the functions: ``agentparty --help`` and ``agentparty validate``
must not pay for importing Prefect, the providers or torch.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from agentparty.models.config import DatabaseConfig, KafkaConfig
    from agentparty.runtime.graph_store import GraphStore
    from agentparty.runtime.local_services import LocalServices
    from agentparty.runtime.settings import Settings


def settings() -> Settings:
    from agentparty.runtime.settings import get_settings

    return get_settings()


def local() -> LocalServices:
    """The local servers of this home (``agentparty up`` starts them)."""
    from agentparty.runtime.local_services import local_services

    return local_services(settings())


def use_prefect(*, quiet: bool = True, patient: bool = False, api_bind: str | None = None) -> str:
    """``PREFECT_API_URL``, else the local Prefect server, started when needed; its API URL.

    ``quiet``: Prefect logs warnings only (set before Prefect reads its settings, once, at import).
    ``patient``: the client retries 10 times, not 5: a SQLite-backed server answers 503 while it waits for
    its write lock, and a worker that gives up marks a run Crashed that would have started a moment later.
    Every command that runs or serves workflows comes here first, so here each endpoint it will use (and
    ``api_bind``, the API's address when it serves) is checked against ``inTransit`` (:func:`check_in_transit`),
    and ``monitoring.logging`` is applied to it and the processes it starts (before Prefect reads it).
    """
    configure_logs(quiet=quiet)
    from agentparty.runtime.local_services import use_prefect_api

    if quiet:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    if patient:
        os.environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", "10")
    try:
        url = use_prefect_api(settings(), lambda ui: typer.echo(f"started the Prefect server at {ui}", err=True))
    except RuntimeError as exc:  # the local server's database cannot be prepared, or it exited: say why
        raise fail(str(exc)) from None
    check_in_transit(url, api_bind)
    return url


def configure_logs(*, quiet: bool = False) -> None:
    """``monitoring.logging`` for this process and the workers' flow runs it starts (``runtime/structured_logs.py``);
    ``quiet``: the command prints a run's progress itself, and its own log lines are warnings and errors only."""
    from agentparty.runtime.structured_logs import configure_logging

    configure_logging(settings().load_sdk_configuration().monitoring.logging, quiet=quiet)


def check_in_transit(prefect_api_url: str | None, api_bind: str | None = None) -> None:
    """Refuse to start on a plaintext endpoint while ``security.encryption.inTransit`` is on (``runtime/transit.py``);
    each trusted network used is audited."""
    from agentparty.runtime.transit import PlaintextEndpointError, check_in_transit

    config = settings()
    sdk = config.load_sdk_configuration()
    try:
        check_in_transit(config, sdk, config.audit_log(sdk), prefect_api_url=prefect_api_url, api_bind=api_bind)
    except PlaintextEndpointError as exc:
        raise fail(str(exc)) from None


def check_providers() -> None:
    """Stop a command that will run agents before it starts anything when a configured provider's credentials
    cannot be resolved (``runtime/provider_auth.py``), naming the provider and the missing variable."""
    from agentparty.runtime.provider_auth import ProviderCredentialsError, check_provider_credentials

    config = settings()
    try:
        check_provider_credentials(config.load_sdk_configuration())
    except ProviderCredentialsError as exc:
        raise fail(f"{config.sdk_config}: {exc}") from None


def graph_config() -> DatabaseConfig:
    """The configured graph database, else the local Bolt server's (running or not)."""
    return settings().database or local().graph.database_config()


def migrate_graph(config: DatabaseConfig, *, explicit: bool = False, assume_yes: bool = False) -> list[int]:
    """Apply the graph schema migrations as ``versioning.migrationStrategy`` allows; the numbers applied now.

    ``explicit``: a person asked for it (``agentparty migrate`` / ``graph migrate``); ``assisted`` then asks first.
    """
    from neo4j import GraphDatabase

    from agentparty.runtime.graph_migrations import migrate
    from agentparty.runtime.graph_server import DATABASE_NAME

    with GraphDatabase.driver(config.uri, auth=(config.username, config.password.get_secret_value())) as driver:
        driver.verify_connectivity()  # fail at once, not after the managed transactions' retries
        applied = migrate(
            driver,
            DATABASE_NAME,
            policy=settings().migration_policy(),
            explicit=explicit,
            confirm=(lambda plan: True) if assume_yes else (lambda plan: typer.confirm(f"{plan}. Apply?")),
        )
    typer.echo(f"graph schema: {'applied migrations ' + ', '.join(map(str, applied)) if applied else 'up to date'}")
    return applied


def graph_store() -> GraphStore:
    """The configured graph, starting and migrating the local Bolt server when it is the one."""
    from agentparty.runtime.run_recorder import configured_store

    if settings().database is None:
        server = local().graph
        if server.start():
            typer.echo(f"started the graph server at {server.uri}", err=True)
    migrate_graph(graph_config())
    return configured_store(settings())


def kafka() -> KafkaConfig:
    """The configured cluster, else the local broker (whether or not it runs: commands then say it is down)."""
    from agentparty.runtime.local_services import kafka_address

    return kafka_address(settings())


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)
