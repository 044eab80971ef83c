"""Trainer and Tuner entry points: ``run_fn`` and ``tuner_fn``, referenced by dotted path from the pipeline.

The exported SavedModel's signatures and functions, each applying the Transform graph itself so no caller has
to, are named and described in ``models/signatures.py``.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import keras_tuner
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging as absl_logging
from tfx.components.trainer.fn_args_utils import DataAccessor, FnArgs
from tfx.components.tuner.component import TunerFnResult
from tfx_bsl.public import tfxio

from models import candidates, features
from models.hyperparameters import Hyperparameters
from models.signatures import (
    EXAMPLES_INPUT,
    EXAMPLES_SIGNATURE,
    SERVING_SIGNATURE,
    TRANSFORM_SIGNATURE,
)
from tfx_compat import load_transform_graph, track_transform_graph

HYPERPARAMETERS_FILE = "hyperparameters.json"
# The training curves ``train`` writes into the ModelRun folder: TensorBoard runs (subfolders) as Keras's TensorBoard
# callback names them, and their scalars' tags. ``runs.training`` reads them back.
TRAIN_LOG, VALIDATION_LOG = "train", "validation"
LOSS_TAG, AUC_TAG = "loss", "auc"
TRAIN_POINTS = 20  # points of the train curve per run: every 15 of the default 300 steps
VALIDATION_POINTS = 3  # passes over the eval batches per run, the last being the final evaluation


Transformer = Callable[[dict[str, tf.Tensor]], tuple[dict[str, tf.Tensor], tf.Tensor]]
# One batch of model inputs and labels, as the datasets below yield them.
Batch = tuple[dict[str, tf.Tensor], tf.Tensor]
# Rows per batch of a whole eval split: the scores are per example, so the batch size changes nothing but the
# cost, which is mostly per batch (parsing, the Transform graph, each eval step's call): at 1.5 million trips
# reading the split took 10.6 s in batches of 256 (docs/ARCHITECTURE.md).
EVAL_BATCH_SIZE = 4096
# The eval split's batches last read (``_read_once``): what they were read from, and the batches.
_EVAL_SPLIT: dict[tuple[Any, ...], tuple[Batch, ...]] = {}


def _dataset(
    file_pattern: list[str],
    data_accessor: DataAccessor,
    transform_output: tft.TFTransformOutput,
    transformer: Transformer,
    batch_size: int,
    *,
    one_pass: bool = False,
) -> tf.data.Dataset:
    """Batches of (transformed features, label) from ExampleGen's raw examples: endless, or each example once.

    Transform does not write transformed examples (``materialize=False`` in pipeline/pipeline.py): each batch is
    parsed with the raw schema and goes through ``transformer`` (``_transformer``) in tf.data's threads.
    """
    raw = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, num_epochs=1 if one_pass else None, shuffle=not one_pass),
        transform_output.raw_metadata.schema,
    )
    return raw.map(transformer, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


@functools.lru_cache(maxsize=4)
def _transformer(transform_graph: Any) -> Transformer:
    """The Transform graph (``tfx_compat.load_transform_graph``'s loader) as a function from a batch of parsed raw
    features to (model inputs, label): the same graph the exported model applies at serving time.

    One ``tf.function`` for the train and eval datasets, and for every Trainer and Tuner of a process that loaded
    the same graph (a local run's, one after another): each ``map`` then calls the one trace, instead of importing
    the Transform graph into a trace of its own (~0.6 s per dataset here).
    """

    @tf.function(autograph=False)
    def transformed(raw_batch: dict[str, tf.Tensor]) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        outputs = dict(transform_graph.apply_transform_model(raw_batch))
        return outputs, outputs.pop(features.LABEL)

    return transformed


def _eval_data(
    fn_args: FnArgs, transform_output: tft.TFTransformOutput, transformer: Transformer, batch_size: int
) -> tf.data.Dataset | tuple[Batch, ...]:
    """The eval split for ``train``: an endless dataset of ``batch_size`` batches when ``eval_steps`` is set (TFX
    turns 0 into None), else the whole split in batches of ``EVAL_BATCH_SIZE``, read once per process for every
    Trainer and Tuner that asks for the same files and Transform graph (a local run's candidates, one after
    another)."""
    if fn_args.eval_steps:
        return _dataset(fn_args.eval_files, fn_args.data_accessor, transform_output, transformer, batch_size)
    key = (tuple(fn_args.eval_files), transform_output.transform_savedmodel_dir)
    return _read_once(
        key,
        lambda: _dataset(
            fn_args.eval_files, fn_args.data_accessor, transform_output, transformer, EVAL_BATCH_SIZE, one_pass=True
        ),
    )


def _read_once(key: tuple[Any, ...], dataset: Callable[[], tf.data.Dataset]) -> tuple[Batch, ...]:
    """The batches of the finite ``dataset()``, read, parsed and transformed the first time ``key`` is asked for;
    only the newest split is kept (at 1.5 million trips 300,000 transformed examples, tens of MB). ExampleGen
    writes each execution's files under a folder of its own, so the same files are the same examples."""
    batches = _EVAL_SPLIT.get(key)
    if batches is None:
        _EVAL_SPLIT.clear()
        batches = _EVAL_SPLIT[key] = tuple(dataset())
    return batches


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


def export_serving_model(
    model: keras.Model, transform_output: tft.TFTransformOutput, transform_graph: Any, export_dir: str
) -> None:
    """Saves ``model`` with the Transform graph (``transform_graph``, the loader the Trainer's datasets used)
    attached and the three signatures described above.

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
    track_transform_graph(module, transform_graph)
    raw_spec = transform_output.raw_feature_spec()
    serving_spec = {name: spec for name, spec in raw_spec.items() if name in features.FEATURES}
    examples_spec = [tf.TensorSpec(shape=[None], dtype=tf.string, name=EXAMPLES_INPUT)]

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
        SERVING_SIGNATURE: serve_raw,
        EXAMPLES_SIGNATURE: serve_examples,
        TRANSFORM_SIGNATURE: transform_features,
    }
    tf.saved_model.save(module, export_dir, signatures=signatures)


def train(
    model: keras.Model,
    train: tf.data.Dataset,
    train_steps: int,
    evaluation: tf.data.Dataset | Sequence[Batch],
    eval_steps: int | None,
    log_dir: str | None = None,
) -> dict[str, float]:
    """Trains ``model`` for ``train_steps`` batches and returns its metrics on ``eval_steps`` eval batches, or on
    all of ``evaluation`` (a finite dataset then, or its batches already read) when ``eval_steps`` is None.

    A plain loop over ``tf.function(autograph=False)`` steps instead of ``model.fit``: the same optimizer, loss
    and metrics the model was compiled with, without autograph converting the Keras internals, which made
    the first step take about 20 s here.

    With ``log_dir``, it also writes training curves there as TensorBoard scalars (``loss`` and ``auc``), as
    TFX's templates do with Keras's TensorBoard callback, so the run explorer can draw them: ``train/`` gets the
    mean of the batches since the previous point, about ``TRAIN_POINTS`` times; ``validation/`` gets the same
    eval batches' scores ``VALIDATION_POINTS`` times, the last of them the returned metrics. Tuner trials pass no
    ``log_dir`` and pay nothing for it.
    """
    optimizer, loss_fn = model.optimizer, keras.losses.get(model.loss)
    with_curves = log_dir is not None
    # With curves and no eval_steps, the whole eval split is scored VALIDATION_POINTS times: read, parsed and
    # transformed in the first pass, whose batches are kept for the others (at 1.5 million trips 300,000
    # transformed examples, tens of MB); batches already read (``_read_once``) are kept from the start. Kept as
    # tensors rather than behind ``Dataset.cache()``: each new iterator over the dataset instantiates its
    # functions, the Transform graph among them (~90 ms here).
    read = not isinstance(evaluation, tf.data.Dataset)
    kept: list[Batch] = list(evaluation)[:eval_steps] if read else []
    keep = with_curves and not eval_steps

    def as_column(label: tf.Tensor) -> tf.Tensor:
        return tf.reshape(tf.cast(label, tf.float32), [-1, 1])

    def dense(gradient: tf.Tensor | tf.IndexedSlices) -> tf.Tensor:
        # An embedding's gradient comes as IndexedSlices; the legacy Adam's fused op takes it dense (the same
        # update: Adam decays every row's moments either way), its sparse path would build ten ops per variable.
        return tf.convert_to_tensor(gradient) if isinstance(gradient, tf.IndexedSlices) else gradient

    def regularization() -> tf.Tensor:
        return tf.add_n(model.losses or [tf.constant(0.0)])

    # The training curve's running values; updated inside the step only when they are logged.
    train_loss, train_auc = keras.metrics.Mean(name=LOSS_TAG), keras.metrics.AUC(name=AUC_TAG)

    @tf.function(autograph=False)
    def train_step(inputs: dict[str, tf.Tensor], label: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            prediction = model(inputs, training=True)
            loss = tf.reduce_mean(loss_fn(as_column(label), prediction)) + regularization()
        gradients = [dense(gradient) for gradient in tape.gradient(loss, model.trainable_variables)]
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        if with_curves:
            train_loss.update_state(loss)
            train_auc.update_state(as_column(label), prediction)
        return loss

    metrics = [keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="binary_accuracy")]
    eval_loss = keras.metrics.Mean(name=LOSS_TAG)

    # Traced for the batches' spec with a batch dimension of None: traced for the first batch's shape, it would
    # be traced again for the split's last, partial batch (~0.1-0.3 s per candidate).
    @tf.function(autograph=False, input_signature=_batch_spec(evaluation))
    def eval_step(inputs: dict[str, tf.Tensor], label: tf.Tensor) -> None:
        prediction = model(inputs, training=False)
        for metric in metrics:
            metric.update_state(as_column(label), prediction)
        if with_curves:
            eval_loss.update_state(loss_fn(as_column(label), prediction) + regularization())

    @tf.function(autograph=False)
    def results_of(metrics: tuple[keras.metrics.Metric, ...]) -> dict[str, tf.Tensor]:
        # Inside a tf.function without autograph, so Keras does not autograph-convert ``result`` (~1 s).
        return {metric.name: metric.result() for metric in metrics}

    def results(*metrics: keras.metrics.Metric) -> dict[str, float]:
        return {name: float(value) for name, value in results_of(metrics).items()}

    def evaluate() -> dict[str, float]:
        for metric in [*metrics, eval_loss]:
            metric.reset_state()
        first_pass = not kept and not read
        for inputs, label in kept or (evaluation.take(eval_steps) if eval_steps else evaluation):
            eval_step(inputs, label)
            if keep and first_pass:
                kept.append((inputs, label))
        return results(*metrics)

    # The optimizer's slots are created now, not inside the first ``train_step``: a tf.function that creates
    # variables on its first call is traced twice. (Keras 2's legacy optimizers have no public ``build``; this is
    # what their ``apply_gradients`` and Keras's own weight loading call.)
    optimizer._create_all_weights(model.trainable_variables)
    train_every = max(1, train_steps // TRAIN_POINTS)
    validate_every = max(1, math.ceil(train_steps / VALIDATION_POINTS))
    logs = [TRAIN_LOG, VALIDATION_LOG] if with_curves else []
    writers = {log: tf.summary.create_file_writer(os.path.join(log_dir, log)) for log in logs}

    def write(log: str, step: int, values: dict[str, float]) -> None:
        with writers[log].as_default(step=step):
            for tag, value in values.items():
                tf.summary.scalar(tag, value)

    def write_validation(step: int, scores: dict[str, float]) -> None:
        write(VALIDATION_LOG, step, {**results(eval_loss), AUC_TAG: scores["auc"]})

    batches = iter(train)
    for step in range(1, train_steps + 1):
        train_step(*next(batches))
        if with_curves and (step % train_every == 0 or step == train_steps):
            write(TRAIN_LOG, step, results(train_loss, train_auc))
            train_loss.reset_state()
            train_auc.reset_state()
        if with_curves and step % validate_every == 0 and step < train_steps:
            write_validation(step, evaluate())
    scores = evaluate()
    if with_curves:
        write_validation(train_steps, scores)
        for writer in writers.values():
            writer.close()
    return scores


def _batch_spec(evaluation: tf.data.Dataset | Sequence[Batch]) -> Any:
    """The spec of ``evaluation``'s batches, any number of rows; None when there are none to tell it."""
    if isinstance(evaluation, tf.data.Dataset):
        return evaluation.element_spec
    if not evaluation:
        return None
    return tf.nest.map_structure(lambda tensor: tf.TensorSpec([None, *tensor.shape[1:]], tensor.dtype), evaluation[0])


def count_examples(file_patterns: list[str]) -> int:
    """How many examples the (GZIP TFRecord) files of a split hold: one read of the records, none parsed."""
    files = [name for pattern in file_patterns for name in tf.io.gfile.glob(pattern)]
    records = tf.data.TFRecordDataset(files, compression_type="GZIP")
    # Counted in batches: one reduce step per record costs ~30 us (3.8 s for 120,000), per batch 0.6 s in all.
    batches = records.batch(8192)
    return int(batches.reduce(np.int64(0), lambda count, batch: count + tf.cast(tf.shape(batch)[0], tf.int64)))


def steps_for_epochs(epochs: float, examples: int, batch_size: int) -> int:
    """Batches that make ``epochs`` passes over ``examples`` (at least one)."""
    return max(1, math.ceil(epochs * examples / batch_size))


def run_fn(fn_args: FnArgs) -> None:
    """Trains this Trainer's candidate model on the examples through the Transform graph, and exports it for
    serving and evaluation."""
    candidate = _candidate(fn_args)
    hparams = resolve_hyperparameters(fn_args)
    transform_output = tft.TFTransformOutput(fn_args.transform_output)
    model = candidate.build(hparams)
    train_steps = fn_args.train_steps
    epochs = fn_args.custom_config.get("epochs", 0)
    if epochs:
        examples = count_examples(fn_args.train_files)
        train_steps = steps_for_epochs(epochs, examples, hparams.batch_size)
        absl_logging.info(
            "%s epochs of %d train examples: %d steps of %d", epochs, examples, train_steps, hparams.batch_size
        )
    transform_graph = load_transform_graph(transform_output.transform_savedmodel_dir)
    transformer = _transformer(transform_graph)
    eval_metrics = train(
        model,
        _dataset(fn_args.train_files, fn_args.data_accessor, transform_output, transformer, hparams.batch_size),
        train_steps,
        _eval_data(fn_args, transform_output, transformer, hparams.batch_size),
        fn_args.eval_steps,
        log_dir=fn_args.model_run_dir,
    )
    absl_logging.info("Trained %s with %s; eval metrics %s", candidate.name, hparams, eval_metrics)
    export_serving_model(model, transform_output, transform_graph, fn_args.serving_model_dir)
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
    transformer = _transformer(load_transform_graph(transform_output.transform_savedmodel_dir))
    return TunerFnResult(
        tuner=tuner,
        fit_kwargs={
            "x": _dataset(fn_args.train_files, fn_args.data_accessor, transform_output, transformer, base.batch_size),
            "validation_data": _eval_data(fn_args, transform_output, transformer, base.batch_size),
            "steps_per_epoch": fn_args.train_steps,
            "validation_steps": fn_args.eval_steps,
        },
    )
