"""Records sealed at rest (``security.encryption.atRest``): a short versioned envelope around AEAD ciphertext.

A sealed record is ``ap1:`` followed by (in bytes) the key id's length and the
key id, the algorithm's code (1 AES-256-GCM, 2 ChaCha20-Poly1305), a 96-bit
random nonce, and the ciphertext with its 128-bit tag; in text columns
everything after ``ap1:`` is base64. The authenticated data is the header plus
the record's *purpose*: the store, table and row it belongs to
(:func:`purpose`), so a record copied into another row, or another store, fails
to open just as an altered one does: a clear :class:`SealedRecordError` naming
the store and the record, never garbage.

Values without the prefix are plaintext: rows written before encryption was
on, or while it was off, still read, and ``agentparty keys reencrypt`` seals
them. One :class:`Sealer` per home and process (:func:`sealer_at`): it loads
the key ring on first use, seals with the newest key, and reloads the ring once
when it meets a key id it does not know (another process rotated).
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from agentparty.runtime.data_keys import DataKey, KeyRing, load_key_ring
from agentparty.runtime.settings import Settings, get_settings

MAGIC = b"ap1:"
TEXT_MAGIC = "ap1:"
NONCE_BYTES = 12
ALGORITHMS: dict[str, int] = {"AES-256-GCM": 1, "ChaCha20-Poly1305": 2}
_CIPHERS: dict[int, type[AESGCM] | type[ChaCha20Poly1305]] = {1: AESGCM, 2: ChaCha20Poly1305}


class SealedRecordError(Exception):
    """A sealed record that cannot be opened: altered, moved to another row, or sealed with an unknown key."""

    def __init__(self, store: str, record: str, reason: str) -> None:
        self.store, self.record, self.reason = store, record, reason
        super().__init__(f"{store}: record {record} cannot be decrypted: {reason}")


def purpose(store: str, table: str, *key: object) -> str:
    """What a record is for, bound into its seal: ``store/table`` and the row's key."""
    return f"{store}/{table}:" + "|".join(str(part) for part in key)


def is_sealed(value: object) -> bool:
    """Whether ``value`` is a sealed record (text or bytes); anything else is plaintext."""
    if isinstance(value, str):
        return value.startswith(TEXT_MAGIC)
    return isinstance(value, bytes) and value.startswith(MAGIC)


@dataclass(frozen=True)
class SealedColumn:
    """A column of a state file whose values are sealed, and the columns that name its row (bound into the seal).

    Each store declares its sealed columns; ``agentparty keys reencrypt`` (``runtime/reencrypt.py``)
    walks the same list, so what a store seals and what re-encryption rewrites cannot drift apart.
    """

    store: str
    file: str
    """The state file, relative to ``<home>/state``."""
    table: str
    column: str
    key: tuple[str, ...]
    binary: bool = False

    def purpose(self, *key: object) -> str:
        return purpose(self.store, f"{self.table}.{self.column}", *key)

    def record(self, *key: object) -> str:
        return f"{self.table}[{'|'.join(str(k) for k in key)}]"

    def seal(self, sealer: Sealer, value: str, *key: object) -> str:
        return sealer.seal_text(value, self.purpose(*key))

    def open(self, sealer: Sealer, value: str, *key: object) -> str:
        return sealer.open_text(value, self.purpose(*key), store=f"{self.store} store", record=self.record(*key))

    def seal_bytes(self, sealer: Sealer, value: bytes, *key: object) -> bytes:
        return sealer.seal(value, self.purpose(*key))

    def open_bytes(self, sealer: Sealer, value: bytes, *key: object) -> bytes:
        return sealer.open(value, self.purpose(*key), store=f"{self.store} store", record=self.record(*key))


