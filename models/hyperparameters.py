"""What one training run can vary, as a plain value: no TensorFlow here.

The config validates candidate hyperparameter overrides against these fields before anything heavy is imported,
and the same value travels from config (or KerasTuner's best trial) to the Trainer and into MLMD.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    """Field names are the keys used in config, tuner search spaces and the ``hyperparameters.json`` record.

    Not every architecture reads every field: a linear model has no hidden layers or embeddings.
    """

    hidden_units: tuple[int, ...] = (64, 32)
    embedding_dim: int = 8
    learning_rate: float = 0.003
    batch_size: int = 256
    dropout: float = 0.0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Hyperparameters:
        """Builds from a dict (config table or tuner result), ignoring keys that are not hyperparameters here.

        ``hidden_units`` may come as a list, or from the tuner as ``num_layers`` + ``units_0``, ``units_1``, ...
        """
        known = {field.name for field in dataclasses.fields(cls)}
        kwargs = {key: value for key, value in values.items() if key in known}
        if "num_layers" in values:
            kwargs["hidden_units"] = tuple(int(values[f"units_{i}"]) for i in range(int(values["num_layers"])))
        if "hidden_units" in kwargs:
            kwargs["hidden_units"] = tuple(int(units) for units in kwargs["hidden_units"])
        return cls(**kwargs)

    def replace(self, values: Mapping[str, Any]) -> Hyperparameters:
        """These hyperparameters with ``values`` (same forms as ``from_mapping``) laid over them."""
        return Hyperparameters.from_mapping({**self.to_dict(), **values})

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, recorded next to each trained model."""
        values = dataclasses.asdict(self)
        values["hidden_units"] = list(self.hidden_units)
        return values


def field_types() -> dict[str, Any]:
    """Each hyperparameter's declared type, for checking config values without building anything."""
    return typing.get_type_hints(Hyperparameters)
