"""Persisted step, checkpoint and flow results sealed at rest: a Prefect result serializer.

Prefect persists a result as a JSON record (metadata, and the serializer's bytes
as text) in its result storage, which ``agentparty`` points into
``AGENTPARTY_HOME/results``. :class:`SealedPickleSerializer` is Prefect's
cloudpickle serializer with the pickle sealed by the home's data key
(``runtime/sealing.py``) before it is base64-encoded: the idiomatic extension
point (a ``Serializer`` subclass with its own ``type``, which the record's
metadata names so that any process importing this module reads it back).

The seal's purpose is fixed (``prefect/results``): a serializer does not know the
storage key it writes under, so a result file copied over another one of the
same home opens (as that other result); altering one never does. Results
written before encryption was on are records of Prefect's ``pickle``
serializer and still load through it; ``agentparty keys reencrypt`` seals them
(:func:`reseal_result_file`).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import cloudpickle  # type: ignore[import-untyped]  # ships no type information; Prefect pickles results with it
from prefect.serializers import Serializer
from pydantic import Field

from agentparty.runtime.sealing import Sealer, is_sealed, sealer_at
from agentparty.runtime.settings import get_settings

SERIALIZER_TYPE = "agentparty-sealed-pickle"
RESULT_PURPOSE = "prefect/results:"
STORE = "results"


def _sealer() -> Sealer:
    return sealer_at(get_settings().home)


class SealedPickleSerializer(
    Serializer
):  # not Serializer[Any]: a parametrised pydantic generic Prefect cannot register
    """cloudpickle, sealed with the home's newest data key (plain when ``atRest`` is off), then base64."""

    type: str = Field(default=SERIALIZER_TYPE, frozen=True)

    def dumps(self, obj: Any) -> bytes:
        return base64.b64encode(_sealer().seal(cloudpickle.dumps(obj), RESULT_PURPOSE))

    def loads(self, blob: bytes) -> Any:
        raw = base64.b64decode(blob)
        return cloudpickle.loads(_sealer().open(raw, RESULT_PURPOSE, store=STORE, record="(a persisted result)"))


def reseal_result_file(path: Path, sealer: Sealer) -> bool:
    """Rewrite one result record as the sealer writes now (newest key; plaintext pickles sealed); whether it changed.

    Works on the record's bytes: nothing is unpickled. Files that are not result records are left alone.
    """
    data = path.read_bytes()
    try:
        record = json.loads(data)
    except ValueError:
        return _reseal_bare(path, data, sealer)
    try:
        serializer = record["metadata"]["serializer"]
        kind, text = serializer["type"], record["result"]
    except (KeyError, TypeError):
        return False
    if kind not in (SERIALIZER_TYPE, "pickle") or not isinstance(text, str):
        return False
    raw = base64.b64decode(text)  # PickleSerializer's encodebytes and ours both decode so
    if kind == SERIALIZER_TYPE and sealer.is_current(raw):
        return False
    plain = sealer.open(raw, RESULT_PURPOSE, store=STORE, record=str(path.name))
    record["result"] = base64.b64encode(sealer.seal(plain, RESULT_PURPOSE)).decode()
    record["metadata"]["serializer"] = {"type": SERIALIZER_TYPE}
    temporary = path.with_name(f".{path.name}.reseal")
    temporary.write_text(json.dumps(record))
    temporary.replace(path)
    return True


def _reseal_bare(path: Path, data: bytes, sealer: Sealer) -> bool:
    """A flow's result, which Prefect stores as the serializer's bytes alone (read back with the flow's serializer):
    ours (sealed or, with ``atRest`` off, plain) or, from before, Prefect's pickle serializer's (base64 of a pickle)."""
    try:
        raw = base64.b64decode(data)
    except ValueError:
        return False
    if not (is_sealed(raw) or raw.startswith(b"\x80")) or sealer.is_current(raw):  # 0x80: a pickle's protocol mark
        return False
    plain = sealer.open(raw, RESULT_PURPOSE, store=STORE, record=path.name)
    temporary = path.with_name(f".{path.name}.reseal")
    temporary.write_bytes(base64.b64encode(sealer.seal(plain, RESULT_PURPOSE)))
    temporary.replace(path)
    return True
