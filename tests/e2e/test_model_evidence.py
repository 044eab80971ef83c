"""The models' evidence the run explorer shows (``runs.evaluations``, ``runs.training``) on the real artifacts of a
real run: each candidate's curves, confusion matrix and validation verdict from its Evaluator, and its training
curves from its Trainer.

The session's ``first_run`` (conftest.py) evaluates two candidates without a baseline. Each value is checked against
an independent source: TFMA's own loading of the same files, the metrics TFMA computed (AUC, accuracy, example
count), the eval split's size, TensorBoard's own reading of the logs, and the Trainer's recorded eval metrics.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from small_run import CANDIDATES, SMALL_RUN

from models import trainer
from pipeline.components import evaluation_results
from pipeline.config import load_config
from runs import evaluations, examples, tfformats, training
from runs.nodes import ArtifactRef, node_detail
from runs.store import open_sqlite

HEAVY = ("tensorflow", "tensorflow_model_analysis", "tensorflow_data_validation", "apache_beam", "tfx")


@pytest.fixture(scope="module")
def store(first_run, shared_home):
    return open_sqlite(shared_home / "metadata.sqlite")


@pytest.fixture(scope="module")
def config(shared_home):
    return load_config("local", SMALL_RUN, home=str(shared_home))


def _output(store, run, node_id: str, key: str) -> ArtifactRef:
    """The first run's output artifact (read by its execution, not as "the newest": other modules add runs)."""
    return node_detail(store, run.report.run_id, node_id).outputs[key][0]


@pytest.fixture(scope="module")
def evaluation_refs(store, first_run) -> dict[str, ArtifactRef]:
    return {name: _output(store, first_run, f"Evaluator_{name}", "evaluation") for name in CANDIDATES}


@pytest.fixture(scope="module")
def views(evaluation_refs) -> dict[str, evaluations.EvaluationView]:
    return {name: evaluations.read_evaluation(ref.id, ref.uri) for name, ref in evaluation_refs.items()}


@pytest.fixture(scope="module")
def model_runs(store, first_run) -> dict[str, training.TrainingView]:
    refs = {name: _output(store, first_run, f"Trainer_{name}", "model_run") for name in CANDIDATES}
    assert all(ref.type_name == "ModelRun" for ref in refs.values())
    return {name: training.read_training(ref.id, ref.uri) for name, ref in refs.items()}


@pytest.fixture(scope="module")
def eval_examples(store, first_run) -> int:
    """The eval split's size, counted from ExampleGen's files."""
    ref = _output(store, first_run, "CsvExampleGen", "examples")
    return sum(tfformats.count_records(path) for path in examples.split_files(ref.uri, "eval"))


def test_reading_the_evidence_loads_no_tensorflow_tfma_or_beam(evaluation_refs, store, first_run):
    """The run explorer starts in well under a second, and its Models page reads these without TensorFlow."""
    run_ref = _output(store, first_run, f"Trainer_{CANDIDATES[0]}", "model_run")
    evaluation_ref = evaluation_refs[CANDIDATES[0]]
    code = (
        "import sys; from runs import evaluations, training; "
        f"imported = [m for m in {HEAVY!r} if m in sys.modules]; "
        f"view = evaluations.read_evaluation(1, {evaluation_ref.uri!r}); "
        f"curves = training.read_training(2, {run_ref.uri!r}); "
        "assert view.candidate and view.candidate.roc and curves.curves, 'nothing read'; "
        f"print(imported, [m for m in {HEAVY!r} if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[] []"


def test_the_evaluation_reads_as_tfma_reads_it(views, evaluation_refs, first_run):
    import tensorflow_model_analysis as tfma

    assert (evaluation_results.CANDIDATE_MODEL, evaluation_results.BASELINE_MODEL) == (
        tfma.CANDIDATE_KEY,
        tfma.BASELINE_KEY,
    )
    for name, view in views.items():
        uri = evaluation_refs[name].uri
        by_tfma = evaluation_results.read_metrics(uri)  # tfma.load_metrics
        assert view.metrics == by_tfma.candidate == first_run.report.candidates[name].metrics
        # (json for the comparison: a tiny slice without positives has a NaN calibration, and NaN != NaN.)
        assert json.dumps(view.slice_metrics, sort_keys=True) == json.dumps(by_tfma.slices, sort_keys=True)
        assert view.validation == evaluation_results.read_validation(uri)  # tfma.load_validation_result
        [overall] = [p for p in tfma.load_plots(uri) if not p.slice_key.single_slice_keys]
        [plot] = [entry.value for entry in overall.plot_keys_and_values]
        matrices = plot.confusion_matrix_at_thresholds.matrices
        assert view.candidate.thresholds == sorted((m.threshold for m in matrices), reverse=True)
        assert sorted(view.candidate.roc) == sorted((m.false_positive_rate, m.recall) for m in matrices)
        buckets = [b for b in plot.calibration_histogram_buckets.buckets if b.num_weighted_examples.value]
        assert [b.examples for b in view.candidate.calibration] == [b.num_weighted_examples.value for b in buckets]


def test_a_first_run_has_no_baseline_and_every_candidate_passed_its_thresholds(views, first_run, config):
    for name, view in views.items():
        assert view.baseline is None and view.baseline_metrics == {}
        assert first_run.report.candidates[name].blessed is True
        assert view.validation.passed is True and view.validation.failures == []
        assert view.metrics["auc"] >= config.evaluation.min_auc
        json.dumps(dataclasses.asdict(view))  # plain data: the page and the tests can dump it


def test_roc_runs_from_the_origin_to_one_one_and_its_area_is_tfmas_auc(views):
    for view in views.values():
        roc = view.candidate.roc
        assert roc[0] == (0.0, 0.0) and roc[-1] == (1.0, 1.0)
        fpr, recall = np.array(roc).T
        assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(recall) >= 0)
        area = float(np.sum(np.diff(fpr) * (recall[1:] + recall[:-1]) / 2))
        assert area == pytest.approx(view.metrics["auc"], abs=0.01)
        assert 0.6 < area <= 1.0  # a model that learnt something: the small run's models score ~0.9


