"""Engine state shared by two hosts over a network link (network namespaces on a bridge, ``support/netns.py``).

Each host is a network namespace with its own loopback; PostgreSQL listens only
on the bridge's address, so what the hosts share goes over the link. Where
namespaces cannot be made (no ``CAP_NET_ADMIN``) the same processes run on
loopback, and the test prints that it did.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.netns import SERVICES_ADDRESS, Host, netns_available, two_hosts

from agentparty.runtime.breakers import BreakerState, SharedBreakerStore
from agentparty.runtime.budgets import Budget, BudgetLedger
from agentparty.runtime.local_service import free_port
from agentparty.runtime.postgres_server import LocalPostgres
from agentparty.runtime.state_backend import PostgresBackend

TESTS = Path(__file__).resolve().parents[2]
LIMIT, TOKENS, TRIES = 3_000, 70, 40  # 42 calls fit; the two hosts try 80


class _Loopback(Host):
    def command(self, argv: list[str]) -> list[str]:  # type: ignore[override]
        return list(argv)


@pytest.fixture(scope="module")
def hosts_and_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[tuple[Host, Host], str]]:
    """Two hosts and a PostgreSQL URL they both reach: over the bridge, or on loopback where namespaces are refused."""
    home = tmp_path_factory.mktemp("shared-services")
    if not netns_available():
        print("network namespaces unavailable (no CAP_NET_ADMIN): two processes on loopback instead")
        cluster = LocalPostgres(home, preferred_port=free_port())
        cluster.start()
        try:
            yield (_Loopback("A", "127.0.0.1"), _Loopback("B", "127.0.0.1")), cluster.url("postgres", "postgresql")
        finally:
            cluster.remove()
        return
    with two_hosts() as hosts:
        cluster = LocalPostgres(home, host=SERVICES_ADDRESS, preferred_port=free_port(), clients=("10.77.0.0/24",))
        cluster.start()
        try:
            cluster.ensure_database("shared")
            yield hosts, cluster.url("shared", driver="postgresql")
        finally:
            cluster.remove()


def _on_both(hosts: tuple[Host, Host], *args: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    started = [host.popen([sys.executable, "-m", "support.host_work", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=env, cwd=TESTS) for host in hosts]  # fmt: skip
    outputs = []
    for process in started:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err.decode()[-3000:]
        outputs.append(out.decode().strip())
    return outputs


def test_hosts_reach_the_database_only_over_the_link(hosts_and_url: tuple[tuple[Host, Host], str]) -> None:
    hosts, url = hosts_and_url
    if isinstance(hosts[0], _Loopback):
        pytest.skip("loopback fallback: there is no link to check")  # the fallback was announced by the fixture
    probe = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)"
    port = url.rsplit(":", 1)[1].split("/")[0]
    assert hosts[0].run([sys.executable, "-c", probe, SERVICES_ADDRESS, port]).returncode == 0
    assert hosts[0].run([sys.executable, "-c", probe, "127.0.0.1", port]).returncode != 0  # its own loopback


def test_one_user_budget_is_never_overspent_across_two_hosts(hosts_and_url: tuple[tuple[Host, Host], str]) -> None:
    hosts, url = hosts_and_url
    BudgetLedger(PostgresBackend(url))  # the schema, before the race
    granted = [int(line) for line in _on_both(hosts, "spend", url, str(LIMIT), str(TOKENS), str(TRIES))]
    usage = BudgetLedger(PostgresBackend(url)).usage(Budget("user", "shared", LIMIT))
    assert sum(granted) == LIMIT // TOKENS, granted
    assert all(granted), f"both hosts should have been granted some calls: {granted}"
    assert usage.used == sum(granted) * TOKENS <= LIMIT
    assert usage.reserved == 0


def test_one_breaker_opens_from_failures_on_either_host(hosts_and_url: tuple[tuple[Host, Host], str]) -> None:
    hosts, url = hosts_and_url
    SharedBreakerStore(PostgresBackend(url))
    # 6 failures on each host against a threshold of 10: neither host alone opens it; together they do
    states = _on_both(hosts, "fail", url, "model:shared", "6", "10")
    record = SharedBreakerStore(PostgresBackend(url)).read("model:shared")
    assert record.state is BreakerState.OPEN, (states, record)
    assert record.consecutive_failures >= 10
