"""Every place this project relies on TFX, TensorFlow Transform or TensorFlow behaviour that is not public API.

Checked against tfx 1.16.0, tensorflow-transform 1.16.0 and tensorflow 2.16.2 (``CHECKED_AGAINST``). Each helper
says what it relies on; ``tests/unit/test_tfx_compat.py`` asserts each of those facts against the installed
packages, so an upgrade that changes one fails that test by name instead of breaking a run in the middle.

This package is the bottom of the house: it imports nothing of ours (``models/`` uses it too), and TensorFlow or
TFX only inside the helpers that need them, so importing it is free. A submodule that subclasses a TFX class
imports TFX at its top (``tfx_compat.csv_example_gen``: ExampleGen's executor, which steps import by path;
``tfx_compat.airflow_metadata``: the Airflow DAG's launcher and ML Metadata handle). Their tests are in
``tests/unit/test_tfx_compat.py`` and ``tests/unit/test_airflow_metadata.py``.
"""

from __future__ import annotations

import csv
import functools
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

CHECKED_AGAINST = {"tfx": "1.16.0", "tensorflow-transform": "1.16.0", "tensorflow": "2.16.2"}


def prepare_tensorflow() -> None:
    """Sets the environment TensorFlow reads at import time; call it before anything imports TensorFlow.

    - ``TF_USE_LEGACY_KERAS=1``: TFX 1.16 and TensorFlow Transform build Keras 2 (``tf_keras``) models;
      TensorFlow 2.16 would otherwise hand ``tf.keras`` to Keras 3.
    - ``TF_CPP_MIN_LOG_LEVEL=1``: keeps TensorFlow's C++ start-up chatter off the terminal.

    These are the only environment variables the application sets; a value the user set wins.
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")


def install_beam_memos() -> None:
    """Makes Beam remember answers it otherwise recomputes for every transform of every Beam step: a DoFn's
    state and timer specs (``tfx_compat.beam_dofn_specs``) and an options object's view as an options class
    (``tfx_compat.beam_option_views``); and what its scans of every loaded module find when it pickles a function
    or weighs a cached value (``tfx_compat.beam_module_scans``). Once per process; idempotent. Call it before the
    pipeline runs."""
    from tfx_compat import beam_dofn_specs, beam_module_scans, beam_option_views

    beam_dofn_specs.install()
    beam_option_views.install()
    beam_module_scans.install()


# --- LocalDagRunner's progress, which it reports only in its log -----------------------------------------------
# tfx/orchestration/local/local_dag_runner.py logs "Component %s is running." and "Component %s is finished."
# around each node; tfx/orchestration/portable/launcher.py logs "A cached execution %d is used." in between when
# the node's result comes from the cache. runners/local.py turns these lines into state changes.
COMPONENT_RUNNING = re.compile(r"^Component (\S+) is running\.$")
COMPONENT_FINISHED = re.compile(r"^Component (\S+) is finished\.$")
CACHED_EXECUTION_USED = re.compile(r"^A cached execution \d+ is used\.$")

# --- What TFX writes into ML Metadata under names of its own ---------------------------------------------------
# tfx/orchestration/portable/mlmd/execution_lib.py: a failed execution's ExecutionResult (JSON) is kept in this
# custom property.
EXECUTION_RESULT_PROPERTY = "__execution_result__"
# tfx/components/pusher/executor.py: custom properties of the PushedModel artifact.
PUSHED_PROPERTY = "pushed"
PUSHED_DESTINATION_PROPERTY = "pushed_destination"


def csv_column_names(header_line: bytes) -> list[str]:
    """The column names in a CSV file's first line (its bytes, line break included), read one way for the
    command line's check of the input and for ExampleGen (``tfx_compat.csv_example_gen``), so both agree.

    TFX's own ``io_utils.load_csv_column_names`` splits the line at every comma and keeps a UTF-8 byte-order mark
    (Excel's "CSV UTF-8" writes one) as part of the first name, and quotes and spaces around names too. Here the
    mark is dropped (``utf-8-sig``), the line is parsed as CSV (a quoted name may hold a comma) and names are
    stripped. Raises UnicodeDecodeError for a line that is not UTF-8 and ``csv.Error`` for a malformed one.
    """
    text = header_line.decode("utf-8-sig")
    return [name.strip() for name in next(csv.reader([text]), [])]


def init_component_with_spec(component: Any, spec: Any) -> None:
    """Runs ``BaseComponent.__init__(spec=spec)`` for a subclass of a standard component whose own ``__init__``
    would build its spec without our extra parameters (``CuratedSchemaGen`` over ``ImportSchemaGen``).

    Relies on: the standard component's ``__init__`` does nothing but build its spec and call
    ``BaseComponent.__init__(spec=...)`` (true of ImportSchemaGen in TFX 1.16).
    """
    from tfx.dsl.components.base import base_component

    base_component.BaseComponent.__init__(component, spec=spec)


def spec_class_with_inputs(base: type, inputs: dict[str, Any]) -> type:
    """A subclass of the ``ComponentSpec`` ``base`` whose ``INPUTS`` are ``inputs``, for a component whose inputs
    depend on the pipeline (the ModelSelector takes three channels per configured candidate).

    Relies on: ``BaseComponent`` checks only that its spec is an instance of ``SPEC_CLASS`` (a subclass passes),
    and the compilers read the inputs from the spec instance's class, not from ``SPEC_CLASS``.
    """
    return type(base.__name__, (base,), {"INPUTS": inputs})


def name_airflow_artifacts_per_component(component: Any) -> None:
    """Makes the legacy drivers name output artifacts ``<component>:<key>:<run id>`` instead of ``<key>:<run id>``.

    TFX's Airflow orchestrator still runs the legacy component drivers, which name every output artifact
    ``<output key>:<run id>``; ML Metadata wants names unique per artifact type, so two components with the same
    output key and type in one run (SchemaGen and ImportSchemaGen both output ``schema``) collide and the second
    fails with AlreadyExistsError. LocalDagRunner, Kubeflow and Vertex do not use these drivers.

    Relies on: ``BaseDriver._prepare_output_artifacts(..., component_info)`` returns the output artifacts by key
    before they are published, and ``component_info.component_id`` is the node id.
    """
    base = component.driver_class

    class ComponentScopedNames(base):
        def _prepare_output_artifacts(self, *args: Any, **kwargs: Any) -> Any:
            outputs = super()._prepare_output_artifacts(*args, **kwargs)
            component_id = kwargs.get("component_info", args[-1] if args else None).component_id
            for artifacts in outputs.values():
                for artifact in artifacts:
                    artifact.name = f"{component_id}:{artifact.name}"
            return outputs

    ComponentScopedNames.__name__ = ComponentScopedNames.__qualname__ = f"ComponentScoped{base.__name__}"
    component.driver_class = ComponentScopedNames


@functools.lru_cache(maxsize=4)
def load_transform_graph(transform_savedmodel_dir: str) -> Any:
    """TFT's loader of a Transform graph (``apply_transform_model``), loaded once per folder and process, pruning
    the graph once per set of inputs.

    Why: for a graph saved in TF1 mode (the pipeline's ``force_tf_compat_v1=True``), TFT prunes the loaded
    function to the fed inputs on every ``apply_transform_model`` (~0.2-0.3 s each here), and a Trainer applies it
    four times with two sets of inputs: its datasets (every raw feature) and the export's three signatures (the
    model's features, or every raw feature). The outputs TFT fetches follow from the inputs, so one pruned function
    per set of inputs serves every call. TFT orders the fed tensors as the caller's dict orders its keys (and
    ``tf.io.parse_example`` returns sparse features before dense ones), so the inputs are put in name order first:
    the same features are then the same set. A local run's Trainers (and Tuners) run one after another in one
    process on the same Transform graph: the loaded graph and its pruned functions serve all of them (the loader
    holds no per-model state; each SavedModel tracks its state, ``track_transform_graph``).

    Relies on: ``SavedModelLoader._apply_v1_transform_model_in_v2`` calls ``self._wrapped_function.prune(feeds,
    fetches)`` with ``fetches`` computed from ``feeds`` alone (``self._get_fetches(feeds)``), the feeds in the
    order of the dict ``apply_transform_model`` was given.
    """
    from tensorflow_transform.saved import saved_transform_io_v2

    loader = saved_transform_io_v2.SavedModelLoader(transform_savedmodel_dir)
    if loader.load_v2_in_compat:
        wrapped = loader._wrapped_function  # noqa: SLF001 - see "Relies on"
        prune = wrapped.prune
        pruned: dict[tuple[str, ...], Any] = {}

        def prune_once(feeds: list[Any], fetches: Any, name: str | None = None, input_signature: Any = None) -> Any:
            key = tuple(tensor.name for tensor in feeds)
            if key not in pruned:
                pruned[key] = prune(feeds, fetches, name=name, input_signature=input_signature)
            return pruned[key]

        wrapped.prune = prune_once
        apply = loader.apply_transform_model
        loader.apply_transform_model = lambda inputs: apply(dict(sorted(inputs.items())))
    return loader


def track_transform_graph(module: Any, loader: Any) -> None:
    """Makes ``module`` own the state of the Transform graph ``loader`` (``load_transform_graph``) loaded, so
    ``tf.saved_model.save(module)`` keeps what the serving signatures call. TFT's own ``TransformFeaturesLayer``
    does the same (``self._saved_model_loader_tracked_dict = loader.__dict__``), but it is a Keras model, and
    saving one makes ``tf.saved_model.save`` re-trace every layer with autograph (over 10 s here) for Keras restore
    paths nobody uses.

    Relies on: ``tensorflow_transform.saved.saved_transform_io_v2.SavedModelLoader`` keeps the trackable state of
    the loaded graph in its instance attributes.
    """
    module.transform_graph_state = loader.__dict__


def flat_signature_call(function: Any) -> Callable[[Mapping[str, Any]], dict[str, Any]] | None:
    """``function(**tensors)`` for a loaded SavedModel signature, without TensorFlow's per-call argument binding.

    Why: a structured call binds the keyword tensors to the function's ``FunctionType``, checks each against its
    ``TensorSpec`` (``is_subtype_of``, ``cast``) and flattens them, in Python, holding the GIL: for the taxi model's
    16-input ``serving_default`` that is 0.3-0.4 ms of a 0.8 ms call (the graph itself runs without the GIL). The
    server has checked every input's dtype and shape before it calls (``serving.formats``), so it calls the graph's
    function directly, as ``call_preflattened`` does once binding is over, and names the outputs itself.

    Relies on: a ``ConcreteFunction``'s ``_inference_function.call_flat(*inputs, *captured_inputs)`` runs its graph
    with the keyword inputs in ``tf.nest`` order (sorted by name) followed by ``captured_inputs``, and returns the
    outputs flattened in ``tf.nest`` order of ``structured_outputs`` (a dict: sorted by key).

    Returns:
        A callable taking ``{input name: tensor}`` (every input, of its spec's dtype) and returning ``{output name:
        tensor}``; None for a function this does not fit (positional or composite inputs, outputs other than a dict
        of tensors, a TensorFlow without the attribute): call it the structured way then.
    """
    import tensorflow as tf

    atomic = getattr(function, "_inference_function", None)  # noqa: SLF001 - see "Relies on"
    if atomic is None or not hasattr(atomic, "call_flat"):
        return None
    args, specs = function.structured_input_signature
    outputs = function.structured_outputs
    if args or not all(type(spec) is tf.TensorSpec for spec in specs.values()):
        return None
    # A restored signature describes its outputs as specs, a traced one as graph tensors; composites are neither.
    if not isinstance(outputs, dict) or not all(
        isinstance(value, tf.Tensor) or type(value) is tf.TensorSpec for value in outputs.values()
    ):
        return None
    input_names = sorted(specs)
    output_names = sorted(outputs)
    if len(function.inputs) != len(input_names) + len(function.captured_inputs):
        return None

    def call(tensors: Mapping[str, Any]) -> dict[str, Any]:
        flat = atomic.call_flat(*(tensors[name] for name in input_names), *function.captured_inputs)
        return dict(zip(output_names, flat, strict=True))

    return call


def run_locally_as(pipeline: Any, run_id: str) -> None:
    """Runs ``pipeline`` with LocalDagRunner under a run id we chose, instead of the one it would make up.

    The command line picks the run id before the run starts, so the log file, the home's run lock and the run
    explorer can name the run while its first component is still loading.

    Relies on: ``LocalDagRunner.run`` only compiles the pipeline (``_make_pipeline_proto``: the compiler, plus pip
    dependencies of ``module_file`` components, which this project does not use) and calls ``run_with_ir``, which
    replaces the run id only where the IR still holds the ``pipeline-run-id`` runtime parameter; its own run id is
    ``datetime.now().isoformat()``, the format used here too.
    """
    from tfx.dsl.compiler import compiler
    from tfx.dsl.compiler import constants as compiler_constants
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner
    from tfx.orchestration.portable import runtime_parameter_utils

    ir = compiler.Compiler().compile(pipeline)
    runtime_parameter_utils.substitute_runtime_parameter(
        ir, {compiler_constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id}
    )
    LocalDagRunner().run_with_ir(ir)
