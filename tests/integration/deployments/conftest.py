from __future__ import annotations

from pathlib import Path

import pytest
from support.deploy_support import workflow_folder


@pytest.fixture
def workflow_dir(tmp_path: Path) -> Path:
    return workflow_folder(tmp_path)
