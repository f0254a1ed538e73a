"""The local servers of one ``AGENTPARTY_HOME``, placed where the settings say: built here, and only here.

``agentparty up`` / ``down`` / ``status`` / ``run`` / ``api``, the event bus, the
run recorder and the live feed all find the local Prefect server, Bolt graph
server and Kafka-protocol broker through :func:`local_services`;
:func:`use_prefect_api` is the one "``PREFECT_API_URL``, else the local server"
every command that talks to Prefect starts with.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from agentparty.models.config import KafkaConfig
from agentparty.runtime.broker import LocalKafkaBroker
from agentparty.runtime.graph_server import LocalBoltServer
from agentparty.runtime.monitoring_files import monitoring_dir
from agentparty.runtime.monitoring_servers import LocalAlertmanager, LocalPrometheus
from agentparty.runtime.postgres_server import LocalPostgres
from agentparty.runtime.prefect_database import prefect_database
from agentparty.runtime.prefect_server import LocalPrefectServer
from agentparty.runtime.settings import Settings
from agentparty.runtime.trace_viewer import LocalTraceViewer


@dataclass(frozen=True)
class LocalServices:
    prefect: LocalPrefectServer
    graph: LocalBoltServer
    broker: LocalKafkaBroker
    traces: LocalTraceViewer
    """Arize Phoenix, started only by ``agentparty up --traces`` (``runtime/trace_viewer.py``)."""
    postgres: LocalPostgres
    """The home's PostgreSQL cluster (``runtime/postgres_server.py``): Prefect's tables and engine state under
    ``up --state-db postgres``, Phoenix's database under ``up --traces``."""
    prometheus: LocalPrometheus
    alertmanager: LocalAlertmanager
    """Debian's Prometheus and Alertmanager, started only by ``agentparty up --monitoring``."""


def local_services(settings: Settings) -> LocalServices:
    home = settings.home
    postgres = LocalPostgres(home, preferred_port=settings.postgres_port)
    state_db_url = settings.state_db_url.get_secret_value() if settings.state_db_url else None
    return LocalServices(
        prefect=LocalPrefectServer(
            home, port=settings.prefect_port, database=prefect_database(home, state_db_url, postgres)
        ),
        graph=LocalBoltServer(home, port=settings.graph_port, http_port=settings.graph_http_port),
        broker=LocalKafkaBroker(home, port=settings.kafka_port),
        traces=LocalTraceViewer(home, port=settings.traces_port),
        postgres=postgres,
        prometheus=LocalPrometheus(home, monitoring_dir(home), port=settings.prometheus_port),
        alertmanager=LocalAlertmanager(home, monitoring_dir(home), port=settings.alertmanager_port),
    )


def kafka_address(settings: Settings) -> KafkaConfig:
    """The configured cluster, else the local broker's address whether or not it runs yet."""
    if settings.kafka is not None:
        return settings.kafka
    return KafkaConfig(bootstrap_servers=[local_services(settings).broker.bootstrap_servers], group_id="agentparty")


def use_prefect_api(settings: Settings, on_start: Callable[[str], None] | None = None) -> str:
    """The Prefect API this process talks to: ``PREFECT_API_URL``, else the local server, started when needed
    (``on_start`` is told its UI address) and exported to this process and the ones it starts.

    Call it before Prefect reads its settings, which it does once, at import.
    """
    if "PREFECT_API_URL" not in os.environ:
        server = local_services(settings).prefect
        if server.start() and on_start is not None:
            on_start(server.ui_url)
        os.environ.update(server.client_env())
    return os.environ["PREFECT_API_URL"]
