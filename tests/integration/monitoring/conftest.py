"""Debian's Prometheus and Alertmanager (with ``promtool`` and ``amtool``), installed by the setup when missing."""

from __future__ import annotations

import pytest
from support.apt_packages import ensure_binaries

BINARIES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
}


@pytest.fixture(scope="session")
def monitoring_binaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Binary name → path; a test error (never a skip) when apt-get cannot install them."""
    return ensure_binaries(BINARIES, tmp_path_factory.mktemp("apt") / "apt-install.log")