def test_precision_recall_points_are_probabilities_and_recall_rises_as_the_threshold_falls(views):
    for view in views.values():
        points = np.array(view.candidate.precision_recall)
        assert np.all((points >= 0) & (points <= 1))
        assert np.all(np.diff(points[:, 0]) >= 0)
        assert np.all(np.diff(view.candidate.thresholds) < 0)


def test_the_confusion_matrix_at_one_half_counts_each_eval_example_once_and_is_tfmas_accuracy(views, eval_examples):
    populated = [False] * 4
    for view in views.values():
        matrix = view.candidate.confusion
        assert matrix.threshold == evaluations.CONFUSION_THRESHOLD == 0.5
        counts = [matrix.true_positives, matrix.false_positives, matrix.true_negatives, matrix.false_negatives]
        assert sum(counts) == matrix.examples == view.metrics["example_count"] == eval_examples
        populated = [seen or count > 0 for seen, count in zip(populated, counts, strict=True)]
        # TFMA builds the plot's matrices from a histogram of the predictions in 1,000 buckets, BinaryAccuracy from
        # the predictions themselves: a prediction within 0.001 of 0.5 may land on the other side. Seen here: one
        # example of 423 once, equal to 1e-6 in other runs.
        assert matrix.accuracy == pytest.approx(view.metrics["binary_accuracy"], abs=1.5 / matrix.examples)
        if counts[0] + counts[1]:
            assert matrix.precision == pytest.approx(counts[0] / (counts[0] + counts[1]))
        else:
            assert matrix.precision is None  # nothing predicted positive
    # Each cell read from its own field: some candidate has each. (Not every candidate: a weak one of this small
    # run may predict no positive at 0.5; seen once in the suite on 2026-12-03.)
    assert all(populated), populated


def test_the_calibration_buckets_hold_every_example_and_its_positives(views):
    for view in views.values():
        buckets, matrix = view.candidate.calibration, view.candidate.confusion
        assert sum(bucket.examples for bucket in buckets) == matrix.examples
        positives = sum(bucket.positive_rate * bucket.examples for bucket in buckets)
        assert positives == pytest.approx(matrix.true_positives + matrix.false_negatives)
        assert [bucket.low for bucket in buckets] == sorted(bucket.low for bucket in buckets)
        for bucket in buckets:
            assert bucket.low - 1e-9 <= bucket.mean_prediction <= bucket.high + 1e-9
            assert 0 <= bucket.positive_rate <= 1
        # TFMA's calibration metric is the predictions' sum over the labels' sum.
        predicted = sum(bucket.mean_prediction * bucket.examples for bucket in buckets)
        assert predicted / positives == pytest.approx(view.metrics["calibration"], rel=1e-6)


def _validation_result(tmp_path: Path, value: float, change: float):
    """An evaluation folder holding only a ValidationResult that fails a minimum and a change threshold."""
    import tensorflow as tf
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.proto import validation_result_pb2

    result = validation_result_pb2.ValidationResult(validation_ok=False)
    per_slice = result.metric_validations_per_slice.add()
    minimum = per_slice.failures.add()
    minimum.metric_key.name = "auc"
    minimum.metric_key.model_name = tfma.CANDIDATE_KEY
    minimum.metric_value.double_value.value = value
    minimum.metric_threshold.value_threshold.lower_bound.value = 0.7
    regression = per_slice.failures.add()
    regression.metric_key.CopyFrom(minimum.metric_key)
    regression.metric_key.is_diff = True
    regression.metric_value.double_value.value = change
    regression.metric_threshold.change_threshold.absolute.value = -0.01
    regression.metric_threshold.change_threshold.direction = tfma.MetricDirection.HIGHER_IS_BETTER
    with tf.io.TFRecordWriter(str(tmp_path / "validations.tfrecord")) as writer:
        writer.write(result.SerializeToString())
    return str(tmp_path)


