"""A worker's aggregate of its flow-run processes: real child processes write metric files, exit, and are folded
into the archives without losing a count; retentionPeriod drops what stopped changing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from agentparty.runtime.telemetry_metrics import MULTIPROC_ENV
from agentparty.runtime.telemetry_multiproc import CompactingCollector, compact, worker_directory

CHILD = textwrap.dedent(
    """
    import sys
    from prometheus_client import Counter, Gauge, Histogram
    workflow, tokens, left = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    Counter("agentparty_runs_started", "Runs.", ["workflow"]).labels(workflow).inc()
    Counter("agentparty_model_tokens", "Tokens.", ["direction"]).labels("input").inc(tokens)
    Histogram("agentparty_step_duration_seconds", "Steps.", ["kind"], buckets=(0.1, 1.0)).labels("task").observe(0.5)
    Gauge("agentparty_budget_remaining_tokens", "Left.", ["level"], multiprocess_mode="mostrecent").labels("user").set(left)
    """
)
"""A stand-in flow-run process: the same metric kinds and modes the engine's module declares, without loading the
engine (a second per child)."""


def _child(directory: Path, workflow: str, tokens: int, left: int) -> None:
    env = {**os.environ, MULTIPROC_ENV: str(directory)}
    subprocess.run([sys.executable, "-c", CHILD, workflow, str(tokens), str(left)], env=env, check=True, timeout=60)


def _value(directory: Path, name: str, labels: dict[str, str]) -> float | None:
    registry = CollectorRegistry()
    registry.register(CompactingCollector(directory, interval_s=3600, retention_s=3600, clock=lambda: 0.0))
    return registry.get_sample_value(name, labels)


def _read(directory: Path) -> dict[str, float | None]:
    registry = CollectorRegistry()
    registry.register(CompactingCollector(directory, interval_s=0, retention_s=3600))
    return {
        "runs_a": registry.get_sample_value("agentparty_runs_started_total", {"workflow": "a"}),
        "runs_b": registry.get_sample_value("agentparty_runs_started_total", {"workflow": "b"}),
        "tokens": registry.get_sample_value("agentparty_model_tokens_total", {"direction": "input"}),
        "steps": registry.get_sample_value("agentparty_step_duration_seconds_count", {"kind": "task"}),
        "bucket": registry.get_sample_value("agentparty_step_duration_seconds_bucket", {"kind": "task", "le": "1.0"}),
        "left": registry.get_sample_value("agentparty_budget_remaining_tokens", {"level": "user"}),
    }


def test_exited_processes_are_folded_into_archives_without_losing_a_count(tmp_path: Path) -> None:
    directory = worker_directory(tmp_path, retention_s=3600)
    _child(directory, "a", 100, 900)
    _child(directory, "a", 50, 850)
    assert len(list(directory.glob("*.db"))) == 6  # three files per process

    assert _read(directory) == {"runs_a": 2, "runs_b": None, "tokens": 150, "steps": 2, "bucket": 2, "left": 850}
    assert sorted(p.name for p in directory.glob("*.db")) == [
        "counter_archive.db",
        "gauge_mostrecent_archive.db",
        "histogram_archive.db",
    ]
    _child(directory, "b", 25, 825)  # folded into the existing archives on the next scrape
    assert _read(directory) == {"runs_a": 2, "runs_b": 1, "tokens": 175, "steps": 3, "bucket": 3, "left": 825}
    assert len(list(directory.glob("*.db"))) == 3


def test_live_processes_are_read_as_they_are(tmp_path: Path) -> None:
    directory = worker_directory(tmp_path, retention_s=3600)
    _child(directory, "a", 10, 1)
    (directory / f"counter_{os.getpid()}.db").write_bytes((next(directory.glob("counter_*.db"))).read_bytes())
    assert compact(directory, retention_s=3600) == 3  # the exited child's three files, not this live process's
    assert (directory / f"counter_{os.getpid()}.db").exists()
    assert _value(directory, "agentparty_runs_started_total", {"workflow": "a"}) == 2


def test_retention_drops_series_no_exited_process_changed_for_that_long(tmp_path: Path) -> None:
    directory = worker_directory(tmp_path, retention_s=3600)
    _child(directory, "a", 10, 1)
    compact(directory, retention_s=3600)
    _child(directory, "b", 10, 1)
    compact(directory, retention_s=3600, now=time.time() + 1800)  # b changes half an hour later
    compact(directory, retention_s=3600, now=time.time() + 3700)  # a last changed over an hour before this
    assert _value(directory, "agentparty_runs_started_total", {"workflow": "a"}) is None
    assert _value(directory, "agentparty_runs_started_total", {"workflow": "b"}) == 1


def test_a_worker_starts_with_a_fresh_directory_and_removes_gone_workers_old_ones(tmp_path: Path) -> None:
    gone = tmp_path / "metrics" / "worker-999999999"  # no such process
    gone.mkdir(parents=True)
    (gone / "counter_1.db").write_bytes(b"")
    recent = worker_directory(tmp_path, retention_s=3600, pid=12345)
    assert gone.exists()  # younger than the retention period: kept
    os.utime(gone, (time.time() - 7200, time.time() - 7200))
    worker_directory(tmp_path, retention_s=3600, pid=12345)
    assert not gone.exists() and recent.exists() and not any(recent.iterdir())