class Sealer:
    """Seals and opens the records of one home with its key ring (thread-safe; ciphers built once per key)."""

    def __init__(self, enabled: bool, algorithm: str, keys: Callable[[], KeyRing], rotation: bool = True) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"security.encryption.algorithm: {algorithm!r} is not one of {', '.join(ALGORITHMS)}")
        self.enabled = enabled
        """Whether new writes are sealed (``atRest``); sealed records open either way."""
        self.algorithm = algorithm
        self.rotation = rotation
        self._load = keys
        self._ring: KeyRing | None = None
        self._ciphers: dict[tuple[str, int], AESGCM | ChaCha20Poly1305] = {}
        self._lock = threading.Lock()

    @property
    def ring(self) -> KeyRing:
        with self._lock:
            if self._ring is None:
                self._ring = self._load()
            return self._ring

    def reload(self) -> KeyRing:
        """Read the keys again (after a rotation, here or in another process)."""
        with self._lock:
            self._ring = self._load()
            return self._ring

    def _cipher(self, key: DataKey, code: int) -> AESGCM | ChaCha20Poly1305:
        cipher = self._ciphers.get((key.id, code))
        if cipher is None:
            cipher = self._ciphers[(key.id, code)] = _CIPHERS[code](key.secret)
        return cipher

    # -- bytes ---------------------------------------------------------------------------------

    def seal(self, data: bytes, record_purpose: str, *, force: bool = False) -> bytes:
        """``data`` sealed with the newest key; unchanged when encryption at rest is off (``force``: seal anyway)."""
        if not (self.enabled or force):
            return data
        key, code = self.ring.newest, ALGORITHMS[self.algorithm]
        key_id = key.id.encode()
        header = MAGIC + bytes([len(key_id)]) + key_id + bytes([code])
        nonce = os.urandom(NONCE_BYTES)
        return header + nonce + self._cipher(key, code).encrypt(nonce, data, header + record_purpose.encode())

    def open(self, blob: bytes, record_purpose: str, *, store: str, record: str) -> bytes:
        """The plaintext of a sealed record (a plaintext record as it is); :class:`SealedRecordError` otherwise."""
        if not blob.startswith(MAGIC):
            return blob
        key_id, code, body_at = _header(blob, store, record)
        key = self.ring.get(key_id) or self.reload().get(key_id)
        if key is None:
            raise SealedRecordError(
                store, record, f"sealed with key {key_id!r}, which {self.ring.source} does not hold"
            )
        nonce, ciphertext = blob[body_at : body_at + NONCE_BYTES], blob[body_at + NONCE_BYTES :]
        try:
            return self._cipher(key, code).decrypt(nonce, ciphertext, blob[:body_at] + record_purpose.encode())
        except (InvalidTag, ValueError):
            raise SealedRecordError(
                store, record, "authentication failed: the record was altered, or belongs to another record"
            ) from None

    def key_id(self, value: bytes | str | None) -> str | None:
        """The id of the key a record was sealed with; None for plaintext."""
        if not is_sealed(value):
            return None
        blob = _text_blob(value, "", "") if isinstance(value, str) else value
        assert blob is not None
        return _header(blob, "", "")[0]

    def is_current(self, value: bytes | str | None) -> bool:
        """Whether a record is as this sealer would write it now (``reencrypt`` rewrites the others)."""
        if value is None:
            return True
        if not self.enabled:
            return not is_sealed(value)
        return self.key_id(value) == self.ring.newest.id

    # -- text columns ----------------------------------------------------------------------------

    def seal_text(self, text: str, record_purpose: str, *, force: bool = False) -> str:
        if not (self.enabled or force):
            return text
        sealed = self.seal(text.encode(), record_purpose, force=force)
        return TEXT_MAGIC + base64.b64encode(sealed[len(MAGIC) :]).decode()

    def open_text(self, value: str, record_purpose: str, *, store: str, record: str) -> str:
        if not value.startswith(TEXT_MAGIC):
            return value
        blob = _text_blob(value, store, record)
        return self.open(blob, record_purpose, store=store, record=record).decode()


def _text_blob(value: str, store: str, record: str) -> bytes:
    try:
        return MAGIC + base64.b64decode(value[len(TEXT_MAGIC) :], validate=True)
    except (binascii.Error, ValueError):
        raise SealedRecordError(store, record, "the sealed text is not base64 (altered)") from None


def _header(blob: bytes, store: str, record: str) -> tuple[str, int, int]:
    """(key id, algorithm code, where the nonce starts) of a sealed record."""
    at = len(MAGIC)
    if len(blob) <= at:
        raise SealedRecordError(store, record, "truncated envelope")
    size = blob[at]
    key_end = at + 1 + size
    if len(blob) < key_end + 1 + NONCE_BYTES + 16:
        raise SealedRecordError(store, record, "truncated envelope")
    code = blob[key_end]
    if code not in _CIPHERS:
        raise SealedRecordError(store, record, f"unknown algorithm code {code} (altered)")
    try:
        key_id = blob[at + 1 : key_end].decode("ascii")
    except UnicodeDecodeError:
        raise SealedRecordError(store, record, "the key id is not ASCII (altered)") from None
    return key_id, code, key_end + 1


# -- one sealer per home ---------------------------------------------------------------------------

_sealers: dict[Path, Sealer] = {}
_sealers_lock = threading.Lock()


def sealer_for(settings: Settings) -> Sealer:
    """The sealer of ``settings``: the SDK configuration's ``security.encryption`` and the configured keys."""
    encryption = settings.load_sdk_configuration().security.encryption
    env_keys = settings.data_keys.get_secret_value() if settings.data_keys is not None else None
    home, key_file = settings.home, settings.data_key_file
    return Sealer(
        encryption.at_rest,
        encryption.algorithm,
        lambda: load_key_ring(home, env_keys, key_file),
        rotation=encryption.key_rotation,
    )


def sealer_at(home: Path) -> Sealer:
    """This process's sealer of ``home`` (the process's settings, with that home), made on first use."""
    with _sealers_lock:
        sealer = _sealers.get(home)
        if sealer is None:
            settings = get_settings()
            if settings.home != home:
                settings = settings.model_copy(update={"home": home})
            sealer = _sealers[home] = sealer_for(settings)
        return sealer


def store_home(path: Path) -> Path:
    """The home a state file belongs to (``<home>/state/NAME.sqlite``; else the file's folder)."""
    return path.parent.parent if path.parent.name == "state" else path.parent


def forget_sealers() -> None:
    """Drop every cached sealer: the next use reads the configuration and keys again (tests, ``keys rotate``)."""
    with _sealers_lock:
        _sealers.clear()
