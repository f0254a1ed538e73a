"""``docker-compose.yml`` is a valid Compose file, and its production profile has every piece of a deployment.

No images can be pulled here, so the file is checked with ``docker-compose config``
(Debian's docker-compose, installed by the test setup as the UI tests install
Chromium), which parses it, resolves anchors, profiles and variables, and fails
on anything Compose would refuse.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from support.apt_packages import ensure_binaries

ROOT = Path(__file__).resolve().parents[3]
REQUIRED = {"AGENTPARTY_PG_PASSWORD": "secret", "AGENTPARTY_DATA_KEYS": "k1=c2VjcmV0"}


def _compose(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    binary = ensure_binaries({"docker-compose": "docker-compose"}, tmp_path / "apt.log")["docker-compose"]
    return subprocess.run(
        [binary, "-f", str(ROOT / "docker-compose.yml"), "--profile", "production", *args],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **(env if env is not None else REQUIRED)},
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip


def test_the_production_profile_has_every_piece(tmp_path: Path) -> None:
    done = _compose(tmp_path, "config")
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert {"postgres", "prefect-server", "worker-1", "worker-2", "api", "neo4j", "kafka"} <= set(services)
    for engine in ("worker-1", "worker-2", "api"):
        env = services[engine]["environment"]
        assert env["AGENTPARTY_STATE_DB_URL"].startswith("postgresql://agentparty:secret@postgres:5432/")
        assert env["AGENTPARTY_DATA_KEYS"] == "k1=c2VjcmV0", "every engine container shares the data keys"
        assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    prefect = services["prefect-server"]["environment"]["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert prefect.startswith("postgresql+asyncpg://agentparty:secret@postgres:5432/prefect")
    assert services["worker-1"]["command"] == ["worker"] and services["api"]["command"][0] == "api"


def test_a_missing_password_is_refused_with_its_name(tmp_path: Path) -> None:
    done = _compose(tmp_path, "config", env={"AGENTPARTY_DATA_KEYS": "k1=c2VjcmV0"})
    assert done.returncode != 0
    assert "AGENTPARTY_PG_PASSWORD" in done.stderr
