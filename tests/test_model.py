"""The Keras model builder and the hyperparameter plumbing between config, tuner and Trainer."""

from __future__ import annotations

import numpy as np
import pytest

from models import preprocessing
from models.model import Hyperparameters, build_wide_and_deep


def test_model_takes_every_transformed_feature_and_outputs_a_probability():
    model = build_wide_and_deep(Hyperparameters(hidden_units=(8, 4), embedding_dim=2))
    expected_inputs = set(preprocessing.dense_feature_names()) | set(preprocessing.categorical_cardinalities())
    assert {tensor.name.split(":")[0] for tensor in model.inputs} == expected_inputs

    batch = {name: np.zeros((5, 1), dtype="float32") for name in preprocessing.dense_feature_names()}
    for name, size in preprocessing.categorical_cardinalities().items():
        batch[name] = np.full((5, 1), size - 1, dtype="int64")  # the highest id must be valid
    probabilities = model.predict_on_batch(batch)
    assert probabilities.shape == (5, 1)
    assert np.all((probabilities >= 0) & (probabilities <= 1))


def test_hidden_layers_follow_the_hyperparameters():
    model = build_wide_and_deep(Hyperparameters(hidden_units=(12, 6, 3)))
    units = [layer.units for layer in model.layers if layer.name.startswith("hidden_")]
    assert units == [12, 6, 3]


def test_tuner_values_map_onto_hyperparameters():
    tuned = Hyperparameters.from_mapping(
        {"num_layers": 2, "units_0": 128, "units_1": 16, "units_2": 64, "learning_rate": 0.01, "embedding_dim": 4}
    )
    assert tuned.hidden_units == (128, 16)  # units_2 belongs to a deeper trial and is ignored
    assert tuned.learning_rate == pytest.approx(0.01)
    assert tuned.embedding_dim == 4
    assert tuned.batch_size == Hyperparameters().batch_size


def test_config_values_map_onto_hyperparameters():
    hparams = Hyperparameters.from_mapping({"hidden_units": [32, 16], "dropout": 0.1, "unrelated": 1})
    assert hparams == Hyperparameters(hidden_units=(32, 16), dropout=0.1)
    assert Hyperparameters.from_mapping(hparams.to_dict()) == hparams
