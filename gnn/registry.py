"""Trained models on disk, and which one is the champion.

Each model is a directory under ``save_path`` (relative to AGENTPARTY_HOME
unless absolute) named ``<UTC time>-<digest prefix>``: ``model.pt`` (the state
dict), ``card.json`` (:class:`ModelCard`: config, metrics of the model and of
every baseline on the same split, the validation score, the data snapshot
hash, the feature scaler, the training curves, times) and ``curves.png``.
``champion.json`` names the champion; it is replaced atomically (write, then
rename), so a reader never sees half a pointer.

A candidate becomes the champion only if its validation score beats the
champion's *on the candidate's data* (the champion is re-scored on the same
split with its own scaler, so a grown graph does not compare apples with
oranges); the best baseline's score is recorded beside both.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field

from agentparty.gnn.data import FeatureScaler
from agentparty.gnn.model import TeamGNN
from agentparty.models.config import GNNTrainingConfig

CHAMPION_FILE = "champion.json"
CURVES_FILE = "curves.png"


class ModelCard(BaseModel):
    id: str
    created_at: datetime
    config: dict[str, Any]
    snapshot_digest: str
    embedder: str
    scaler_mean: dict[str, list[float]]
    scaler_std: dict[str, list[float]]
    metrics: dict[str, dict[str, Any]]
    """Method name → its metrics (``MethodMetrics.as_dict``); the model's own under ``graphsage``."""
    validation_score: float | None
    best_baseline: str | None = None
    best_baseline_score: float | None = None
    epochs: int
    best_epoch: int
    seconds_per_epoch: float
    device: str
    curves: list[dict[str, float]] = Field(default_factory=list)

    def training_config(self) -> GNNTrainingConfig:
        return GNNTrainingConfig.model_validate(self.config)

    def scaler(self) -> FeatureScaler:
        return FeatureScaler(mean={k: list(v) for k, v in self.scaler_mean.items()}, std={k: list(v) for k, v in self.scaler_std.items()})


class Promotion(BaseModel):
    promoted: bool
    candidate: str
    candidate_score: float | None
    champion: str | None
    champion_score: float | None
    """The previous champion's validation score on the candidate's data (re-scored)."""
    best_baseline: str | None
    best_baseline_score: float | None
    reason: str


class ModelRegistry:
    def __init__(self, home: Path, config: GNNTrainingConfig | None = None) -> None:
        save_path = Path((config or GNNTrainingConfig()).save_path).expanduser()
        self.root = save_path if save_path.is_absolute() else home / save_path
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, model_id: str) -> Path:
        return self.root / model_id

    def save(self, card: ModelCard, model: TeamGNN, curves_png: bytes | None = None) -> Path:
        directory = self.path(card.id)
        directory.mkdir(parents=True, exist_ok=False)
        torch.save(model.state_dict(), directory / "model.pt")
        if curves_png:
            (directory / CURVES_FILE).write_bytes(curves_png)
        _atomic_write(directory / "card.json", card.model_dump_json(indent=2))
        return directory

    def card(self, model_id: str) -> ModelCard:
        return ModelCard.model_validate_json((self.path(model_id) / "card.json").read_text())

    def models(self) -> list[ModelCard]:
        cards = []
        for directory in sorted(self.root.iterdir()):
            if (directory / "card.json").is_file():
                cards.append(ModelCard.model_validate_json((directory / "card.json").read_text()))
        return cards

    def champion(self) -> ModelCard | None:
        pointer = self.root / CHAMPION_FILE
        if not pointer.is_file():
            return None
        model_id = json.loads(pointer.read_text())["id"]
        return self.card(model_id)

    def crown(self, card: ModelCard, promotion: Promotion) -> None:
        _atomic_write(self.root / CHAMPION_FILE, json.dumps({"id": card.id, "promotion": promotion.model_dump()}, indent=2))

    def load_state(self, model_id: str) -> dict[str, Any]:
        return torch.load(self.path(model_id) / "model.pt", map_location="cpu", weights_only=True)


def new_model_id(digest: str, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%S%fZ}-{digest[:8]}"


def beats(candidate: float | None, champion: float | None) -> bool:
    """Strictly better; a model with no validation figure never replaces one that has it."""
    if candidate is None or (isinstance(candidate, float) and math.isnan(candidate)):
        return False
    if champion is None or (isinstance(champion, float) and math.isnan(champion)):
        return True
    return candidate > champion + 1e-9


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
