"""Promotion and serving: which method recommends teams, decided on one figure for every method.

:func:`decide` takes a trained challenger's :class:`~agentparty.gnn.selection.Selection`
(the model, every baseline and every declared ensemble on the same pooled
validation tasks) and the champion's figure re-scored on the challenger's
validation window, and says

* which method wins (the highest selection score);
* whether the challenger is crowned: only when it wins, or belongs to the
  winning ensemble, *and* beats the champion on the same window. A challenger
  that loses to a baseline is refused, and that baseline is served;
* what is served: the winner, unless the challenger needed for it lost to the
  champion (then the earlier decision stands).

:func:`served_method` rebuilds the served method on a live graph for the
recommender: the champion's weights for the model, baselines refitted on the
graph, ensembles from both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from agentparty.gnn.baselines import fitted_baselines
from agentparty.gnn.registry import ServedMethod, beats
from agentparty.gnn.scoring import Method
from agentparty.gnn.selection import EnsembleMethod, Selection
from agentparty.gnn.train import PreparedData
from agentparty.models.config import BASELINE_METHODS, GNNTrainingConfig


@dataclass
class Decision:
    promoted: bool
    served: ServedMethod | None
    """None: the earlier serving decision stands."""
    reason: str


def _kind(name: str, config: GNNTrainingConfig) -> str:
    if name == config.method_name:
        return "model"
    return "baseline" if name in BASELINE_METHODS else "ensemble"


def _uses_model(name: str, config: GNNTrainingConfig) -> bool:
    if name == config.method_name:
        return True
    return any(e.name == name and config.method_name in e.methods for e in config.declared_ensembles)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.4f}"


def decide(
    selection: Selection,
    config: GNNTrainingConfig,
    challenger_window: float | None,
    champion_window: float | None,
    has_champion: bool,
    model_id: str,
) -> Decision:
    """The promotion decision (see the module docstring); ``*_window``: selection scores on the current window."""
    winner = selection.winner
    figures = selection.figures[winner]
    challenger = config.method_name
    score = selection.figures[challenger].score
    if math.isnan(figures.score):
        return Decision(False, None, "no validation team to rank methods by: nothing promoted, serving unchanged")
    kind = _kind(winner, config)
    ensemble = next((e for e in config.declared_ensembles if e.name == winner), None)
    served = ServedMethod(
        method=winner,
        kind=kind,
        components=list(ensemble.methods) if ensemble else [],
        weights=selection.weights.get(winner, []),
        model_id=model_id if _uses_model(winner, config) else None,
        selection=figures.as_dict(),
        decided_at=datetime.now(UTC),
        reason="",
    )
    standings = ", ".join(f"{n} {_fmt(selection.figures[n].score)}" for n in selection.ranked)
    top = selection.ranked[0]
    if winner != top:
        error = selection.figures[top].auc_error
        standings += f"; within one standard error ({_fmt(error)}) of {top}, the ensemble is preferred"
    if not _uses_model(winner, config):
        served.reason = (
            f"{winner} wins the pooled validation ({standings}): the challenger {challenger} loses to it, "
            f"is not crowned, and {winner} is served"
        )
        return Decision(False, served, served.reason)
    if has_champion and not beats(challenger_window, champion_window):
        return Decision(
            False,
            None,
            f"{winner} wins the pooled validation ({standings}), but the challenger's {_fmt(challenger_window)} "
            f"does not beat the champion's {_fmt(champion_window)} on the same window: the champion and the "
            "earlier serving decision stand",
        )
    against = f"beats the champion's {_fmt(champion_window)} on the same window" if has_champion else "first model"
    served.reason = (
        f"{winner} wins the pooled validation ({standings}); the challenger ({_fmt(score)} pooled, "
        f"{_fmt(challenger_window)} on the current window) {against}: crowned, and {winner} is served"
    )
    return Decision(True, served, served.reason)


def served_method(served: ServedMethod, model: Method | None, data: PreparedData) -> Method:
    """The served method on a live graph: the model (``model``), a baseline refitted on ``data``, or an ensemble."""
    methods: dict[str, Method] = {m.name: m for m in fitted_baselines(data)}
    if model is not None:
        methods[model.name] = model
    if served.kind == "ensemble":
        missing = [m for m in served.components if m not in methods]
        if missing:
            raise LookupError(f"the served ensemble {served.method!r} needs {missing}, which this home does not have")
        return EnsembleMethod(served.method, [methods[m] for m in served.components], list(served.weights))
    if served.method not in methods:
        raise LookupError(f"the served method {served.method!r} needs a champion model, which this home does not have")
    return methods[served.method]
