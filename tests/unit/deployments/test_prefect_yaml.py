"""The committed prefect.yaml is generated from the examples (the unit half: no server).

That `prefect deploy --all` with it matches `agentparty deploy` is checked against a
real Prefect server in ``tests/integration/deployments/test_prefect_yaml.py``.
"""

from __future__ import annotations

from pathlib import Path

from agentparty.deployments.build import load_sources
from agentparty.deployments.prefect_yaml import render
from agentparty.runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def test_committed_prefect_yaml_is_current(examples_dir: Path) -> None:
    assert Settings().gnn_schedule == "0 2 * * *", "generate the file with the default training schedule"
    expected = render(load_sources([examples_dir]), ROOT, "agentparty", ["examples"])
    assert (ROOT / "prefect.yaml").read_text(encoding="utf-8") == expected, (
        "prefect.yaml is stale: run `agentparty deploy examples --prefect-yaml prefect.yaml`"
    )
