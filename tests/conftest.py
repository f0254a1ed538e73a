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


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``-n 2 --dist loadgroup`` in ``pyproject.toml``) each test file runs on one worker, as
    with ``--dist loadfile``, so a module's fixtures start their servers once and its tests keep their order;
    files that name one ``xdist_group`` share a worker (the two-host tests: ``support.netns.NETNS_GROUP``).
    Runs first: xdist's own hook turns the groups into node ids."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
