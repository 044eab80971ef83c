"""Trainer and Tuner entry points: ``run_fn`` and ``tuner_fn``, referenced by dotted path from the pipeline.

The exported SavedModel carries three signatures, each applying the Transform graph itself so no caller has to:

- ``serving_default``: serialized ``tf.Example`` strings in, ``probabilities`` out (TF Serving, Evaluator);
- ``serving_raw``: one tensor per raw feature in (JSON-friendly: ``{"fare": [12.5], ...}``), ``probabilities`` out;
- ``transform_features``: serialized examples in, transformed features and label out (TFMA reads the label there).
"""

from __future__ import annotations

import json
import os
from typing import Any

import keras_tuner
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging as absl_logging
from tfx.components.trainer.fn_args_utils import DataAccessor, FnArgs
from tfx.components.tuner.component import TunerFnResult
from tfx_bsl.public import tfxio

from models import candidates, features
from models.hyperparameters import Hyperparameters
from tfx_compat import track_transform_graph

HYPERPARAMETERS_FILE = "hyperparameters.json"


def _dataset(
    file_pattern: list[str],
    data_accessor: DataAccessor,
    transform_output: tft.TFTransformOutput,
    batch_size: int,
    *,
    one_pass: bool = False,
) -> tf.data.Dataset:
    """Batches of (transformed features, label) from the transformed examples: endless, or each example once."""
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(
            batch_size=batch_size, label_key=features.LABEL, num_epochs=1 if one_pass else None, shuffle=not one_pass
        ),
        transform_output.transformed_metadata.schema,
    )


def _eval_dataset(fn_args: FnArgs, transform_output: tft.TFTransformOutput, batch_size: int) -> tf.data.Dataset:
    """The eval split for ``train``: one pass when ``eval_steps`` is unset (TFX turns 0 into None), else endless."""
    return _dataset(
        fn_args.eval_files, fn_args.data_accessor, transform_output, batch_size, one_pass=not fn_args.eval_steps
    )


def _candidate(fn_args: FnArgs) -> candidates.Candidate:
    """The candidate this Trainer/Tuner builds, named by the pipeline in ``custom_config``."""
    return candidates.get(fn_args.custom_config["candidate"])


def resolve_hyperparameters(fn_args: FnArgs) -> Hyperparameters:
    """The candidate's hyperparameters from config, overridden by the Tuner's best trial when one was wired in.

    The pipeline puts the candidate's defaults with the config's overrides already applied in ``custom_config``.
    """
    values: dict[str, Any] = dict((fn_args.custom_config or {}).get("hyperparameters", {}))
    if fn_args.hyperparameters:
        # The Tuner's artifact is KerasTuner's HyperParameters config: {"space": [...], "values": {...}}.
        values.update(fn_args.hyperparameters["values"])
    return _candidate(fn_args).defaults.replace(values)


def _raw_input_signature(transform_output: tft.TFTransformOutput) -> dict[str, tf.TensorSpec]:
    """One ``[batch]`` tensor per model feature, typed as the curated schema parses it."""
    spec = transform_output.raw_feature_spec()
    return {name: tf.TensorSpec(shape=[None], dtype=spec[name].dtype, name=name) for name in features.FEATURES}


def _as_parsed(name: str, value: tf.Tensor, feature_spec: dict[str, Any]) -> tf.Tensor | tf.SparseTensor:
    """Reshapes a ``[batch]`` raw tensor into what ``tf.io.parse_example`` would have produced for that feature."""
    if isinstance(feature_spec[name], tf.io.VarLenFeature):
        batch = tf.shape(value, out_type=tf.int64)[0]
        rows = tf.range(batch, dtype=tf.int64)
        indices = tf.stack([rows, tf.zeros_like(rows)], axis=1)
        return tf.SparseTensor(indices=indices, values=value, dense_shape=tf.stack([batch, 1]))
    return tf.reshape(value, [-1, 1])


