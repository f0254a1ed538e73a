"""Encryption in transit, from outside: ``agentparty api`` serving TLS (HTTP and ``/ws``) with a certificate the test
generates, checked with curl and ``openssl s_client``; a plaintext address refused at start, naming it; a trusted
network accepted and recorded in the audit log.

Each server is the real command in a process of its own, on the session's Prefect server (``PREFECT_API_URL``).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.sync.client import connect

from agentparty.runtime.local_service import free_port

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

AGENTPARTY = Path(sys.executable).with_name("agentparty")


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost (P-256, one day) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agentparty-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "api-cert.pem", folder / "api-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTPARTY_")}
    return {**env, "AGENTPARTY_HOME": str(home), **extra}


def wait_for_port(process: subprocess.Popen[str], port: int, timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the API exited: {process.communicate()[1][-2000:]}"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"the API did not listen on {port}")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    """``agentparty api`` with TLS on a free port: its https URL, the certificate, the admin key it printed."""
    cert, key = self_signed(tmp_path)
    port = free_port()
    env = environment(
        tmp_path / "home", AGENTPARTY_API_TLS_CERT=str(cert), AGENTPARTY_API_TLS_KEY=str(key), AGENTPARTY_EVENTS="off"
    )
    process = subprocess.Popen(
        [str(AGENTPARTY), "api", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(process, port)
        yield f"https://127.0.0.1:{port}", cert, _printed_key(process)
    finally:
        process.terminate()
        process.wait(30)


def _printed_key(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip().startswith("ap_"):
            return line.strip()
    raise AssertionError("no admin key printed")


def test_the_api_serves_tls_to_curl_openssl_and_a_websocket_client(api: tuple[str, Path, str]) -> None:
    url, cert, admin_key = api
    verified = subprocess.run(
        ["curl", "-sS", "--cacert", str(cert), "-H", f"X-API-Key: {admin_key}", f"{url}/templates"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout) == []
    unverified = subprocess.run(["curl", "-sS", f"{url}/templates"], capture_output=True, text=True, timeout=30)
    assert unverified.returncode == 60, "curl without the certificate must refuse the self-signed server"
    plaintext = subprocess.run(
        ["curl", "-sS", url.replace("https://", "http://") + "/templates"], capture_output=True, text=True, timeout=30
    )
    assert plaintext.returncode != 0 and not plaintext.stdout, "the port must not answer plaintext HTTP"

    host_port = url.removeprefix("https://")
    handshake = subprocess.run(
        ["openssl", "s_client", "-connect", host_port, "-CAfile", str(cert), "-verify_return_error", "-brief"],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert handshake.returncode == 0, handshake.stderr
    assert "Verification: OK" in handshake.stderr and "Protocol version: TLSv1.3" in handshake.stderr

    context = ssl.create_default_context(cafile=str(cert))
    with connect(url.replace("https://", "wss://") + f"/ws?api_key={admin_key}", ssl=context, open_timeout=30) as ws:
        assert ws.protocol.state.name == "OPEN"


def test_a_plaintext_address_is_refused_at_start_naming_it(tmp_path: Path) -> None:
    env = environment(tmp_path / "home", AGENTPARTY_API_HOST="0.0.0.0", AGENTPARTY_EVENTS="off")
    refused = subprocess.run(
        [str(AGENTPARTY), "api", "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 1
    assert "the HTTP API's address (AGENTPARTY_API_HOST) 0.0.0.0 is plaintext and not loopback" in refused.stderr
    graph = environment(
        tmp_path / "home",
        AGENTPARTY_DATABASE__URI="bolt://192.0.2.10:7687",
        AGENTPARTY_DATABASE__USERNAME="neo4j",
        AGENTPARTY_DATABASE__PASSWORD="secret",
    )
    refused = subprocess.run(
        [str(AGENTPARTY), "run", "examples/research-report.yaml"],
        env=graph,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1
    assert "graph database (AGENTPARTY_DATABASE__URI) bolt://192.0.2.10:7687 is plaintext" in refused.stderr


def test_a_trusted_network_is_accepted_and_audited(tmp_path: Path) -> None:
    port = free_port()
    home = tmp_path / "home"
    env = environment(
        home, AGENTPARTY_API_HOST="0.0.0.0", AGENTPARTY_TRUSTED_NETWORKS="0.0.0.0/0", AGENTPARTY_EVENTS="off"
    )
    process = subprocess.Popen(
        [str(AGENTPARTY), "api", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(process, port)
    finally:
        process.terminate()
        process.wait(30)
    lines = (home / "audit" / "audit.jsonl").read_text().splitlines()
    trusted = [json.loads(line) for line in lines if '"network.trusted"' in line]
    assert len(trusted) == 1
    assert trusted[0]["target"] == "0.0.0.0" and trusted[0]["details"]["network"] == "0.0.0.0/0"
