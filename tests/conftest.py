"""Shared fixtures. Server fixtures (graph, broker, Prefect) join here as their issues land."""

from __future__ import annotations

from pathlib import Path

import pytest
from workflow_docs import EXAMPLES


@pytest.fixture
def examples_dir() -> Path:
    return EXAMPLES
