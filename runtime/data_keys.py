"""The data keys that seal records at rest (``security.encryption``): where they come from, and rotation.

Keys come from one of three places, first match wins:

* ``AGENTPARTY_DATA_KEYS``: ``id=base64key[,id=base64key…]``, oldest first (the
  last one seals new records). For deployments whose secrets live in the
  environment (a secret manager, Kubernetes secrets); rotating means adding a key
  at the end and restarting.
* ``AGENTPARTY_DATA_KEY_FILE``: a key file of your own (the format below).
* the embedded default, ``<home>/keys/data-keys.json``: generated on first use
  (mode 0600, in a 0700 folder) and announced once on stderr, so the keyless first
  command needs no setup. ``agentparty keys rotate`` appends a key to it.

A key file is JSON: ``{"keys": [{"id": "…", "key": "<base64 of 32 bytes>",
"created": "<ISO time>"}]}``, oldest first. Key ids are short random hex strings;
each sealed record names the id of the key that sealed it, so old keys keep
decrypting after a rotation until ``agentparty keys reencrypt`` moved their
records to the newest key.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import secrets
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

KEY_BYTES = 32
"""AES-256-GCM and ChaCha20-Poly1305 both take 256-bit keys."""
DEFAULT_KEY_FILE = Path("keys") / "data-keys.json"
"""The embedded default's key file, relative to ``AGENTPARTY_HOME``."""


class DataKeyError(ValueError):
    """The configured keys cannot be used; the message names the source and the reason (never a key)."""


@dataclass(frozen=True)
class DataKey:
    id: str
    secret: bytes
    created: datetime

    def __repr__(self) -> str:  # never the key itself, in logs or tracebacks
        return f"DataKey(id={self.id!r}, created={self.created.isoformat()})"


@dataclass(frozen=True)
class KeyRing:
    """The keys of one home, oldest first; the newest seals, every one opens."""

    keys: tuple[DataKey, ...]
    source: str
    """Where they came from (``AGENTPARTY_DATA_KEYS``, or the key file's path), for messages."""
    file: Path | None
    """The key file, when they came from one (rotation appends to it)."""

    @property
    def newest(self) -> DataKey:
        return self.keys[-1]

    def get(self, key_id: str) -> DataKey | None:
        return next((key for key in self.keys if key.id == key_id), None)


def new_key() -> DataKey:
    return DataKey(secrets.token_hex(4), secrets.token_bytes(KEY_BYTES), datetime.now(UTC))


def _decode(source: str, key_id: str, text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DataKeyError(f"{source}: key {key_id!r} is not base64") from None
    if len(raw) != KEY_BYTES:
        raise DataKeyError(f"{source}: key {key_id!r} has {len(raw)} bytes; a data key has {KEY_BYTES}")
    return raw


def parse_env_keys(text: str, source: str = "AGENTPARTY_DATA_KEYS") -> KeyRing:
    """``id=base64,id=base64`` (oldest first) as a key ring."""
    keys: list[DataKey] = []
    for index, part in enumerate(p.strip() for p in text.split(",") if p.strip()):
        key_id, sep, encoded = part.partition("=")
        if not sep or not key_id.strip():
            raise DataKeyError(f"{source}: entry {index + 1} is not id=base64key")
        keys.append(DataKey(key_id.strip(), _decode(source, key_id.strip(), encoded.strip()), datetime.min))
    return _ring(keys, source, None)


def _ring(keys: list[DataKey], source: str, file: Path | None) -> KeyRing:
    if not keys:
        raise DataKeyError(f"{source}: no data keys")
    ids = [key.id for key in keys]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise DataKeyError(f"{source}: key ids repeat: {', '.join(duplicates)}")
    return KeyRing(tuple(keys), source, file)


def read_key_file(path: Path) -> KeyRing:
    try:
        document = json.loads(path.read_text())
        entries = document["keys"]
        keys = [
            DataKey(str(e["id"]), _decode(str(path), str(e["id"]), str(e["key"])), datetime.fromisoformat(e["created"]))
            for e in entries
        ]
    except FileNotFoundError:
        raise DataKeyError(f"{path}: the data key file does not exist") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, DataKeyError):
            raise
        raise DataKeyError(f"{path}: not a data key file ({type(exc).__name__}: {exc})") from None
    return _ring(keys, str(path), path)


def _write_key_file(path: Path, keys: tuple[DataKey, ...]) -> None:
    """Write the whole file atomically (a temporary file renamed over it), readable by its owner only."""
    document = {
        "keys": [
            {"id": k.id, "key": base64.b64encode(k.secret).decode(), "created": k.created.isoformat()} for k in keys
        ]
    }
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(document, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class _FileLock:
    """An flock beside the key file: two processes starting at once generate one key, not two."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + ".lock")

    def __enter__(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.descriptor, fcntl.LOCK_EX)

    def __exit__(self, *_: object) -> None:
        fcntl.flock(self.descriptor, fcntl.LOCK_UN)
        os.close(self.descriptor)


def load_key_ring(home: Path, env_keys: str | None, key_file: Path | None) -> KeyRing:
    """The home's keys, from the first configured source; the embedded default's file is generated when missing."""
    if env_keys:
        return parse_env_keys(env_keys)
    if key_file is not None:
        return read_key_file(key_file)
    path = home / DEFAULT_KEY_FILE
    if path.exists():
        return read_key_file(path)
    with _FileLock(path):
        if path.exists():  # another process generated it while this one waited
            return read_key_file(path)
        key = new_key()
        _write_key_file(path, (key,))
    print(
        f"agentparty: generated a local data key ({key.id}) at {path} (mode 0600): it encrypts this home's "
        "records at rest; keep it, and back it up with them (README: Encryption at rest)",
        file=sys.stderr,
    )
    return read_key_file(path)


def rotate_key_file(path: Path) -> DataKey:
    """Append a new key to the key file (it seals from now on; the older ones still open); returns it."""
    with _FileLock(path):
        ring = read_key_file(path)
        key = new_key()
        _write_key_file(path, (*ring.keys, key))
    return key
