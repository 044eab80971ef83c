"""What TFX's Evaluator lets a pipeline change (its ``module_path`` names this module): the extractors, the model.

TFX's Evaluator executor looks two functions up here by name. Both keep TFMA's results and make it faster.

``custom_extractors``: each batch split by slice key, not into examples. TFMA 0.47 runs the models on batches of
examples, then its ``UnbatchExtractor`` turns every batch back into one Python dict per example (every raw
feature, each model's transformed features, labels, predictions), its ``SliceKeyExtractor`` looks up each
example's slicing features, and every example travels alone through the fan-out to its slices and into the metric
combiners. That per-example work, for every candidate and its baseline, was most of an Evaluator's time (~95 s of
each Evaluator at 1.5 million trips, docs/ARCHITECTURE.md). Here TFMA's own feature, transform, label and
prediction extractors run as before; in place of the last two, each batch becomes one extract per slice key that
any of its rows falls in, holding that slice key and the labels, predictions and example weights of those rows
(``binary_metrics.BATCH_ROWS_KEY`` says how many). The slice keys are TFMA's own
(``slicer.get_slices_for_features_dicts`` on each row's slicing features as TFMA's unbatching gives them), asked
once per distinct set of values in the batch. This applies only where every metric the config asks for is added
up by ``binary_metrics.BinaryClassifierMetrics`` (the one combiner here that reads a batch's rows at once) and
nothing counts examples one by one (confidence intervals, a minimum slice size, cross slices, SQL slices, query
keys); otherwise TFMA's extractors run unchanged. A batch whose labels, predictions or weights are not arrays with
one row per example is unbatched and sliced by TFMA's own functions, as it would have been.

``custom_eval_shared_model``: TFMA's model, its signatures called by keyword, loaded once per process. TFMA
calls a signature that takes serialized examples with one positional tensor; a SavedModel's signature takes
keywords only, so TensorFlow first fails to bind the call and builds a ``TypeError`` whose text prints the whole
batch of serialized examples, then calls it again the flat way. That failed first try was 17% of an Evaluator once
the rest was batched. The wrapper passes the one tensor by its input's name, which is what the flat call binds it
to. A local run's Evaluators share the models they load (``_loaded_once``).

``bench/evaluator.py`` compares every metric and plot with TFMA's stock extractors, model calls and combiners.
The Evaluator imports this module by name, so it must import wherever the Evaluator runs (it does: it is part of
the package the images install).
"""

from __future__ import annotations

import collections
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.api import model_eval_lib, types
from tensorflow_model_analysis.evaluators import metrics_plots_and_validations_evaluator
from tensorflow_model_analysis.extractors import extractor, slice_key_extractor, unbatch_extractor
from tensorflow_model_analysis.metrics import metric_specs
from tensorflow_model_analysis.slicer import slicer_lib as slicer
from tensorflow_model_analysis.utils import model_util, util

from pipeline.binary_metrics import BATCH_ROWS_KEY, reads_batches

# TFMA's metrics evaluator runs after the stage of this name (``run_after``): the replacement takes its place.
STAGE_NAME = slice_key_extractor.SLICE_KEY_EXTRACTOR_STAGE_NAME

# What the metric combiners read of an extract; everything else (features, serialized examples) is left behind.
_METRIC_INPUT_KEYS = (constants.LABELS_KEY, constants.PREDICTIONS_KEY, constants.EXAMPLE_WEIGHTS_KEY)


