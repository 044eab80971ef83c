"""The candidate model builders and the hyperparameter plumbing between config, tuner and Trainer."""

from __future__ import annotations

import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models import preprocessing, trainer
from models.candidates import CANDIDATES
from models.hyperparameters import Hyperparameters
from models.model import build_wide_and_deep
from models.trainer import count_examples, steps_for_epochs, train


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_every_candidate_takes_every_transformed_feature_and_outputs_a_probability(name):
    model = CANDIDATES[name].build(CANDIDATES[name].defaults)
    expected_inputs = set(preprocessing.dense_feature_names()) | set(preprocessing.categorical_cardinalities())
    assert {tensor.name.split(":")[0] for tensor in model.inputs} == expected_inputs

    batch = {name: np.zeros((5, 1), dtype="float32") for name in preprocessing.dense_feature_names()}
    for name, size in preprocessing.categorical_cardinalities().items():
        batch[name] = np.full((5, 1), size - 1, dtype="int64")  # the highest id must be valid
    probabilities = model.predict_on_batch(batch)
    assert probabilities.shape == (5, 1)
    assert np.all((probabilities >= 0) & (probabilities <= 1))


def _layer_kinds(model) -> set[str]:
    kinds = set()
    for layer in model.layers:
        if layer.name.startswith("hidden_"):
            kinds.add("hidden")
        elif layer.name.endswith("_wide"):
            kinds.add("one-hot weights")
        elif layer.name.endswith("_embedding"):
            kinds.add("embeddings")
    return kinds


def test_candidates_are_different_architectures():
    kinds = {name: _layer_kinds(candidate.build(candidate.defaults)) for name, candidate in CANDIDATES.items()}
    assert kinds["wide_and_deep"] == {"hidden", "one-hot weights", "embeddings"}
    assert kinds["dnn"] == {"hidden", "embeddings"}
    assert kinds["linear"] == {"one-hot weights"}
    assert len(CANDIDATES["dnn"].defaults.hidden_units) > len(CANDIDATES["wide_and_deep"].defaults.hidden_units)


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_search_space_trials_are_what_the_trainer_rebuilds_from_the_tuner_values(name):
    """The Trainer rebuilds a tuned model from KerasTuner's recorded values alone, so they must pin the trial."""
    candidate = CANDIDATES[name]
    hp = keras_tuner.HyperParameters()
    first_trial = candidate.search_space(hp, candidate.defaults)
    assert hp.values, "the search space declares nothing to tune"
    assert candidate.defaults.replace(hp.values) == first_trial
    model = candidate.build(first_trial)
    assert [layer.units for layer in model.layers if layer.name.startswith("hidden_")] == list(first_trial.hidden_units)


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


def _transformed_rows(count: int) -> tuple[dict, np.ndarray]:
    rng = np.random.default_rng(7)
    rows = {name: rng.normal(size=(count, 1)).astype("float32") for name in preprocessing.dense_feature_names()}
    for name, size in preprocessing.categorical_cardinalities().items():
        rows[name] = rng.integers(0, size, size=(count, 1)).astype("int64")
    return rows, rng.integers(0, 2, size=count).astype("int64")


def _accuracy(model, rows: dict, labels: np.ndarray) -> float:
    predictions = model.predict_on_batch(rows)[:, 0]
    return float(np.mean((predictions > 0.5) == labels))


def test_train_scores_the_whole_eval_split_once_or_the_batches_asked_for(tmp_path):
    model = CANDIDATES["linear"].build(CANDIDATES["linear"].defaults)
    rows, labels = _transformed_rows(10)
    training = tf.data.Dataset.from_tensor_slices((rows, labels)).batch(4).repeat()
    evaluation = tf.data.Dataset.from_tensor_slices((rows, labels)).batch(4)  # 3 batches: 4 + 4 + 2 rows

    whole_split = train(model, training, 3, evaluation, None)
    assert whole_split["binary_accuracy"] == pytest.approx(_accuracy(model, rows, labels))

    # With curves the split is scored at 3 points, the later ones on the batches the first pass read: the last
    # score is still the whole split's, with the weights training ended with.
    with_curves = train(model, training, 6, evaluation, None, log_dir=str(tmp_path))
    assert with_curves["binary_accuracy"] == pytest.approx(_accuracy(model, rows, labels))

    first_two_batches = train(model, training, 3, evaluation.repeat(), 2)
    first_eight = {name: values[:8] for name, values in rows.items()}
    assert first_two_batches["binary_accuracy"] == pytest.approx(_accuracy(model, first_eight, labels[:8]))


