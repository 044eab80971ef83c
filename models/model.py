"""Keras model builders for the transformed taxi features: one function per candidate architecture.

Models are built with ``tf_keras`` (Keras 2): TensorFlow Transform's ``TransformFeaturesLayer`` is a Keras 2 layer,
and the exported SavedModel must hold both. Every builder takes the same inputs (all transformed features), takes
a plain ``Hyperparameters`` value so it can be driven by the config, by KerasTuner's best trial or by a unit test
alike, and returns a model compiled with the same loss and metrics, so candidates differ only in architecture.
Candidates are registered in ``models/candidates.py``.
"""

from __future__ import annotations

from typing import Any

import tf_keras as keras

from models import preprocessing
from models.hyperparameters import Hyperparameters


def _inputs() -> tuple[dict[str, Any], list[Any]]:
    """Keras inputs for every transformed feature; returns (all inputs by name, the real-valued ones)."""
    dense = {name: keras.Input(shape=(1,), name=name, dtype="float32") for name in preprocessing.dense_feature_names()}
    categorical = {
        name: keras.Input(shape=(1,), name=name, dtype="int64") for name in preprocessing.categorical_cardinalities()
    }
    return {**dense, **categorical}, list(dense.values())


def _embeddings(inputs: dict[str, Any], dim: int, suffix: str) -> list[Any]:
    """A ``dim``-wide learned embedding of each categorical feature, flattened; layers named ``<feature>_<suffix>``.

    With ``dim=1`` this is a linear model over one-hot categories: the same function as CategoryEncoding + Dense,
    but CategoryEncoding takes seconds to trace per feature here.
    """
    return [
        keras.layers.Flatten()(keras.layers.Embedding(size, dim, name=f"{name}_{suffix}")(inputs[name]))
        for name, size in preprocessing.categorical_cardinalities().items()
    ]


def _tower(tensor: Any, hparams: Hyperparameters) -> Any:
    for index, units in enumerate(hparams.hidden_units):
        tensor = keras.layers.Dense(units, activation="relu", name=f"hidden_{index}")(tensor)
        if hparams.dropout:
            tensor = keras.layers.Dropout(hparams.dropout)(tensor)
    return tensor


def _compiled(inputs: dict[str, Any], logits: Any, hparams: Hyperparameters, name: str) -> keras.Model:
    output = keras.layers.Activation("sigmoid", name="probability")(logits)
    model = keras.Model(inputs=inputs, outputs=output, name=name)
    model.compile(
        # Keras 2's legacy Adam: one fused ``ResourceApplyAdam`` op per variable where the newer Adam builds about
        # ten ops per variable behind tf.distribute's per-variable wrappers. The same update (bias-corrected rate,
        # epsilon outside the square root); ``trainer.train`` hands it dense gradients, which is also what the
        # newer Adam's sparse path computes (it decays every row's moments). Tracing the train step took
        # 0.3-0.6 s per candidate instead of 0.7-2.3 s, and each step 10-20% less (docs/ARCHITECTURE.md).
        optimizer=keras.optimizers.legacy.Adam(learning_rate=hparams.learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.BinaryAccuracy(name="binary_accuracy"), keras.metrics.AUC(name="auc")],
    )
    return model


def build_wide_and_deep(hparams: Hyperparameters) -> keras.Model:
    """A wide (one-hot linear) plus deep (embeddings + DNN) binary classifier of big tippers.

    The wide part memorises frequent category effects; the deep part generalises across combinations of them.
    """
    inputs, dense = _inputs()
    wide = keras.layers.concatenate(_embeddings(inputs, 1, "wide"), name="wide_weights")
    deep = _tower(keras.layers.concatenate([*dense, *_embeddings(inputs, hparams.embedding_dim, "embedding")]), hparams)
    logits = keras.layers.Dense(1, name="logits")(keras.layers.concatenate([wide, deep]))
    return _compiled(inputs, logits, hparams, "wide_and_deep")


def build_dnn(hparams: Hyperparameters) -> keras.Model:
    """A plain deep network: real-valued features and category embeddings through the hidden layers only."""
    inputs, dense = _inputs()
    deep = _tower(keras.layers.concatenate([*dense, *_embeddings(inputs, hparams.embedding_dim, "embedding")]), hparams)
    return _compiled(inputs, keras.layers.Dense(1, name="logits")(deep), hparams, "dnn")


def build_linear(hparams: Hyperparameters) -> keras.Model:
    """Logistic regression over the real-valued features and one-hot categories: the baseline to beat."""
    inputs, dense = _inputs()
    features = keras.layers.concatenate([*dense, *_embeddings(inputs, 1, "wide")], name="linear_inputs")
    return _compiled(inputs, keras.layers.Dense(1, name="logits")(features), hparams, "linear")