def export_serving_model(model: keras.Model, transform_output: tft.TFTransformOutput, export_dir: str) -> None:
    """Saves ``model`` with the Transform graph attached and the three signatures described above.

    Signatures are traced with autograph off: the functions have no Python control flow, and autograph's
    conversion of every Keras layer costs tens of seconds on a small machine.
    """
    # What is saved: the model's weights, the Transform graph, and the signatures that call both. The Keras
    # model itself is not tracked: that makes tf.saved_model.save run Keras's own serialization, which re-traces
    # every layer with autograph (over 10 s here) for Keras-only restore paths nobody uses. Instead the
    # signatures capture the model's variables, tracked through ``model_variables``, and the Transform graph,
    # tracked as tfx_compat.track_transform_graph explains.
    module = tf.Module()
    module.model_variables = list(model.variables)
    transform_graph = track_transform_graph(module, transform_output.transform_savedmodel_dir)
    raw_spec = transform_output.raw_feature_spec()
    serving_spec = {name: spec for name, spec in raw_spec.items() if name in features.FEATURES}
    examples_spec = [tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")]

    @tf.function(input_signature=examples_spec, autograph=False)
    def serve_examples(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        transformed = transform_graph.apply_transform_model(tf.io.parse_example(serialized, serving_spec))
        return {"probabilities": model(transformed, training=False)}

    @tf.function(input_signature=[_raw_input_signature(transform_output)], autograph=False)
    def serve_raw(raw: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        parsed = {name: _as_parsed(name, value, serving_spec) for name, value in raw.items()}
        return {"probabilities": model(transform_graph.apply_transform_model(parsed), training=False)}

    @tf.function(input_signature=examples_spec, autograph=False)
    def transform_features(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        return transform_graph.apply_transform_model(tf.io.parse_example(serialized, raw_spec))

    signatures = {
        "serving_default": serve_examples,
        "serving_raw": serve_raw,
        "transform_features": transform_features,
    }
    tf.saved_model.save(module, export_dir, signatures=signatures)


def train(
    model: keras.Model, train: tf.data.Dataset, train_steps: int, evaluation: tf.data.Dataset, eval_steps: int | None
) -> dict[str, float]:
    """Trains ``model`` for ``train_steps`` batches and returns its metrics on ``eval_steps`` eval batches, or on
    all of ``evaluation`` (a finite dataset then) when ``eval_steps`` is None.

    A plain loop over ``tf.function(autograph=False)`` steps instead of ``model.fit``: the same optimizer, loss
    and metrics the model was compiled with, without autograph converting the Keras internals, which made
    the first step take about 20 s here.
    """
    optimizer, loss_fn = model.optimizer, model.loss

    def as_column(label: tf.Tensor) -> tf.Tensor:
        return tf.reshape(tf.cast(label, tf.float32), [-1, 1])

    @tf.function(autograph=False)
    def train_step(inputs: dict[str, tf.Tensor], label: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = keras.losses.get(loss_fn)(as_column(label), model(inputs, training=True))
            loss = tf.reduce_mean(loss) + tf.add_n(model.losses or [tf.constant(0.0)])
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    metrics = [keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="binary_accuracy")]

    @tf.function(autograph=False)
    def eval_step(inputs: dict[str, tf.Tensor], label: tf.Tensor) -> None:
        prediction = model(inputs, training=False)
        for metric in metrics:
            metric.update_state(as_column(label), prediction)

    @tf.function(autograph=False)
    def results() -> dict[str, tf.Tensor]:
        # Inside a tf.function without autograph, so Keras does not autograph-convert ``result`` (~1 s).
        return {metric.name: metric.result() for metric in metrics}

    # The optimizer's slots are created now, not inside the first ``train_step``: a tf.function that creates
    # variables on its first call is traced twice, and each trace of this step costs ~1.7 s here.
    optimizer.build(model.trainable_variables)
    batches = iter(train)
    for _ in range(train_steps):
        train_step(*next(batches))
    for inputs, label in evaluation.take(eval_steps) if eval_steps else evaluation:
        eval_step(inputs, label)
    return {name: float(value) for name, value in results().items()}


def run_fn(fn_args: FnArgs) -> None:
    """Trains this Trainer's candidate model on the transformed examples and exports it for serving and evaluation."""
    candidate = _candidate(fn_args)
    hparams = resolve_hyperparameters(fn_args)
    transform_output = tft.TFTransformOutput(fn_args.transform_output)
    model = candidate.build(hparams)
    eval_metrics = train(
        model,
        _dataset(fn_args.train_files, fn_args.data_accessor, transform_output, hparams.batch_size),
        fn_args.train_steps,
        _eval_dataset(fn_args, transform_output, hparams.batch_size),
        fn_args.eval_steps,
    )
    absl_logging.info("Trained %s with %s; eval metrics %s", candidate.name, hparams, eval_metrics)
    export_serving_model(model, transform_output, fn_args.serving_model_dir)
    # Recorded beside the model so a run can be traced back to the exact hyperparameters it trained with.
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, HYPERPARAMETERS_FILE), "w") as handle:
        record = {"candidate": candidate.name, "hyperparameters": hparams.to_dict(), "eval_metrics": eval_metrics}
        json.dump(record, handle, indent=2)


class CandidateSearch(keras_tuner.Tuner):
    """KerasTuner search over one candidate's space; trials train with ``train`` above and report its metrics.

    Overriding ``run_trial`` is KerasTuner's documented way to tune any training code. It is needed here too:
    KerasTuner 1.4 runs on Keras 3 and rejects the Keras 2 (tf_keras) models that TFX 1.16 requires.
    """

    def __init__(self, candidate: candidates.Candidate, base: Hyperparameters, **kwargs: Any):
        super().__init__(**kwargs)
        self._candidate = candidate
        self._base = base

    def run_trial(  # KerasTuner's signature; its arguments are untyped there too
        self, trial: Any, x: Any, validation_data: Any, steps_per_epoch: int, validation_steps: int | None, **_: Any
    ) -> dict[str, float]:
        hparams = self._candidate.search_space(trial.hyperparameters, self._base)
        model = self._candidate.build(hparams)
        return train(model, x, steps_per_epoch, validation_data, validation_steps)


def tuner_fn(fn_args: FnArgs) -> TunerFnResult:
    """A random search over this Tuner's candidate's space, with its trial budget from config."""
    settings = (fn_args.custom_config or {}).get("tuner", {})
    candidate = _candidate(fn_args)
    base = candidate.defaults.replace((fn_args.custom_config or {}).get("hyperparameters", {}))
    tuner = CandidateSearch(
        candidate,
        base,
        oracle=keras_tuner.oracles.RandomSearchOracle(
            objective=keras_tuner.Objective("auc", direction="max"),
            max_trials=int(settings.get("max_trials", 4)),
            seed=int(settings.get("seed", 0)),
        ),
        directory=fn_args.working_dir,
        project_name=f"taxi_{candidate.name}",
        overwrite=True,
    )
    transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    return TunerFnResult(
        tuner=tuner,
        fit_kwargs={
            "x": _dataset(fn_args.train_files, fn_args.data_accessor, transform_output, base.batch_size),
            "validation_data": _eval_dataset(fn_args, transform_output, base.batch_size),
            "steps_per_epoch": fn_args.train_steps,
            "validation_steps": fn_args.eval_steps,
        },
    )
