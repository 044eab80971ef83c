"""The candidate models a pipeline can train side by side: one entry per architecture. No TensorFlow here.

A candidate is a builder in ``models/model.py`` (hyperparameters in, compiled ``tf_keras`` model out), the
hyperparameters it trains with unless the config or the tuner says otherwise, and the space KerasTuner searches
for it. To add one: write its builder, add an entry below, and list its name in ``candidates.names`` in the
config. Each listed candidate becomes a Trainer (``Trainer_<name>``), an Evaluator and, with the tuner on, a
Tuner of its own; the ``ModelSelector`` component then pushes the best blessed one.

Search spaces take KerasTuner's ``HyperParameters`` object (duck-typed, so this module imports nothing heavy) and
return the trial's ``Hyperparameters``; KerasTuner registers each ``hp.*`` call the first time it is made.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

from models.hyperparameters import Hyperparameters

SearchSpace = Callable[[Any, Hyperparameters], Hyperparameters]


@dataclasses.dataclass(frozen=True)
class Candidate:
    name: str
    # Dotted path of the builder, imported only where a model is built (Trainer, Tuner), never by the config.
    builder: str
    defaults: Hyperparameters
    search_space: SearchSpace

    def build(self, hparams: Hyperparameters) -> Any:
        """The compiled ``tf_keras`` model for ``hparams`` (imports the builder, and so TensorFlow, only now)."""
        module, _, function = self.builder.rpartition(".")
        return getattr(importlib.import_module(module), function)(hparams)


def _layers(hp: Any, max_layers: int, units: list[int]) -> dict[str, Any]:
    """Depth and width of a tower, in the ``num_layers`` + ``units_<i>`` form ``Hyperparameters`` reads back."""
    num_layers = hp.Int("num_layers", 1, max_layers)
    values: dict[str, Any] = {"num_layers": num_layers}
    for index in range(num_layers):
        values[f"units_{index}"] = hp.Choice(f"units_{index}", units)
    return values


def _wide_and_deep_space(hp: Any, base: Hyperparameters) -> Hyperparameters:
    return base.replace(
        {
            **_layers(hp, 3, [16, 32, 64, 128]),
            "learning_rate": hp.Choice("learning_rate", [1e-3, 3e-3, 1e-2]),
            "embedding_dim": hp.Choice("embedding_dim", [4, 8, 16]),
        }
    )


def _dnn_space(hp: Any, base: Hyperparameters) -> Hyperparameters:
    return base.replace(
        {
            **_layers(hp, 4, [32, 64, 128, 256]),
            "learning_rate": hp.Choice("learning_rate", [1e-3, 3e-3, 1e-2]),
            "embedding_dim": hp.Choice("embedding_dim", [4, 8, 16]),
            "dropout": hp.Choice("dropout", [0.0, 0.1, 0.2]),
        }
    )


def _linear_space(hp: Any, base: Hyperparameters) -> Hyperparameters:
    return base.replace({"learning_rate": hp.Choice("learning_rate", [3e-3, 1e-2, 3e-2, 1e-1])})


CANDIDATES: dict[str, Candidate] = {
    candidate.name: candidate
    for candidate in (
        Candidate(
            name="wide_and_deep",
            builder="models.model.build_wide_and_deep",
            defaults=Hyperparameters(hidden_units=(64, 32), embedding_dim=8, learning_rate=0.003),
            search_space=_wide_and_deep_space,
        ),
        Candidate(
            name="dnn",
            builder="models.model.build_dnn",
            defaults=Hyperparameters(hidden_units=(128, 64, 32), embedding_dim=8, learning_rate=0.003, dropout=0.1),
            search_space=_dnn_space,
        ),
        Candidate(
            name="linear",
            builder="models.model.build_linear",
            defaults=Hyperparameters(hidden_units=(), embedding_dim=1, learning_rate=0.03),
            search_space=_linear_space,
        ),
    )
}


def get(name: str) -> Candidate:
    """The registered candidate ``name``; a KeyError naming the known ones otherwise."""
    try:
        return CANDIDATES[name]
    except KeyError:
        raise KeyError(f"unknown candidate model '{name}'; known: {', '.join(sorted(CANDIDATES))}") from None