def custom_extractors(
    eval_shared_model: Any, eval_config: tfma.EvalConfig, tensor_adapter_config: Any
) -> list[extractor.Extractor]:
    """TFMA's default extractors, their unbatching and per-example slicing replaced where the metrics allow it.

    TFX's Evaluator executor calls this by name (``udf_utils.try_get_fn(..., "custom_extractors")``).
    """
    extractors = tfma.default_extractors(
        eval_shared_model=eval_shared_model, eval_config=eval_config, tensor_adapter_config=tensor_adapter_config
    )
    tail = [stage.stage_name for stage in extractors[-2:]]
    expected = [unbatch_extractor.UNBATCH_EXTRACTOR_STAGE_NAME, slice_key_extractor.SLICE_KEY_EXTRACTOR_STAGE_NAME]
    # As TFMA's own extractors and evaluator see it: the models named (candidate, baseline), defaults filled in.
    config = model_eval_lib._update_eval_config_with_defaults(eval_config, eval_shared_model)
    # A Keras model's own compiled metrics are added as per-example combiners of TFMA's (include_default_metrics).
    keras_metrics = any(
        model.model_type == constants.TF_KERAS and model.include_default_metrics
        for model in model_util.verify_and_update_eval_shared_models(eval_shared_model) or []
    )
    if tail != expected or keras_metrics or not batches_are_enough(config):
        return extractors
    return [
        *extractors[:-2],
        extractor.Extractor(stage_name=STAGE_NAME, ptransform=beam.ParDo(_BatchesPerSliceFn(config))),
    ]


def batches_are_enough(config: tfma.EvalConfig) -> bool:
    """Whether every metric of ``config`` can be added up from per-slice batches with the same result."""
    options = config.options
    if (
        config.cross_slicing_specs
        or any(spec.slice_keys_sql for spec in config.slicing_specs)
        or any(spec.query_key for spec in config.metrics_specs)
        or options.compute_confidence_intervals.value
        or options.min_slice_size.value > 1
    ):
        return False
    separated = metrics_plots_and_validations_evaluator._filter_and_separate_computations(
        metric_specs.to_computations(config.metrics_specs, eval_config=config)
    )
    computations = separated.non_derived_computations
    return bool(computations) and all(reads_batches(computation) for computation in computations)


class _NotBatchableError(Exception):
    """A batch that is not arrays with one row per example: it goes the per-example way."""


def _rows(value: Any, count: int | None) -> int | None:
    """The row count of every array under ``value`` (dicts of arrays, None allowed); _NotBatchableError otherwise."""
    if value is None:
        return count
    if isinstance(value, dict):
        for item in value.values():
            count = _rows(item, count)
        return count
    if type(value) is not np.ndarray or value.ndim == 0 or (count is not None and value.shape[0] != count):
        raise _NotBatchableError
    return value.shape[0]


def _take(value: Any, rows: np.ndarray) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):
        return {key: _take(item, rows) for key, item in value.items()}
    return value[rows]


def _row_values(slim: dict[str, Any], count: int) -> list[Any] | None:
    """A hashable stand-in per row for its values of the slicing features in ``slim`` (a batch's features dicts,
    nested by model): rows with equal stand-ins have equal values. None where a value is of a kind not read here
    (only TFMA's ``VarLenTensorValue`` of one value list per row, and arrays with a row per example are)."""
    leaves: list[tuple[tuple[str, ...], Any]] = []

    def visit(tree: dict[str, Any], path: tuple[str, ...]) -> None:
        for key, value in tree.items():
            if isinstance(value, dict):
                visit(value, (*path, key))
            else:
                leaves.append(((*path, key), value))

    visit(slim, ())
    if not leaves:
        return None
    kinds, columns = [], []
    for path, value in sorted(leaves, key=lambda leaf: leaf[0]):
        read = _column(value, count)
        if read is None:
            return None
        kind, column = read
        kinds.append((path, kind))
        columns.append(column)
    batch_kind = tuple(kinds)
    return [(batch_kind, row) for row in zip(*columns, strict=True)]


