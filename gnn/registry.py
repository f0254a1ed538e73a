"""Trained models, and which one is the champion.

Each model is saved (``runtime/model_files.py``) under ``save_path`` (relative
to AGENTPARTY_HOME unless absolute) as ``<UTC time>-<digest prefix>``, with its
:class:`ModelCard`: config, metrics of the model and of every baseline on the
same split, the validation score, the data snapshot hash, the feature scaler,
the training curves, times.

A candidate becomes the champion only if it wins the pooled validation against
every baseline and declared ensemble (or is part of the winning ensemble) *and*
beats the champion *on the candidate's data* (the champion is re-scored on the
same validation window with its own scaler, so a grown graph does not compare
apples with oranges). ``served.json`` (:class:`ServedMethod`) records which
method recommends teams: the model, a baseline, or an ensemble.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agentparty.gnn.data import FeatureScaler
from agentparty.gnn.model import TeamGNN
from agentparty.models.config import GNNTrainingConfig
from agentparty.runtime.model_files import ModelFiles


class ModelCard(BaseModel):
    id: str
    created_at: datetime
    config: dict[str, Any]
    snapshot_digest: str
    embedder: str
    scaler_mean: dict[str, list[float]]
    scaler_std: dict[str, list[float]]
    metrics: dict[str, dict[str, Any]]
    """Method name → its metrics (``MethodMetrics.as_dict``, the pooled selection figures included): the model's
    under its method name (``ncn``, ``graphsage``), every baseline's and every declared ensemble's."""
    validation_score: float | None
    """The figure promotion uses: the selection score (a card from before serving decisions: the pooled pair AUC)."""
    best_baseline: str | None = None
    best_baseline_score: float | None = None
    served: str | None = None
    """The method the pooled validation ranked first when this model was trained (what promotion serves)."""
    epochs: int
    best_epoch: int
    seconds_per_epoch: float
    device: str
    curves: list[dict[str, float]] = Field(default_factory=list)

    def training_config(self) -> GNNTrainingConfig:
        return GNNTrainingConfig.model_validate(self.config)

    def scaler(self) -> FeatureScaler:
        return FeatureScaler(
            mean={k: list(v) for k, v in self.scaler_mean.items()}, std={k: list(v) for k, v in self.scaler_std.items()}
        )


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
    served: str | None = None
    """The method serving after this promotion."""


class ServedMethod(BaseModel):
    """Which method recommends teams: the decision the last promotion took, on one validation figure."""

    method: str
    """A method name: the model's (``ncn``/``graphsage``), a baseline's, or a declared ensemble's."""
    kind: str
    """``model``, ``baseline`` or ``ensemble``."""
    components: list[str] = Field(default_factory=list)
    """An ensemble's methods, in order."""
    weights: list[float] = Field(default_factory=list)
    model_id: str | None = None
    """The champion whose weights the method uses, when it uses the model."""
    selection: dict[str, Any] = Field(default_factory=dict)
    """Its pooled validation figures (``Figures.as_dict``)."""
    decided_at: datetime
    reason: str

    def summary(self) -> str:
        """One line for a recommendation's reasons and the CLI."""
        figures = self.selection
        score, tasks = figures.get("selection_score"), figures.get("selection_tasks")
        shown = "n/a" if score is None else f"{score:.3f}"
        return f"{self.method} (served {self.kind}; selection score {shown} over {tasks} validation tasks)"


class ModelRegistry:
    """The GNN's saved models and champion, over the files of :class:`~agentparty.runtime.model_files.ModelFiles`."""

    def __init__(self, home: Path, config: GNNTrainingConfig | None = None) -> None:
        save_path = Path((config or GNNTrainingConfig()).save_path).expanduser()
        self.files = ModelFiles(save_path if save_path.is_absolute() else home / save_path)
        self.root = self.files.root

    def path(self, model_id: str) -> Path:
        return self.files.path(model_id)

    def save(self, card: ModelCard, model: TeamGNN, curves_png: bytes | None = None) -> Path:
        return self.files.save(card.id, model.state_dict(), card.model_dump_json(indent=2), curves_png)

    def card(self, model_id: str) -> ModelCard:
        return ModelCard.model_validate_json(self.files.card_json(model_id))

    def models(self) -> list[ModelCard]:
        return [ModelCard.model_validate_json(text) for text in self.files.card_jsons()]

    def champion(self) -> ModelCard | None:
        model_id = self.files.champion_id()
        return self.card(model_id) if model_id is not None else None

    def crown(self, card: ModelCard, promotion: Promotion) -> None:
        self.files.crown(card.id, promotion.model_dump())

    def load_state(self, model_id: str) -> dict[str, Any]:
        return self.files.load_state(model_id)

    def served(self) -> ServedMethod | None:
        text = self.files.served_json()
        return ServedMethod.model_validate_json(text) if text else None

    def serve(self, decision: ServedMethod) -> None:
        self.files.serve(decision.model_dump_json(indent=2))


def new_model_id(digest: str, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S%fZ}-{digest[:8]}"


def beats(candidate: float | None, champion: float | None) -> bool:
    """Strictly better; a model with no validation figure never replaces one that has it."""
    if candidate is None or (isinstance(candidate, float) and math.isnan(candidate)):
        return False
    if champion is None or (isinstance(champion, float) and math.isnan(champion)):
        return True
    return candidate > champion + 1e-9
