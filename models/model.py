"""Keras model builders for the transformed taxi features.

Models are built with ``tf_keras`` (Keras 2): TensorFlow Transform's ``TransformFeaturesLayer`` is a Keras 2 layer,
and the exported SavedModel must hold both. Each builder takes a plain ``Hyperparameters`` value so it can be
driven by the config, by KerasTuner's best trial, or by a unit test alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import tf_keras as keras

from models import preprocessing


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    """What a training run can vary. Field names are the keys used in config, tuner search spaces and MLMD."""

    hidden_units: tuple[int, ...] = (64, 32)
    embedding_dim: int = 8
    learning_rate: float = 0.003
    batch_size: int = 256
    dropout: float = 0.0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Hyperparameters:
        """Builds from a dict (config section or tuner result), ignoring keys that are not hyperparameters here.

        ``hidden_units`` may come as a list, or from the tuner as ``num_layers`` + ``units_0``, ``units_1``, ...
        """
        known = {field.name for field in dataclasses.fields(cls)}
        kwargs = {key: value for key, value in values.items() if key in known}
        if "num_layers" in values:
            kwargs["hidden_units"] = tuple(int(values[f"units_{i}"]) for i in range(int(values["num_layers"])))
        if "hidden_units" in kwargs:
            kwargs["hidden_units"] = tuple(int(units) for units in kwargs["hidden_units"])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, recorded next to each trained model."""
        values = dataclasses.asdict(self)
        values["hidden_units"] = list(self.hidden_units)
        return values


def _inputs() -> tuple[dict[str, Any], list[Any]]:
    """Keras inputs for every transformed feature; returns (all inputs by name, the real-valued ones)."""
    dense = {name: keras.Input(shape=(1,), name=name, dtype="float32") for name in preprocessing.dense_feature_names()}
    categorical = {
        name: keras.Input(shape=(1,), name=name, dtype="int64") for name in preprocessing.categorical_cardinalities()
    }
    return {**dense, **categorical}, list(dense.values())


def build_wide_and_deep(hparams: Hyperparameters) -> keras.Model:
    """A wide (one-hot linear) plus deep (embeddings + DNN) binary classifier of big tippers.

    The wide part memorises frequent category effects; the deep part generalises across combinations of them.
    """
    inputs, dense = _inputs()
    cardinalities = preprocessing.categorical_cardinalities()

    # The wide part is a linear model over one-hot categories, written as 1-wide embeddings: the same
    # function as CategoryEncoding + Dense, but CategoryEncoding takes seconds to trace per feature here.
    wide = keras.layers.concatenate(
        [
            keras.layers.Flatten()(keras.layers.Embedding(size, 1, name=f"{name}_wide")(inputs[name]))
            for name, size in cardinalities.items()
        ],
        name="wide_weights",
    )
    embeddings = [
        keras.layers.Flatten()(
            keras.layers.Embedding(cardinalities[name], hparams.embedding_dim, name=f"{name}_embedding")(inputs[name])
        )
        for name in cardinalities
    ]
    deep = keras.layers.concatenate([*dense, *embeddings], name="deep_inputs")
    for index, units in enumerate(hparams.hidden_units):
        deep = keras.layers.Dense(units, activation="relu", name=f"hidden_{index}")(deep)
        if hparams.dropout:
            deep = keras.layers.Dropout(hparams.dropout)(deep)

    logits = keras.layers.Dense(1, name="logits")(keras.layers.concatenate([wide, deep]))
    output = keras.layers.Activation("sigmoid", name="probability")(logits)
    model = keras.Model(inputs=inputs, outputs=output, name="wide_and_deep")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=hparams.learning_rate, jit_compile=False),
        loss="binary_crossentropy",
        metrics=[keras.metrics.BinaryAccuracy(name="binary_accuracy"), keras.metrics.AUC(name="auc")],
    )
    return model
