"""Who may send an outbox's rows: exactly one relay per outbox, chosen by a lock; everyone else only appends and wakes it.

Every flow-run process a worker starts emits into the same outbox file, and each
used to relay it as well: two relays read the same undelivered rows and both
sent them, so a consumer that does not de-duplicate saw 22% of the events twice.
Each idempotent producer keeps only *its own* retries unique.

One sender per outbox, rather than per-row claims with leases, because:

- **Order per key.** Kafka keeps a key's events in order only if one producer
  sends them in order. With claims, relay A could hold an agent's ``running``
  while relay B sends its ``completed``; one sender sends in outbox order.
- **No lease timing.** The lock is an ``flock`` on a file next to the outbox: the
  kernel releases it the moment its holder dies, so a standby takes over at once,
  and a holder that is merely slow (paused, swapping) keeps it. A lease that
  expires under a slow holder lets two relays send the same rows.
- **Throughput is not the limit.** One relay sends ~66k events/s from an outbox
  (``bench/events.py``, "relay alone"), and four processes emitting into one
  outbox get theirs delivered no slower than one; a run emits a few dozen.

Appenders wake the sender with a datagram on a Unix socket the sender binds (in
the temp folder: a socket path must stay under ~100 bytes, and a home's path may
not); the sender also polls, so a lost wake-up delays an event by at most the
poll interval. On PostgreSQL (``runtime/outbox_postgres.py``) the same contract
holds across hosts: the slot is a session advisory lock (``pg_try_advisory_lock``)
on a connection of its own, which the server releases when that session ends
(its process died, or its host did), and the wake-up is ``LISTEN``/``NOTIFY``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import socket
import tempfile
import threading
from pathlib import Path
from typing import Protocol

_WAKE = b"!"


class SendingSlot(Protocol):
    """What the relay holds while it sends: an ``flock`` here (:class:`SenderSlot`), an advisory lock on PostgreSQL."""

    def wait(self, timeout: float) -> bool:
        """Sleep until an appender wakes the sender or ``timeout`` passes; True if woken."""
        ...

    def release(self) -> None: ...

    @property
    def released(self) -> bool:
        """True once released, or lost (on PostgreSQL: its session ended, and the lock with it)."""
        ...


def wake_address(outbox_path: Path) -> str:
    """The sender's wake-up socket for this outbox file (short, stable, one per outbox)."""
    digest = hashlib.sha256(str(outbox_path.resolve()).encode()).hexdigest()[:20]
    return os.path.join(tempfile.gettempdir(), f"agentparty-relay-{digest}.sock")


class SenderSlot:
    """Held by the one relay that sends this outbox, from ``try_acquire`` until ``release`` (or its process's end)."""

    def __init__(self, lock_file: int, lock_path: Path, wake: socket.socket, address: str) -> None:
        self._lock_file = lock_file
        self.lock_path = lock_path
        self._wake = wake
        self.address = address
        self._released = False

    @classmethod
    def try_acquire(cls, outbox_path: Path) -> SenderSlot | None:
        """The slot if no other relay (in any process) holds it, else None; never blocks."""
        lock_path = outbox_path.with_name(outbox_path.name + ".sender")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(descriptor)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        try:
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"{os.getpid()}\n".encode())  # who sends, for `agentparty events relay` to say
            address = wake_address(outbox_path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(address)  # a dead sender's socket: we hold the lock, so it is nobody's now
            wake = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            wake.bind(address)
        except BaseException:
            os.close(descriptor)
            raise
        return cls(descriptor, lock_path, wake, address)

    def wait(self, timeout: float) -> bool:
        """Sleep until an appender wakes the sender or ``timeout`` passes; True if woken. Coalesces queued wake-ups."""
        self._wake.settimeout(timeout)
        try:
            self._wake.recv(64)
        except (TimeoutError, OSError):
            return False
        self._wake.setblocking(False)
        with contextlib.suppress(BlockingIOError, OSError):
            while self._wake.recv(64):
                pass
        return True

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        with contextlib.suppress(OSError):
            os.unlink(self.address)
        self._wake.close()
        os.close(self._lock_file)  # closing the descriptor drops the flock: a standby relay takes over

    @property
    def released(self) -> bool:
        return self._released


def current_sender(outbox_path: Path) -> int | None:
    """The pid of the process whose relay sends this outbox now, or None if no relay does."""
    lock_path = outbox_path.with_name(outbox_path.name + ".sender")
    try:
        descriptor = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = os.read(descriptor, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return None
    finally:
        os.close(descriptor)


class SenderWaker:
    """How appenders wake the sender: one datagram, never blocking, lost harmlessly if nobody listens."""

    def __init__(self, outbox_path: Path) -> None:
        self.address = wake_address(outbox_path)
        self._socket: socket.socket | None = None
        self._pid = 0
        self._guard = threading.Lock()

    def wake(self) -> None:
        with self._guard:
            if self._socket is None or self._pid != os.getpid():  # a forked child gets a socket of its own
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.setblocking(False)
                self._pid = os.getpid()
            with contextlib.suppress(OSError):  # no sender (no socket), or its queue is full: it is awake or will poll
                self._socket.sendto(_WAKE, self.address)
