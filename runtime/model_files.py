"""Trained models on disk, and the pointer to the champion: files under the training config's ``save_path``.

Each model is a directory named by its id: ``model.pt`` (a torch state dict),
``card.json`` (what the registry in ``gnn/registry.py`` knows about it) and,
optionally, ``curves.png``. ``champion.json`` names the champion. Cards and the
pointer are replaced atomically (write, then rename), so a reader never sees
half a file. This module knows files, not models: the GNN's types stay in
``gnn/``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

CHAMPION_FILE = "champion.json"
CARD_FILE = "card.json"
SERVED_FILE = "served.json"
CURVES_FILE = "curves.png"
STATE_FILE = "model.pt"


class ModelFiles:
    """One directory of model directories."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, model_id: str) -> Path:
        return self.root / model_id

    def save(self, model_id: str, state: dict[str, Any], card_json: str, curves_png: bytes | None = None) -> Path:
        """A new model's files; an existing id is refused (models never change once saved)."""
        import torch  # deferred: torch takes seconds to import, and most commands never save a model

        directory = self.path(model_id)
        directory.mkdir(parents=True, exist_ok=False)
        torch.save(state, directory / STATE_FILE)
        if curves_png:
            (directory / CURVES_FILE).write_bytes(curves_png)
        atomic_write(directory / CARD_FILE, card_json)
        return directory

    def card_json(self, model_id: str) -> str:
        return (self.path(model_id) / CARD_FILE).read_text()

    def card_jsons(self) -> list[str]:
        """Every saved model's card, oldest first (ids begin with their UTC time)."""
        return [(d / CARD_FILE).read_text() for d in sorted(self.root.iterdir()) if (d / CARD_FILE).is_file()]

    def champion_id(self) -> str | None:
        pointer = self.root / CHAMPION_FILE
        if not pointer.is_file():
            return None
        return str(json.loads(pointer.read_text())["id"])

    def crown(self, model_id: str, promotion: dict[str, Any]) -> None:
        atomic_write(self.root / CHAMPION_FILE, json.dumps({"id": model_id, "promotion": promotion}, indent=2))

    def served_json(self) -> str | None:
        """The serving decision (which method recommends teams), or None before the first promotion wrote one."""
        pointer = self.root / SERVED_FILE
        return pointer.read_text() if pointer.is_file() else None

    def serve(self, decision_json: str) -> None:
        atomic_write(self.root / SERVED_FILE, decision_json)

    def load_state(self, model_id: str) -> dict[str, Any]:
        import torch  # deferred, as in save

        state: dict[str, Any] = torch.load(self.path(model_id) / STATE_FILE, map_location="cpu", weights_only=True)
        return state


def atomic_write(path: Path, text: str) -> None:
    """Write, then rename over: readers see the old file or the new one, never a half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
