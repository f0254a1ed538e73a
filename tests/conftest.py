"""Fixtures both lanes use: a private Agent Party home for the session, and the examples folder.

The tests are laid out in two lanes (README "Tests"): ``tests/unit`` needs no
server at all, ``tests/integration`` runs against real servers started once per
session by ``tests/integration/conftest.py``. Nothing here starts a server.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.workflow_docs import EXAMPLES


@pytest.fixture(scope="session", autouse=True)
def agentparty_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's state directory (``AGENTPARTY_HOME``), so that no test writes into the user's ``~/.agentparty``.

    Autouse: a unit-lane run starts no server fixture that would otherwise set it up first.
    """
    home = tmp_path_factory.mktemp("agentparty-home")
    os.environ["AGENTPARTY_HOME"] = str(home)
    os.environ["PREFECT_LOCAL_STORAGE_PATH"] = str(home / "results")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    from agentparty.runtime.settings import get_settings

    get_settings.cache_clear()
    return home


@pytest.fixture
def examples_dir() -> Path:
    return EXAMPLES
