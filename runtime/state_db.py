"""SQLite files under ``AGENTPARTY_HOME/state`` that every process on the machine shares.

Breakers, budgets and templates keep their state this way: WAL so readers do
not block the writer, a 30 s busy timeout so concurrent writers queue instead
of failing, and ``BEGIN IMMEDIATE`` for read-modify-write, which takes the write
lock before reading so two processes can never both act on the same old value.

Connections stay open, one per file, thread and process: opening, closing
(which checkpoints the WAL) and durable commits dominated an agent call's
overhead (``bench/agent_call.py``). ``synchronous=NORMAL`` is the usual WAL
setting: a crashed process loses nothing; a power cut may lose the last
transactions, never corrupt the file.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_S = 30.0
_MAX_OPEN = 32
_local = threading.local()
_writers: dict[Path, threading.RLock] = {}
_writers_guard = threading.Lock()
_lock_files: dict[tuple[int, Path], int] = {}
_inherited: list[sqlite3.Connection] = []
"""Connections a forked child inherited from its parent: kept referenced and never closed in the child, because
closing one drops the parent's POSIX locks on that database (SQLite: never carry a connection across fork)."""


def _after_fork_in_child() -> None:
    cache: dict[tuple[int, Path], sqlite3.Connection] | None = getattr(_local, "connections", None)
    if cache:
        _inherited.extend(cache.values())
        cache.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _writer_lock(path: Path) -> threading.RLock:
    with _writers_guard:
        return _writers.setdefault(path, threading.RLock())


def _lock_file(path: Path) -> int:
    """This process's descriptor of the file next to ``path`` that writers ``flock`` (opened once, kept)."""
    key = (os.getpid(), path)
    with _writers_guard:
        descriptor = _lock_files.get(key)
        if descriptor is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = _lock_files[key] = os.open(
                path.with_name(path.name + ".writer"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
        return descriptor


def _connection(path: Path) -> sqlite3.Connection:
    cache: dict[tuple[int, Path], sqlite3.Connection] | None = getattr(_local, "connections", None)
    if cache is None:
        cache = _local.connections = {}
    key = (os.getpid(), path)  # a forked child must not reuse its parent's connection
    db = cache.get(key)
    if db is None:
        if len(cache) >= _MAX_OPEN:  # many short-lived state dirs (tests): close the oldest
            cache.pop(next(iter(cache))).close()
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=True)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        cache[key] = db
    return db


@contextmanager
def state_db(path: Path, *, write: bool = False) -> Iterator[sqlite3.Connection]:
    """This thread's connection to ``path``. With ``write``, one immediate transaction: committed, or rolled back on error."""
    db = _connection(path)
    if not write:
        yield db
        return
    # Threads of one process take turns here: SQLite's busy handler makes a waiting writer sleep in growing
    # steps (up to 100 ms each), so 100 threads writing at once waited 140 ms at the 99th percentile for
    # 1 ms transactions; behind a lock they wait only for the transactions ahead. Other processes still
    # meet at SQLite's own lock.
    # Processes take turns the same way, on an flock of a file beside the database: the kernel wakes the next
    # writer the moment the lock is free. Four processes appending to one outbox while a fifth marked rows
    # delivered spent most of their time in SQLite's busy sleeps (bench/events.py, relays rows).
    with _writer_lock(path):
        descriptor = _lock_file(path)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
