"""Sealing records at rest (runtime/sealing.py, runtime/data_keys.py): envelopes, tampering, keys and rotation."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from agentparty.runtime.data_keys import (
    DEFAULT_KEY_FILE,
    DataKeyError,
    load_key_ring,
    parse_env_keys,
    read_key_file,
    rotate_key_file,
)
from agentparty.runtime.sealing import MAGIC, SealedRecordError, Sealer, is_sealed


def sealer(home: Path, algorithm: str = "AES-256-GCM", enabled: bool = True) -> Sealer:
    return Sealer(enabled, algorithm, lambda: load_key_ring(home, None, None))


@pytest.mark.parametrize("algorithm", ["AES-256-GCM", "ChaCha20-Poly1305"])
def test_a_record_round_trips_and_names_its_key_and_algorithm(tmp_path: Path, algorithm: str) -> None:
    s = sealer(tmp_path, algorithm)
    blob = s.seal(b"the quarterly numbers", "store/table:row-1")
    assert blob.startswith(MAGIC) and b"quarterly" not in blob
    assert s.key_id(blob) == s.ring.newest.id
    assert s.open(blob, "store/table:row-1", store="store", record="row-1") == b"the quarterly numbers"
    text = s.seal_text("bonjour", "store/table:row-2")
    assert is_sealed(text) and "bonjour" not in text
    assert s.open_text(text, "store/table:row-2", store="store", record="row-2") == "bonjour"


def test_a_flipped_byte_is_a_clear_error_naming_store_and_record(tmp_path: Path) -> None:
    s = sealer(tmp_path)
    blob = bytearray(s.seal(b"payload", "outbox/outbox.value:e1"))
    blob[-5] ^= 0x01
    with pytest.raises(SealedRecordError) as raised:
        s.open(bytes(blob), "outbox/outbox.value:e1", store="outbox store", record="outbox[e1]")
    assert "outbox store" in str(raised.value) and "outbox[e1]" in str(raised.value)
    assert "altered" in str(raised.value)


def test_a_record_moved_to_another_row_does_not_open(tmp_path: Path) -> None:
    s = sealer(tmp_path)
    blob = s.seal(b"alice's memory", "memory/memory_entries.value:alice|k")
    with pytest.raises(SealedRecordError, match="belongs to another record"):
        s.open(blob, "memory/memory_entries.value:bob|k", store="memory store", record="bob|k")


def test_plaintext_from_before_encryption_reads_as_it_is(tmp_path: Path) -> None:
    s = sealer(tmp_path)
    assert s.open(b'{"a": 1}', "p", store="s", record="r") == b'{"a": 1}'
    assert s.open_text('{"a": 1}', "p", store="s", record="r") == '{"a": 1}'


def test_off_writes_plaintext_but_still_opens_sealed_records(tmp_path: Path) -> None:
    on, off = sealer(tmp_path), sealer(tmp_path, enabled=False)
    assert off.seal(b"plain", "p") == b"plain" and off.seal_text("plain", "p") == "plain"
    assert off.open(on.seal(b"sealed", "p"), "p", store="s", record="r") == b"sealed"
    assert is_sealed(off.seal_text("secret", "p", force=True))


def test_the_default_key_is_generated_once_owner_only_and_announced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = load_key_ring(tmp_path, None, None)
    assert "generated a local data key" in capsys.readouterr().err
    path = tmp_path / DEFAULT_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = load_key_ring(tmp_path, None, None)
    assert capsys.readouterr().err == ""  # said once
    assert [k.id for k in again.keys] == [k.id for k in first.keys] and again.newest.secret == first.newest.secret
    assert first.newest.secret.hex() not in repr(first)


def test_keys_from_the_environment_and_their_errors(tmp_path: Path) -> None:
    old, new = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))
    ring = parse_env_keys(f"k-old={old}, k-new={new}")
    assert [k.id for k in ring.keys] == ["k-old", "k-new"] and ring.newest.id == "k-new"
    assert not (tmp_path / DEFAULT_KEY_FILE).exists()
    with pytest.raises(DataKeyError, match="'short' has 3 bytes"):
        parse_env_keys("short=" + base64.b64encode(b"abc").decode())
    with pytest.raises(DataKeyError, match="not id=base64key"):
        parse_env_keys("=" + old)
    with pytest.raises(DataKeyError, match="repeat"):
        parse_env_keys(f"a={old},a={new}")
    with pytest.raises(DataKeyError, match="does not exist"):
        read_key_file(tmp_path / "missing.json")


def test_after_a_rotation_new_records_use_the_newest_key_and_old_ones_still_open(tmp_path: Path) -> None:
    s = sealer(tmp_path)
    before = s.seal(b"old record", "p")
    old_id = s.ring.newest.id
    new = rotate_key_file(tmp_path / DEFAULT_KEY_FILE)
    other_process = sealer(tmp_path)  # reads the rotated file
    after = other_process.seal(b"new record", "p")
    assert other_process.key_id(after) == new.id != old_id
    assert other_process.open(before, "p", store="s", record="r") == b"old record"
    assert not other_process.is_current(before) and other_process.is_current(after)
    # the first sealer has not seen the rotation: it reloads its ring when it meets the unknown key id
    assert s.open(after, "p", store="s", record="r") == b"new record"


def test_a_record_sealed_with_a_key_the_home_lacks_names_the_key(tmp_path: Path) -> None:
    blob = sealer(tmp_path / "a").seal(b"x", "p")
    with pytest.raises(SealedRecordError, match=r"sealed with key '[0-9a-f]+', which .* does not hold"):
        sealer(tmp_path / "b").open(blob, "p", store="conversations store", record="messages[e|m]")