def _column(value: Any, count: int) -> tuple[Any, list[Any]] | None:
    """One leaf's (kind, per-row hashable values), or None."""
    if isinstance(value, types.VarLenTensorValue):
        indices, values = np.asarray(value.indices), np.asarray(value.values)
        if indices.ndim != 2 or indices.shape[1] != 2 or len(indices) != len(values) or len(value.dense_shape) != 2:
            return None
        rows = indices[:, 0]
        if len(rows) and (rows[0] < 0 or rows[-1] >= count or (np.diff(rows) < 0).any()):
            return None
        bounds = np.searchsorted(rows, np.arange(count + 1)).tolist()
        listed = values.tolist()
        return ("varlen", values.dtype.str), [tuple(listed[bounds[i] : bounds[i + 1]]) for i in range(count)]
    if type(value) is np.ndarray and value.ndim >= 1 and len(value) == count:
        per_row = value.reshape(count, -1)
        kind = ("array", value.dtype.str, value.shape[1:])
        if value.dtype == object:
            return kind, [tuple(row) for row in per_row.tolist()]
        return kind, [row.tobytes() for row in per_row]
    return None


class _BatchesPerSliceFn(beam.DoFn):
    """One extract per (batch, slice key): the slice key and the metric inputs of the batch's rows in that slice."""

    def __init__(self, eval_config: tfma.EvalConfig) -> None:
        self._slice_specs = [slicer.SingleSliceSpec(spec=spec) for spec in eval_config.slicing_specs] or [
            slicer.SingleSliceSpec()
        ]
        # The features any slicing spec reads; only these are unbatched.
        self._slicing_features = sorted(
            {key for spec in eval_config.slicing_specs for key in [*spec.feature_keys, *spec.feature_values]}
        )
        self._per_example = slice_key_extractor.ExtractSliceKeysFn(eval_config, materialize=False)

    def setup(self) -> None:
        self._slice_keys_by_values: dict[Any, list[Any]] = {}  # by _row_values

    def process(self, batch: dict[str, Any]) -> Iterator[dict[str, Any]]:
        try:
            count = None
            for key in _METRIC_INPUT_KEYS:
                count = _rows(batch.get(key), count)
        except _NotBatchableError:
            count = None
        if not count:
            yield from self._unbatched(batch)
            return
        rows_in: dict[Any, list[int]] = collections.defaultdict(list)
        for row, slice_keys in enumerate(self._row_slice_keys(batch, count)):
            for slice_key in slice_keys:
                rows_in[slice_key].append(row)
        for slice_key, rows in rows_in.items():
            selected = np.asarray(rows)
            extract = {key: _take(batch[key], selected) for key in _METRIC_INPUT_KEYS if key in batch}
            extract[constants.SLICE_KEY_TYPES_KEY] = slicer.slice_keys_to_numpy_array([slice_key])
            extract[BATCH_ROWS_KEY] = len(rows)
            yield extract

    def _unbatched(self, batch: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """What TFMA's UnbatchExtractor and SliceKeyExtractor make of the batch: one extract per example."""
        for example in unbatch_extractor._extract_unbatched_inputs(batch):
            yield from self._per_example.process(example, self._slice_specs)

    def _row_slice_keys(self, batch: dict[str, Any], count: int) -> list[list[Any]]:
        """Each row's slice keys, as TFMA's SliceKeyExtractor would give them for the example."""
        if not self._slicing_features:  # the overall slice only
            return [[()]] * count
        slim: dict[str, Any] = {}
        for key in (constants.FEATURES_KEY, constants.TRANSFORMED_FEATURES_KEY):
            if batch.get(key) is not None:
                slim[key] = _only(batch[key], self._slicing_features)
        values = _row_values(slim, count)
        if values is None:
            return self._split_row_slice_keys(slim, count)
        # Rows with the same values of the slicing features have the same slice keys: TFMA's splitting of the
        # batch into rows (util.split_extracts, a quarter of an Evaluator at 1.5M trips) is needed only for a
        # batch that holds values not seen before, and TFMA's slicing only for those rows.
        result: list[list[Any]] = []
        rows = None
        for index, row_values in enumerate(values):
            slice_keys = self._slice_keys_by_values.get(row_values)
            if slice_keys is None:
                rows = rows if rows is not None else util.split_extracts(slim)
                if len(rows) != count:
                    return self._split_row_slice_keys(slim, count)
                slice_keys = self._slice_keys_by_values[row_values] = self._slice_keys(rows[index])
            result.append(slice_keys)
        return result

    def _split_row_slice_keys(self, slim: dict[str, Any], count: int) -> list[list[Any]]:
        """``_row_slice_keys`` through TFMA's splitting of the batch into rows and its slicing of each row, for
        batches whose slicing features ``_row_values`` cannot read (kinds this pipeline's batches never hold)."""
        rows = util.split_extracts(slim) if slim else []
        if len(rows) != count:  # none of the slicing features in this batch: every row has only the overall slice
            return [self._slice_keys({})] * count
        return [self._slice_keys(row) for row in rows]

    def _slice_keys(self, row: dict[str, Any]) -> list[Any]:
        """TFMA's slice keys of one example (``ExtractSliceKeysFn.process``: transformed features first)."""
        example = {constants.FEATURES_KEY: row.get(constants.FEATURES_KEY, {})}
        if constants.TRANSFORMED_FEATURES_KEY in row:
            example[constants.TRANSFORMED_FEATURES_KEY] = row[constants.TRANSFORMED_FEATURES_KEY]
        (sliced,) = self._per_example.process(example, self._slice_specs)
        return list(sliced[constants.SLICE_KEY_TYPES_KEY])


def _only(features: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The slicing features of a features dict; a dict of per-model dicts (transformed features) keeps its models."""
    kept = {name: features[name] for name in names if name in features}
    for key, value in features.items():
        if isinstance(value, dict):
            nested = _only(value, names)
            if nested:
                kept[key] = nested
    return kept


def custom_eval_shared_model(
    eval_saved_model_path: str, model_name: str, eval_config: tfma.EvalConfig, **kwargs: Any
) -> types.EvalSharedModel:
    """TFMA's default shared model, whose loaded model's signatures take their one input by keyword.

    TFX's Evaluator executor calls this by name for each model (candidate, baseline).
    """
    shared = tfma.default_eval_shared_model(
        eval_saved_model_path=eval_saved_model_path, model_name=model_name, eval_config=eval_config, **kwargs
    )
    if shared.model_type != constants.TF_GENERIC:
        return shared
    loader = shared.model_loader
    key = (eval_saved_model_path, tuple(loader.tags or ()))
    construct = functools.partial(_loaded_once, key, loader.construct_fn)
    return shared._replace(model_loader=types.ModelLoader(construct_fn=construct, tags=loader.tags))


# Models loaded in this process, newest last: (path, tags) -> the model. A local run's Evaluators run one after
# another in one process, and after the first run each candidate's baseline is the model the last run pushed,
# which is also one of the candidates: loaded once (~0.3 s each here, more for bigger models) instead of by every
# Evaluator. A model artifact's folder never changes once written (TFX gives each execution new URIs).
_LOADED: collections.OrderedDict[tuple[str, tuple[str, ...]], Any] = collections.OrderedDict()
_LOADED_KEPT = 4
_LOADING = threading.Lock()


def _loaded_once(key: tuple[str, tuple[str, ...]], construct: Callable[[], Any]) -> Any:
    with _LOADING:
        model = _LOADED.get(key)
        if model is None:
            model = _SignaturesByKeyword(construct())
            while len(_LOADED) >= _LOADED_KEPT:
                _LOADED.popitem(last=False)
        _LOADED[key] = model
        _LOADED.move_to_end(key)
        return model


class _SignaturesByKeyword:
    """A loaded SavedModel as TFMA uses it, with ``signatures`` that bind one positional tensor by name."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.signatures = {name: _ByKeyword(function) for name, function in model.signatures.items()}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class _ByKeyword:
    """A signature function; called with one positional tensor and it has one input, the tensor goes by name."""

    def __init__(self, function: Any) -> None:
        self._function = function
        positional, keywords = function.structured_input_signature
        self._only_input = next(iter(keywords)) if not positional and len(keywords) == 1 else None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._only_input is not None and len(args) == 1 and not kwargs:
            return self._function(**{self._only_input: args[0]})
        return self._function(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._function, name)