def test_a_failed_threshold_is_told_in_words_and_by_how_much(tmp_path):
    uri = _validation_result(tmp_path, value=0.5812, change=-0.024)
    view = evaluations.read_evaluation(-1, uri)
    assert view.validation == evaluation_results.read_validation(uri)  # the same as TFMA's loading
    assert view.validation.passed is False
    minimum, regression = view.validation.failures
    assert (minimum.metric, minimum.kind, minimum.value, minimum.bound) == ("auc", "minimum", 0.5812, 0.7)
    assert minimum.margin == pytest.approx(-0.1188)
    assert minimum.text == "auc 0.5812 is below the minimum 0.7"
    assert (regression.kind, regression.value, regression.bound) == ("change", -0.024, -0.01)
    assert regression.margin == pytest.approx(-0.014)
    assert regression.text == "auc changed by -0.0240 vs. the baseline; the limit is -0.01"
    assert minimum.slice == regression.slice == "overall"
    assert evaluation_results.validation_failures(uri) == [minimum.text, regression.text]
    # Nothing else was written: no metrics, no curves.
    assert view.metrics == {} and view.candidate is None


def test_training_curves_have_train_and_validation_points_ending_at_the_trainers_eval_metrics(model_runs, config):
    steps = config.training.train_steps
    assert steps == 150  # small_run.SMALL_RUN: a train point every 7 steps, validation every 50
    for name, run in model_runs.items():
        assert run.candidate == name
        assert run.hyperparameters["batch_size"] == 64
        assert set(run.curves) == {trainer.LOSS_TAG, trainer.AUC_TAG}
        for tag, runs in run.curves.items():
            assert set(runs) == {trainer.TRAIN_LOG, trainer.VALIDATION_LOG}, tag
            train_steps = [step for step, _ in runs[trainer.TRAIN_LOG]]
            validation_steps = [step for step, _ in runs[trainer.VALIDATION_LOG]]
            assert train_steps == [*range(7, 148, 7), 150]
            assert validation_steps == [50, 100, 150]
            values = [value for _, value in runs[trainer.TRAIN_LOG] + runs[trainer.VALIDATION_LOG]]
            assert all(math.isfinite(value) and value > 0 for value in values)
        assert all(0.5 < value <= 1 for _, value in run.curves[trainer.AUC_TAG][trainer.VALIDATION_LOG])
        # The last validation point is the evaluation the Trainer logged in hyperparameters.json.
        assert run.final(trainer.AUC_TAG, trainer.VALIDATION_LOG) == pytest.approx(run.eval_metrics["auc"], abs=1e-6)
        # Training got somewhere: the loss fell.
        train_loss = run.curves[trainer.LOSS_TAG][trainer.TRAIN_LOG]
        assert train_loss[-1][1] < train_loss[0][1]


def test_training_curves_read_as_tensorboard_reads_them(store, first_run):
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    assert training.HYPERPARAMETERS_FILE == trainer.HYPERPARAMETERS_FILE
    for name in CANDIDATES:
        ref = _output(store, first_run, f"Trainer_{name}", "model_run")
        view = training.read_training(ref.id, ref.uri)
        for log in (trainer.TRAIN_LOG, trainer.VALIDATION_LOG):
            accumulator = event_accumulator.EventAccumulator(
                str(Path(ref.uri) / log), size_guidance={event_accumulator.TENSORS: 0}
            )
            accumulator.Reload()
            tags = accumulator.Tags()["tensors"]
            assert sorted(tags) == sorted(view.curves)
            for tag in tags:
                expected = [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in accumulator.Tensors(tag)]
                assert view.curves[tag][log] == expected


def test_train_writes_a_point_per_step_when_it_trains_fewer_steps_than_points(tmp_path):
    import tensorflow as tf

    from models.candidates import CANDIDATES as BUILDERS
    from models.preprocessing import categorical_cardinalities, dense_feature_names

    rng = np.random.default_rng(3)
    rows = {name: rng.normal(size=(40, 1)).astype("float32") for name in dense_feature_names()}
    for name, size in categorical_cardinalities().items():
        rows[name] = rng.integers(0, size, size=(40, 1)).astype("int64")
    labels = rng.integers(0, 2, size=40).astype("int64")
    batches = tf.data.Dataset.from_tensor_slices((rows, labels)).batch(8)
    linear = BUILDERS["linear"]

    scores = trainer.train(linear.build(linear.defaults), batches.repeat(), 7, batches, None, log_dir=str(tmp_path))
    curves = training.read_training(-2, str(tmp_path)).curves
    assert [step for step, _ in curves["loss"]["train"]] == [1, 2, 3, 4, 5, 6, 7]  # fewer steps than TRAIN_POINTS
    assert [step for step, _ in curves["auc"]["validation"]] == [3, 6, 7]
    assert curves["auc"]["validation"][-1][1] == pytest.approx(scores["auc"], abs=1e-6)
    assert sorted(path.name for path in tmp_path.iterdir()) == [trainer.TRAIN_LOG, trainer.VALIDATION_LOG]