def test_eval_batches_read_before_score_as_the_dataset_they_came_from(tmp_path):
    """A local run's Trainers share the eval split's batches, read once (``_eval_data``): ``train`` scores them as it
    scores the dataset itself, with and without curves, all of them or the first ``eval_steps``."""
    rows, labels = _transformed_rows(10)
    evaluation = tf.data.Dataset.from_tensor_slices((rows, labels)).batch(4)  # 4 + 4 + 2 rows
    batches = tuple(evaluation)
    model = CANDIDATES["linear"].build(CANDIDATES["linear"].defaults)
    no_training = tf.data.Dataset.from_tensor_slices((rows, labels)).batch(4).repeat()

    whole = train(model, no_training.take(1).repeat(), 1, batches, None, log_dir=str(tmp_path))
    assert whole["binary_accuracy"] == pytest.approx(_accuracy(model, rows, labels))
    assert train(model, no_training, 1, batches, None)["binary_accuracy"] == pytest.approx(
        _accuracy(model, rows, labels)
    )
    first_eight = {name: values[:8] for name, values in rows.items()}
    assert train(model, no_training, 1, batches, 2)["binary_accuracy"] == pytest.approx(
        _accuracy(model, first_eight, labels[:8])
    )
    assert train(model, no_training, 1, (), None)["auc"] == 0.0  # an empty eval split scores nothing


def test_the_eval_split_is_read_once_per_files_graph_and_batch_size(monkeypatch):
    monkeypatch.setattr(trainer, "_EVAL_SPLIT", {})
    reads: list[int] = []

    def dataset(size: int):
        def make() -> tf.data.Dataset:
            reads.append(size)
            rows, labels = _transformed_rows(10)
            return tf.data.Dataset.from_tensor_slices((rows, labels)).batch(size)

        return make

    first = trainer._read_once(("eval/*", "transform", 4), dataset(4))
    assert [len(label) for _, label in first] == [4, 4, 2]
    assert trainer._read_once(("eval/*", "transform", 4), dataset(4)) is first and reads == [4]
    other = trainer._read_once(("eval/*", "transform", 5), dataset(5))  # another batch size: read again
    assert [len(label) for _, label in other] == [5, 5] and reads == [4, 5]
    assert list(trainer._EVAL_SPLIT) == [("eval/*", "transform", 5)]  # only the newest kept
    trainer._read_once(("eval/*", "transform", 4), dataset(4))
    assert reads == [4, 5, 4]


def test_trains_with_the_steps_of_kerass_own_adam_on_the_raw_gradients():
    """The candidates train with Keras 2's legacy Adam (one fused op per variable, ``models/model.py``) on dense
    gradients (``train``): the weights after five steps are those Keras's current Adam reaches on the gradients as
    the tape gives them, IndexedSlices for the embeddings."""
    candidate = CANDIDATES["wide_and_deep"]  # embeddings, hidden layers, no dropout: the same steps both ways
    model = candidate.build(candidate.defaults)
    reference = keras.models.clone_model(model)
    reference.set_weights(model.get_weights())
    rows, labels = _transformed_rows(80)
    batches = tf.data.Dataset.from_tensor_slices((rows, labels)).batch(16)

    train(model, batches.repeat(), 5, batches, 1)

    adam, loss_fn = keras.optimizers.Adam(learning_rate=candidate.defaults.learning_rate), keras.losses.get(model.loss)
    sparse = 0
    for inputs, label in batches:
        with tf.GradientTape() as tape:
            prediction = reference(inputs, training=True)
            loss = tf.reduce_mean(loss_fn(tf.reshape(tf.cast(label, tf.float32), [-1, 1]), prediction))
        gradients = tape.gradient(loss, reference.trainable_variables)
        sparse += sum(isinstance(gradient, tf.IndexedSlices) for gradient in gradients)
        adam.apply_gradients(zip(gradients, reference.trainable_variables, strict=True))
    assert sparse > 0
    for ours, keras_own in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(ours, keras_own, rtol=1e-4, atol=1e-6)


def test_epochs_become_the_steps_that_pass_over_the_whole_train_split(tmp_path):
    """``training.epochs``: the Trainer counts the split's records (GZIP TFRecord files, as ExampleGen writes them)."""
    example = tf.train.Example(features=tf.train.Features(feature={"x": tf.train.Feature()})).SerializeToString()
    for shard, records in enumerate((700, 301)):
        with tf.io.TFRecordWriter(str(tmp_path / f"part-{shard}.gz"), options="GZIP") as writer:
            for _ in range(records):
                writer.write(example)
    examples = count_examples([str(tmp_path / "part-*")])
    assert examples == 1001
    assert steps_for_epochs(1, examples, 256) == 4  # 3 full batches and a partial one
    assert steps_for_epochs(2.5, examples, 256) == 10  # ceil(2502.5 / 256)
    assert steps_for_epochs(0.0001, examples, 256) == 1
