"""A worker's aggregate of its flow-run processes' metrics (``prometheus_client`` multiprocess mode), kept small.

Why multiprocess mode and not a push: see :mod:`agentparty.runtime.telemetry_metrics`. Each worker gets a
directory of its own, ``AGENTPARTY_HOME/metrics/worker-PID``, made fresh when it starts (the library wants the
directory wiped between runs; two workers on one home must not add up each other's processes), and exported as
``PROMETHEUS_MULTIPROC_DIR`` for the flow-run processes it starts. Each of those writes its samples to files named
by its pid there.

Every flow run is a new process, so the files would grow by one set per run, and a scrape reads them all: after
1,000 runs, several thousand files. So at most once per ``collectionInterval`` a scrape first *compacts*: the files
of processes that have exited are added into one archive file per type (``counter_archive.db``,
``histogram_archive.db``; the latest value of each ``mostrecent`` gauge in ``gauge_mostrecent_archive.db``) and
deleted. Counters and histograms stay exact (they are sums over processes); a scrape then reads the live
processes' files and three archives.

``retentionPeriod`` (hours) bounds what the archive keeps: a series (a metric and its labels) that no exited
process has changed for that long is dropped from it, so per-agent and per-workflow series of what no longer runs
do not pile up forever; and the directories of workers that are gone are deleted once they are that old.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from agentparty.runtime.telemetry_metrics import MULTIPROC_ENV

logger = logging.getLogger(__name__)

_open_mmap: Callable[[str], Any] = MmapedDict  # the library's functions are untyped: typed here once
_read_mmap: Callable[[str], Iterable[tuple[str, float, float, int]]] = MmapedDict.read_all_values_from_file
_merge: Callable[..., Iterable[Metric]] = MultiProcessCollector.merge

ARCHIVE = "archive"
PRUNE_EVERY_S = 600.0
"""How often the archives are checked for series past the retention period (it is hours long: no need to
check on every fold)."""
_ADDITIVE = ("counter", "histogram", "summary")
_MOSTRECENT = "gauge_mostrecent"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _pid_of(path: str) -> int | None:
    stem = os.path.basename(path)[: -len(".db")]
    tail = stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _prefix_of(path: str) -> str:
    return os.path.basename(path).rsplit("_", 1)[0]


def worker_directory(home: Path, retention_s: float, pid: int | None = None) -> Path:
    """A fresh directory for this worker's flow-run processes' metric files; gone workers' older than the
    retention period are deleted on the way."""
    root = home / "metrics"
    root.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in root.glob("worker-*"):
        owner = old.name.removeprefix("worker-")
        if owner.isdigit() and not _alive(int(owner)) and now - old.stat().st_mtime > retention_s:
            shutil.rmtree(old, ignore_errors=True)
    directory = root / f"worker-{pid or os.getpid()}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir()
    return directory


def use_directory(directory: Path) -> None:
    """Let the processes this one starts write their metrics to ``directory`` (they inherit the environment)."""
    os.environ[MULTIPROC_ENV] = str(directory)


def _series_of(key: str) -> str:
    """The series a stored sample belongs to: its metric and labels, without a histogram's ``le``."""
    metric_name, _, labels, _ = json.loads(key)
    return json.dumps([metric_name, {k: v for k, v in labels.items() if k != "le"}], sort_keys=True)


def _write(path: Path, values: dict[str, tuple[float, float]]) -> None:
    """Replace the archive at ``path`` with ``values`` (key → value, timestamp) in one rename."""
    part = path.with_name(path.name + ".part")  # not *.db: no scrape reads it half-written
    part.unlink(missing_ok=True)
    archive = _open_mmap(str(part))
    try:
        for key, (value, timestamp) in values.items():
            archive.write_value(key, value, timestamp)
    finally:
        archive.close()
    os.replace(part, path)


def _read(path: str) -> Iterable[tuple[str, float, float]]:
    try:
        return [(key, value, ts) for key, value, ts, _ in _read_mmap(path)]
    except FileNotFoundError:
        return []


def compact(directory: Path, retention_s: float, now: float | None = None, *, prune: bool = True) -> int:
    """Fold the files of exited processes into the archives and (``prune``) drop series unchanged for
    ``retention_s``; returns how many files were folded."""
    now = time.time() if now is None else now
    dead = [f for f in glob.glob(str(directory / "*.db")) if (pid := _pid_of(f)) is not None and not _alive(pid)]
    for prefix in (*_ADDITIVE, _MOSTRECENT):
        files = [f for f in dead if _prefix_of(f) == prefix]
        if not files and not prune:
            continue
        archive = directory / f"{prefix}_{ARCHIVE}.db"
        values = {key: (value, ts) for key, value, ts in _read(str(archive))}
        for file in files:
            for key, value, ts in _read(file):
                if prefix == _MOSTRECENT:
                    if ts >= values.get(key, (0.0, float("-inf")))[1]:
                        values[key] = (value, ts)
                elif value:
                    values[key] = (values.get(key, (0.0, 0.0))[0] + value, now)
                else:
                    values.setdefault(key, (0.0, now))
        changed = prune and _drop_expired(values, now - retention_s)
        if files or changed:
            _write(archive, values)
            for file in files:
                os.unlink(file)
    return len(dead)


def _drop_expired(values: dict[str, tuple[float, float]], cutoff: float) -> bool:
    """Drop every sample of a series whose newest change is older than ``cutoff``; whether any went."""
    series_of = {key: _series_of(key) for key in values}
    newest: dict[str, float] = {}
    for key, (_, ts) in values.items():
        newest[series_of[key]] = max(newest.get(series_of[key], float("-inf")), ts)
    expired = [key for key in values if newest[series_of[key]] < cutoff]
    for key in expired:
        del values[key]
    return bool(expired)


class CompactingCollector(Collector):
    """The merged samples of every process that wrote to ``directory``, compacting at most once per interval."""

    def __init__(
        self, directory: Path, interval_s: float, retention_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.directory = directory
        self.interval_s = interval_s
        self.retention_s = retention_s
        self.clock = clock
        self._compacted_at = self._pruned_at = float("-inf")
        self._lock = threading.Lock()

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            if self.clock() - self._compacted_at >= self.interval_s:
                self._compacted_at = now = self.clock()
                prune = now - self._pruned_at >= max(self.interval_s, PRUNE_EVERY_S)
                if prune:
                    self._pruned_at = now
                try:
                    compact(self.directory, self.retention_s, prune=prune)
                except OSError as exc:  # a full disk must not cost the scrape: the files are read as they are
                    logger.warning("metrics: compacting %s failed: %s", self.directory, exc)
            files = glob.glob(str(self.directory / "*.db"))
        return _merge(files, accumulate=True)
