"""What ``tfx_compat`` relies on, asserted against the installed TFX, TensorFlow Transform and TensorFlow.

Each test names one fact of ``tfx_compat``'s docstrings. After an upgrade, a failure here says which reliance
broke, before a pipeline run or a deployment does.
"""

from __future__ import annotations

import inspect
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

import tfx_compat


@pytest.mark.parametrize(("package", "version"), sorted(tfx_compat.CHECKED_AGAINST.items()))
def test_the_installed_versions_are_the_ones_checked(package, version):
    """An upgrade must re-check every reliance below and then update CHECKED_AGAINST."""
    assert metadata.version(package) == version, f"tfx_compat was checked against {package} {version}"


def test_local_dag_runner_still_logs_the_lines_the_progress_display_reads():
    from tfx.orchestration.local import local_dag_runner
    from tfx.orchestration.portable import launcher

    runner_source = inspect.getsource(local_dag_runner)
    assert "'Component %s is running.', node_id" in runner_source
    assert "'Component %s is finished.', node_id" in runner_source
    assert "'A cached execution %d is used.', execution.id" in inspect.getsource(launcher)
    assert tfx_compat.COMPONENT_RUNNING.match("Component Transform is running.")[1] == "Transform"
    assert tfx_compat.COMPONENT_FINISHED.match("Component Trainer_dnn is finished.")[1] == "Trainer_dnn"
    assert tfx_compat.CACHED_EXECUTION_USED.match("A cached execution 42 is used.")


def test_mlmd_property_names_are_tfxs_own():
    from tfx.components.pusher import executor as pusher_executor
    from tfx.orchestration.portable.mlmd import execution_lib

    assert execution_lib._EXECUTION_RESULT == tfx_compat.EXECUTION_RESULT_PROPERTY
    assert pusher_executor._PUSHED_KEY == tfx_compat.PUSHED_PROPERTY
    assert pusher_executor._PUSHED_DESTINATION_KEY == tfx_compat.PUSHED_DESTINATION_PROPERTY


def test_import_schema_gen_builds_its_own_spec_and_hands_it_to_base_component():
    """``init_component_with_spec`` skips ImportSchemaGen.__init__; that is only safe while it does nothing else."""
    from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
    from tfx.dsl.components.base import base_component

    source = inspect.getsource(ImportSchemaGen.__init__)
    assert "ImportSchemaGenSpec(" in source and "super().__init__(spec=spec)" in source
    assert list(inspect.signature(base_component.BaseComponent.__init__).parameters)[:2] == ["self", "spec"]


def test_a_component_accepts_a_subclass_of_its_spec_class_with_other_inputs():
    from pipeline.components.curated_schema import CuratedSchemaGen
    from pipeline.components.model_selection import ModelSelectorSpec

    spec_class = tfx_compat.spec_class_with_inputs(ModelSelectorSpec, {})
    assert issubclass(spec_class, ModelSelectorSpec) and spec_class.INPUTS == {}
    component = CuratedSchemaGen(schema_file="/nonexistent/schema.pbtxt")
    assert component.id == "ImportSchemaGen" and component.exec_properties["schema_fingerprint"] == ""


def test_the_legacy_driver_still_prepares_output_artifacts_with_component_info():
    from tfx.dsl.components.base import base_driver

    parameters = inspect.signature(base_driver.BaseDriver._prepare_output_artifacts).parameters
    assert "component_info" in parameters
    assert "_prepare_output_artifacts(" in inspect.getsource(base_driver.BaseDriver.pre_execution)


def test_tft_tracks_the_transform_graph_by_the_loaders_instance_dict():
    """TFT's own TransformFeaturesLayer tracks the loader's state exactly as track_transform_graph does."""
    from tensorflow_transform import output_wrapper

    source = inspect.getsource(output_wrapper.TransformFeaturesLayer.__init__)
    assert "self._saved_model_loader_tracked_dict = self._saved_model_loader.__dict__" in source


def test_tft_prunes_a_tf1_transform_graph_by_the_fed_inputs_alone():
    """``load_transform_graph`` keeps one pruned graph per set of fed inputs: TFT must still prune through the
    loader's ``_wrapped_function`` with outputs that follow from the inputs."""
    from tensorflow_transform.saved import saved_transform_io_v2

    source = " ".join(inspect.getsource(saved_transform_io_v2.SavedModelLoader._apply_v1_transform_model_in_v2).split())
    assert "fetches = self._get_fetches(feeds) pruned = self._wrapped_function.prune(feeds, fetches)" in source
    assert "feeds" in inspect.signature(saved_transform_io_v2.SavedModelLoader._get_fetches).parameters
    # The feeds follow the order of the caller's dict, which load_transform_graph puts in name order.
    from tensorflow_transform.saved import saved_transform_io

    expand = inspect.getsource(saved_transform_io._expand_input_map)
    assert "for logical_name, replacement in logical_input_map.items():" in expand
    assert "for name in input_map:" in source


def test_a_run_id_set_in_the_ir_survives_local_dag_runners_own_substitution(tmp_path):
    """``run_locally_as`` sets the run id before ``run_with_ir`` tries to set its own."""
    from tfx.dsl.compiler import compiler
    from tfx.dsl.compiler import constants as compiler_constants
    from tfx.orchestration.local import local_dag_runner
    from tfx.orchestration.portable import runtime_parameter_utils

    from pipeline.config import load_config
    from pipeline.pipeline import create_pipeline

    ir = compiler.Compiler().compile(create_pipeline(load_config("local", home=str(tmp_path))))
    name = compiler_constants.PIPELINE_RUN_ID_PARAMETER_NAME
    assert ir.runtime_spec.pipeline_run_id.WhichOneof("value") == "runtime_parameter"
    runtime_parameter_utils.substitute_runtime_parameter(ir, {name: "ours"})
    runtime_parameter_utils.substitute_runtime_parameter(ir, {name: "local-dag-runners-own"})
    assert ir.runtime_spec.pipeline_run_id.field_value.string_value == "ours"
    source = inspect.getsource(local_dag_runner.LocalDagRunner.run_with_ir)
    assert "substitute_runtime_parameter" in source and "PIPELINE_RUN_ID_PARAMETER_NAME" in source


def test_csv_example_gens_expand_does_only_what_our_copy_repeats():
    """``tfx_compat.csv_example_gen.CsvToExample`` repeats TFX's ``_CsvToExample.expand`` with another header
    reader; this fails when TFX changes a step, so the copy is checked again."""
    from tfx.components.example_gen.csv_example_gen import executor as csv_executor

    source = inspect.getsource(csv_executor._CsvToExample.expand)
    steps = [
        "csv_files = fileio.glob(self._csv_pattern)",
        "column_names = io_utils.load_csv_column_names(csv_files[0])",
        "if io_utils.load_csv_column_names(csv_file) != column_names:",
        "'CreateFilenames' >> beam.Create(csv_files)",
        "'ReadFromText' >> beam.ParDo(_ReadCsvRecordsFromTextFile())",
        "'ParseCSVLine' >> beam.ParDo(csv_decoder.ParseCSVLine(delimiter=','))",
        "'ExtractParsedCSVLines' >> beam.Keys())",
        "csv_decoder.ColumnTypeInferrer(column_names, skip_blank_lines=True))",
        "'ToTFExample' >> beam.ParDo(_ParsedCsvToTfExample(), column_infos))",
    ]
    flat = " ".join(source.split())
    assert [step for step in steps if " ".join(step.split()) not in flat] == []
    assert flat.count(">>") == 6  # no step besides these
    assert csv_executor.Executor.GetInputSourceToExamplePTransform(None) is csv_executor._CsvToExample
    # The first line of each file is skipped whole, so a byte-order mark never reaches a data row.
    assert "_ = file.readline()" in inspect.getsource(csv_executor._ReadCsvRecordsFromTextFile.process)


def _deterministic(example: bytes | Any) -> bytes:
    """A tf.Example (message or bytes) serialized deterministically: equal bytes for equal messages."""
    import tensorflow as tf

    if isinstance(example, bytes):
        example = tf.train.Example.FromString(example)
    return example.SerializeToString(deterministic=True)


def _examples_of(transform: type, input_base: Path, output: Path) -> list[bytes]:
    """The tf.Examples an ExampleGen PTransform makes of the CSV files in ``input_base``, serialized
    deterministically, sorted."""
    import apache_beam as beam
    import tensorflow as tf

    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        _ = (
            pipeline
            | transform({"input_base": str(input_base)}, "*")
            | beam.Map(_deterministic)
            | beam.io.WriteToTFRecord(str(output), shard_name_template="")
        )
    return sorted(record.numpy() for record in tf.data.TFRecordDataset(str(output)))


def test_csv_example_gen_reads_a_byte_order_mark_file_as_tfx_reads_the_file_without_it(tmp_path):
    """Excel's "CSV UTF-8" file gives the same tf.Examples through our executor as the same file without the
    byte-order mark through TFX's: the first column keeps its name, and no data row changes."""
    import tensorflow as tf
    from tfx.components.example_gen.csv_example_gen import executor as csv_executor

    from pipeline.config import PROJECT_DIR
    from tfx_compat import csv_example_gen

    lines = (PROJECT_DIR / "data" / "taxi.csv").read_bytes().splitlines(keepends=True)[:201]
    lines[7] = lines[7].replace(b"Cash", b'"Cash, ""coins"""')  # a quoted value still goes through tfx_bsl
    (tmp_path / "excel").mkdir()
    (tmp_path / "excel" / "taxi.csv").write_bytes(b"\xef\xbb\xbf" + b"".join(lines))
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "taxi.csv").write_bytes(b"".join(lines))

    ours = _examples_of(csv_example_gen.CsvToExample, tmp_path / "excel", tmp_path / "ours.tfrecord")
    assert ours == _examples_of(csv_executor._CsvToExample, tmp_path / "plain", tmp_path / "plain.tfrecord")
    assert len(ours) == 200
    names = {name for example in ours for name in tf.train.Example.FromString(example).features.feature}
    assert "pickup_community_area" in names and not any(name.startswith("\ufeff") for name in names)
    assert b'Cash, "coins"' in b"".join(ours)
    # TFX's own executor on the Excel file: the mark ends up in the first column's name.
    theirs = _examples_of(csv_executor._CsvToExample, tmp_path / "excel", tmp_path / "theirs.tfrecord")
    assert "\ufeffpickup_community_area" in tf.train.Example.FromString(theirs[0]).features.feature


AWKWARD_ROWS = [
    # int, float, string, untyped (always empty), int
    [b"0", b"0", b"a", b"", b"-1"],
    [b"9223372036854775807", b"-0.0", "Ünïcødé \u2603".encode(), b"", b"-9223372036854775808"],
    [b" 12 ", b"1e40", b"x" * 300, b"", b"+7"],  # int() takes spaces and signs; 1e40 is beyond float32
    [b"", b"nan", b"", b"", b"127"],  # empty cells: empty value lists
    [b"128", b"-inf", b"comma, inside", b"", b"1_000"],
    [b"16384", b"1e-50", b"\x00\x01", b"", b"300"],
    [b"", b"", b"", b"", b""],
]


def test_serialized_examples_are_tfxs_messages_serialized_deterministically():
    """``ExampleEncoder`` gives, byte for byte, what TFX's ``_ParsedCsvToTfExample`` builds, serialized
    deterministically (the bytes TFX hashes to choose the split), on awkward cells of every column type."""
    from tfx.components.example_gen.csv_example_gen import executor as csv_executor
    from tfx_bsl.coders import csv_decoder

    from tfx_compat.serialized_examples import ExampleEncoder

    kinds = csv_decoder.ColumnType
    # Names out of order, one non-ASCII: the bytes put the features in name order.
    columns = [
        csv_decoder.ColumnInfo("trip_seconds", kinds.INT),
        csv_decoder.ColumnInfo("fare", kinds.FLOAT),
        csv_decoder.ColumnInfo("zoné", kinds.STRING),
        csv_decoder.ColumnInfo("always_empty", kinds.UNKNOWN),
        csv_decoder.ColumnInfo("Area", kinds.INT),
    ]
    encoder = ExampleEncoder(columns)
    tfx = csv_executor._ParsedCsvToTfExample()
    for row in AWKWARD_ROWS:
        (message,) = tfx.process(row, columns)
        assert encoder.encode(row) == message.SerializeToString(deterministic=True), row


# Columns whose cells make tfx_bsl infer each type, and the cells where a quick pattern could go wrong: ints with
# spaces, signs, underscores or 19+ digits, floats int() refuses, words float() takes (nan, inf), empty cells.
TYPED_COLUMNS = {
    "plain_int": ["1", "-2", "+3", "007", "", "123456789012345678"],
    "odd_int": [" 12", "1_000", "4 ", "", "5", "6"],  # int() takes them all: INT
    "huge_int": ["1", "9223372036854775807", "2", "", "3", "4"],  # int64's largest: still INT
    "too_big_int": ["1", "9223372036854775808", "2", "", "3", "4"],  # beyond int64: STRING
    "float": ["1.5", "-.5", "2.", "1e5", "", "3"],
    "odd_float": ["nan", "inf", "-Infinity", " 1.5 ", "1_0.5", "2"],  # float() takes them all: FLOAT
    "text": ["1", "2.5", "Cash", "", "Ünïcødé", "x"],
    "empty": ["", "", "", "", "", ""],
}


def _write_typed_csv(path: Path, columns: dict[str, list[str]], extra: str = "") -> None:
    rows = zip(*columns.values(), strict=True)
    path.write_text(",".join(columns) + "\n" + "".join(",".join(row) + "\n" for row in rows) + extra)


def test_column_types_from_arrow_are_tfxs(tmp_path):
    """``tfx_compat.column_types`` types every column as tfx_bsl's ``ColumnTypeInferrer`` does row by row."""
    from tfx_bsl.coders import csv_decoder

    from tfx_compat import column_types

    path = tmp_path / "typed.csv"
    _write_typed_csv(path, TYPED_COLUMNS, extra="\n")  # a blank line: skipped by both
    names = list(TYPED_COLUMNS)
    by_columns = column_types._infer_by_columns([str(path)], names)
    assert by_columns is not None  # this file is typed from Arrow
    assert by_columns == column_types.infer_by_rows([str(path)], names)
    kinds = csv_decoder.ColumnType
    assert [info.type for info in by_columns] == [
        kinds.INT,
        kinds.INT,
        kinds.INT,
        kinds.STRING,
        kinds.FLOAT,
        kinds.FLOAT,
        kinds.STRING,
        kinds.UNKNOWN,
    ]


def test_a_windows_csv_is_typed_from_arrow_as_tfx_types_it(tmp_path):
    """CRLF line ends (Excel's CSV) end a line for both readers: the file is typed from Arrow, with TFX's types."""
    from tfx_compat import column_types

    path = tmp_path / "typed.csv"
    _write_typed_csv(path, TYPED_COLUMNS)
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    names = list(TYPED_COLUMNS)
    by_columns = column_types._infer_by_columns([str(path)], names)
    assert by_columns is not None
    assert by_columns == column_types.infer_by_rows([str(path)], names)


@pytest.mark.parametrize(
    "extra",
    ['"a, b",1,2,3,4,5,6,7\n', "1,2\n", "1,2,3,4,5,6,7,8\r", "1,2\r,3,4,5,6,7,8\n"],
    ids=["quoted", "short-row", "carriage-return-at-the-end", "carriage-return-in-a-row"],
)
def test_column_types_are_tfxs_row_by_row_where_arrow_could_read_otherwise(tmp_path, extra):
    from tfx_compat import column_types

    path = tmp_path / "typed.csv"
    _write_typed_csv(path, TYPED_COLUMNS, extra=extra)
    names = list(TYPED_COLUMNS)
    assert column_types._infer_by_columns([str(path)], names) is None
    if extra in ('"a, b",1,2,3,4,5,6,7\n', "1,2,3,4,5,6,7,8\r"):  # the others: TFX's reader refuses them too
        assert column_types.infer_column_types([str(path)], names) == column_types.infer_by_rows([str(path)], names)


def test_our_csv_example_gen_splits_and_writes_the_examples_tfxs_does(tmp_path):
    """Both executors' ``Do`` on the same CSV: the same Examples in the same splits (ours writes each
    deterministically serialized, so the records are compared as messages)."""
    import json

    import tensorflow as tf
    from tfx.components.example_gen.csv_example_gen import executor as csv_executor
    from tfx.dsl.components.base import base_beam_executor
    from tfx.types import standard_artifacts, standard_component_specs

    from pipeline.config import PROJECT_DIR, load_config
    from pipeline.pipeline import example_splits
    from tfx_compat import csv_example_gen

    (tmp_path / "data").mkdir()
    lines = (PROJECT_DIR / "data" / "taxi.csv").read_bytes().splitlines(keepends=True)[:2001]
    (tmp_path / "data" / "taxi.csv").write_bytes(b"".join(lines))
    properties = csv_example_gen.exec_properties(str(tmp_path / "data"), example_splits(load_config()))
    splits = {}
    for name, executor_class in (("tfx", csv_executor.Executor), ("ours", csv_example_gen.Executor)):
        examples = standard_artifacts.Examples()
        examples.uri = str(tmp_path / name)
        context = base_beam_executor.BaseBeamExecutor.Context(tmp_dir=str(tmp_path / f"tmp-{name}"), unique_id=name)
        executor_class(context).Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, dict(properties))
        assert json.loads(examples.split_names) == ["train", "eval"]
        splits[name] = {
            split: sorted(
                _deterministic(record.numpy())
                for record in tf.data.TFRecordDataset(
                    [str(path) for path in (tmp_path / name / f"Split-{split}").glob("*.gz")], compression_type="GZIP"
                )
            )
            for split in ("train", "eval")
        }
    assert splits["ours"] == splits["tfx"]
    assert len(splits["ours"]["train"]) + len(splits["ours"]["eval"]) == 2000
    assert 300 < len(splits["ours"]["eval"]) < 500


def test_example_gens_do_writes_through_write_split_looked_up_at_run_time():
    """``tfx_compat.csv_example_gen.Executor.Do`` replaces ``write_split.WriteSplit`` for the length of TFX's
    ``Do``: that works only while ``Do`` looks it up in the module and ``WriteSplit`` is the step that shuffles."""
    from tfx.components.example_gen import base_example_gen_executor, write_split

    do = " ".join(inspect.getsource(base_example_gen_executor.BaseExampleGenExecutor.Do).split())
    assert do.count("write_split.WriteSplit(") == 1 and do.count(">>") == 1  # the only step Do adds
    assert "beam.transforms.Reshuffle()" in inspect.getsource(write_split.WriteSplit)


def _records(count: int) -> list[bytes]:
    return [f"record {index:05d}".encode() for index in range(count)]


def test_shuffled_shards_hold_every_record_once_in_random_order_and_leave_no_temporary_file(tmp_path):
    import apache_beam as beam
    import tensorflow as tf

    from tfx_compat.shuffled_shards import WriteShuffledShards

    records = _records(3000)
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        _ = (
            pipeline
            | beam.Create(records, reshuffle=False)
            | WriteShuffledShards(str(tmp_path / "Split-train"), str(tmp_path / "buckets"), 3)
        )
    files = sorted(path.name for path in (tmp_path / "Split-train").iterdir())
    assert files == [f"data_tfrecord-{shard:05d}-of-00003.gz" for shard in range(3)]
    shards = [
        [record.numpy() for record in tf.data.TFRecordDataset(str(tmp_path / "Split-train" / name), "GZIP")]
        for name in files
    ]
    assert sorted(record for shard in shards for record in shard) == records
    assert all(800 < len(shard) < 1200 for shard in shards), [len(shard) for shard in shards]  # 1,000 expected
    assert all(shard != sorted(shard) for shard in shards)  # in input order with probability 1/1000!
    assert list((tmp_path / "buckets").iterdir()) == []


@pytest.mark.parametrize(
    ("input_bytes", "shards"), [(0, 1), (2_000_000, 1), (32 * 2**20, 1), (32 * 2**20 + 1, 2), (179_000_000, 6)]
)
def test_a_split_gets_one_shard_per_32_mib_of_input(input_bytes, shards):
    from tfx_compat.shuffled_shards import shards_for

    assert shards_for(input_bytes) == shards


def test_a_flat_signature_call_gives_what_the_structured_call_gives(tmp_path):
    """``flat_signature_call`` feeds inputs by name and names outputs as TensorFlow's own structured call does, on a
    restored signature whose inputs and outputs are declared out of name order and use a variable (a capture)."""
    import tensorflow as tf

    class Model(tf.Module):
        def __init__(self) -> None:
            self.scale = tf.Variable(3.0)

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.float32, name="zeta"),
                tf.TensorSpec([None], tf.int64, name="alpha"),
                tf.TensorSpec([None], tf.string, name="mid"),
            ]
        )
        def serve(self, zeta, alpha, mid):
            return {
                "total": zeta * self.scale + tf.cast(alpha, tf.float32),
                "length": tf.strings.length(mid),
                "alpha_only": alpha * 2,
            }

    model = Model()
    tf.saved_model.save(model, str(tmp_path), signatures={"serving_default": model.serve})
    signature = tf.saved_model.load(str(tmp_path)).signatures["serving_default"]
    tensors = {
        "zeta": tf.constant([1.5, -2.0]),
        "alpha": tf.constant([10, 20], tf.int64),
        "mid": tf.constant([b"abc", b""]),
    }
    flat_call = tfx_compat.flat_signature_call(signature)
    assert flat_call is not None
    expected = signature(**tensors)
    got = flat_call(tensors)
    assert sorted(got) == sorted(expected) == ["alpha_only", "length", "total"]
    for name in expected:
        assert got[name].dtype == expected[name].dtype
        assert got[name].numpy().tolist() == expected[name].numpy().tolist()
    assert got["total"].numpy().tolist() == [14.5, 14.0]


def test_a_signature_with_composite_inputs_gets_no_flat_call():
    """A signature the flat call cannot feed (a SparseTensor input) is left to the structured call."""
    import tensorflow as tf

    function = tf.function(lambda sparse: {"out": tf.sparse.reduce_sum(sparse)}).get_concrete_function(
        tf.SparseTensorSpec([None, 3], tf.float32)
    )
    assert tfx_compat.flat_signature_call(function) is None


def test_beams_callers_look_get_dofn_specs_up_on_the_userstate_module():
    """``tfx_compat.beam_dofn_specs`` replaces the module attribute: every caller must read it from there."""
    import apache_beam
    from apache_beam.transforms import userstate

    beam_root = Path(apache_beam.__file__).parent
    by_name = [
        str(path.relative_to(beam_root))
        for path in beam_root.rglob("*.py")
        if not path.name.endswith("_test.py") and "import get_dofn_specs" in path.read_text(encoding="utf-8")
    ]
    assert by_name == ["runners/direct/transform_evaluator.py"]  # the legacy DirectRunner's, which runs don't use
    callers = [beam_root / "transforms" / "core.py", beam_root / "runners" / "common.py"]
    assert all("userstate.get_dofn_specs(" in path.read_text() for path in callers)
    assert "get_dofn_specs(dofn)" in inspect.getsource(userstate.is_stateful_dofn)


def test_dofn_specs_are_computed_once_per_dofn_and_a_stateful_pipeline_still_runs(monkeypatch):
    import apache_beam as beam
    from apache_beam.coders import VarIntCoder
    from apache_beam.runners import common
    from apache_beam.testing.util import assert_that, equal_to
    from apache_beam.transforms import userstate

    from tfx_compat import beam_dofn_specs

    beam_dofn_specs.install()
    assert userstate.get_dofn_specs is beam_dofn_specs.get_dofn_specs
    beam_dofn_specs.install()  # idempotent: still Beam's own underneath, not itself
    assert beam_dofn_specs._ORIGINAL is not beam_dofn_specs.get_dofn_specs

    class Count(beam.DoFn):
        SEEN = userstate.BagStateSpec("seen", VarIntCoder())

        def process(self, element, seen=beam.DoFn.StateParam(SEEN)):  # noqa: B008 - Beam's way to declare state
            seen.add(element[1])
            yield element[0], sum(seen.read())

    wrapped: list[str] = []
    original_wrapper = common.MethodWrapper
    monkeypatch.setattr(
        common, "MethodWrapper", lambda dofn, name: wrapped.append(name) or original_wrapper(dofn, name)
    )
    count = Count()
    first = userstate.get_dofn_specs(count)
    looked_at = len(wrapped)
    again = userstate.get_dofn_specs(count)
    assert looked_at > 0 and len(wrapped) == looked_at  # the second answer came from memory
    assert first == again == ({Count.SEEN}, set()) and userstate.is_stateful_dofn(count)
    assert userstate.get_dofn_specs(beam.Map(str).dofn) == (set(), set())
    monkeypatch.undo()

    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        counted = pipeline | beam.Create([("a", 1), ("a", 2), ("b", 5)]) | beam.ParDo(Count())
        assert_that(counted | beam.combiners.Top.PerKey(1), equal_to([("a", [3]), ("b", [5])]))


def test_beams_view_as_is_a_new_parse_of_the_flags_sharing_the_options_dict():
    """``tfx_compat.beam_option_views`` keeps views on the strength of this: a view is ``cls(self._flags)`` whose
    values are read from the source's own ``_all_options`` dict, so a kept view and a new one answer alike."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from tfx_compat import beam_option_views

    source = inspect.getsource(beam_option_views._ORIGINAL or PipelineOptions.view_as)
    assert "view = cls(self._flags)" in source and "view._all_options = self._all_options" in source
    assert "return self._all_options[name]" in inspect.getsource(PipelineOptions.__getattr__)
    assert "self._all_options[name] = value" in inspect.getsource(PipelineOptions.__setattr__)


def test_option_views_are_parsed_once_and_still_share_values_and_a_pipeline_runs(monkeypatch):
    import apache_beam as beam
    from apache_beam.options import pipeline_options
    from apache_beam.options.pipeline_options import DebugOptions, PipelineOptions, StandardOptions, TypeOptions
    from apache_beam.testing.util import assert_that, equal_to

    from tfx_compat import beam_option_views

    beam_option_views.install()
    beam_option_views.install()  # idempotent: still Beam's own underneath, not itself
    assert pipeline_options.PipelineOptions.view_as is beam_option_views.view_as
    assert beam_option_views._ORIGINAL is not beam_option_views.view_as

    options = PipelineOptions(["--runner=FnApiRunner", "--experiments=a", "--pipeline_type_check"])
    parses: list[type] = []
    original_init = PipelineOptions.__init__
    monkeypatch.setattr(
        PipelineOptions, "__init__", lambda self, *a, **k: parses.append(type(self)) or original_init(self, *a, **k)
    )
    first = options.view_as(TypeOptions)
    assert options.view_as(TypeOptions) is first and parses == [TypeOptions]  # the second view came from memory
    assert first.pipeline_type_check and options.view_as(StandardOptions).runner == "FnApiRunner"

    options.view_as(StandardOptions).runner = "DirectRunner"  # set through one view, seen through every view
    assert options.view_as(StandardOptions).runner == "DirectRunner" == options.get_all_options()["runner"]
    options.view_as(DebugOptions).add_experiment("b")
    assert options.view_as(DebugOptions).experiments == ["a", "b"]

    other = PipelineOptions(["--runner=FnApiRunner"])  # another source: its own views
    assert other.view_as(StandardOptions).runner == "FnApiRunner" and other.view_as(TypeOptions) is not first
    options._all_options = dict(options._all_options, runner="FnApiRunner")  # a replaced dict: a new view
    assert options.view_as(StandardOptions).runner == "FnApiRunner"
    from_argv = PipelineOptions()  # parsed from sys.argv: never kept
    assert from_argv.view_as(TypeOptions) is not from_argv.view_as(TypeOptions)
    monkeypatch.undo()

    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as pipeline:
        assert_that(pipeline | beam.Create([1, 2, 3]) | beam.Map(lambda x: x * 2), equal_to([2, 4, 6]))


def test_beams_module_scans_are_looked_up_by_name_and_work_as_they_did():
    """``tfx_compat.beam_module_scans`` replaces two module attributes and answers as the functions it replaces."""
    import objsize
    from apache_beam.internal.cloudpickle import cloudpickle
    from apache_beam.runners.worker import statecache

    from tfx_compat import beam_module_scans

    originals = beam_module_scans._ORIGINALS
    assert "= _find_imported_submodules(" in inspect.getsource(cloudpickle._function_getstate)
    finder = inspect.getsource(originals.get("find_imported_submodules", cloudpickle._find_imported_submodules))
    for step in (
        'prefix = x.__name__ + "."',
        "for name in list(sys.modules):",
        "name.startswith(prefix)",
        'tokens = set(name[len(prefix):].split("."))',
        "if not tokens - set(code.co_names):",
    ):
        assert step in finder
    assert inspect.getsource(statecache.StateCache).count("weight = get_deep_size(value)") == 2  # get and put
    weigher = inspect.getsource(originals.get("get_deep_size", statecache.get_deep_size))
    for setting in ("get_size_func=_size_func", "get_referents_func=_get_referents_func", "filter_func=_filter_func"):
        assert setting in weigher
    exclusions = inspect.getsource(objsize.traverse.TraversalContext._update_exclude_set)
    assert "self.exclude_set.add(id(None))" in exclusions and "_iter_modules_globals()" in exclusions
    assert "yield vars(mod)" in inspect.getsource(objsize.traverse._iter_modules_globals)


def test_module_scans_answer_as_beams_own_and_pipelines_with_pickled_functions_and_side_inputs_run(monkeypatch):
    import concurrent.futures
    import os.path
    import types

    import apache_beam as beam
    import numpy as np
    from apache_beam.internal.cloudpickle import cloudpickle
    from apache_beam.runners.worker import statecache
    from apache_beam.testing.util import assert_that, equal_to

    from tfx_compat import beam_module_scans

    beam_module_scans.install()
    beam_module_scans.install()  # idempotent: still Beam's own underneath, not itself
    assert cloudpickle._find_imported_submodules is beam_module_scans.find_imported_submodules
    assert statecache.get_deep_size is beam_module_scans.get_deep_size
    original_finder = beam_module_scans._ORIGINALS["find_imported_submodules"]
    original_weigher = beam_module_scans._ORIGINALS["get_deep_size"]
    assert original_finder is not beam_module_scans.find_imported_submodules

    def uses_submodules():
        return concurrent.futures.ThreadPoolExecutor, os.path.join, np.linalg.norm, np.random.default_rng

    dependencies = [concurrent, os, np, beam, "not a module"]
    found = beam_module_scans.find_imported_submodules(uses_submodules.__code__, dependencies)
    assert found == original_finder(uses_submodules.__code__, dependencies)
    assert {concurrent.futures, np.linalg, np.random} <= set(found)

    values = [
        [np.zeros(1000), "text" * 50, {"a": (1, 2.5, b"x" * 300)}],
        {"module": np, "function": np.mean, "class": statecache.StateCache},  # module globals: not counted
        (None, [None] * 10),
    ]
    for value in values:
        assert beam_module_scans.get_deep_size(value) == original_weigher(value)

    # A module loaded later is seen by both: its globals excluded from weights, its name found as a submodule.
    ids_before = beam_module_scans._module_globals_ids()
    later = types.ModuleType("concurrent.loaded_later")
    later.big = list(range(10_000))
    monkeypatch.setitem(sys.modules, "concurrent.loaded_later", later)
    assert id(vars(later)) not in ids_before and id(vars(later)) in beam_module_scans._module_globals_ids()
    assert beam_module_scans.get_deep_size([later]) == original_weigher([later])

    def uses_it():
        return concurrent.loaded_later.big

    assert later in beam_module_scans.find_imported_submodules(uses_it.__code__, [concurrent])
    monkeypatch.undo()
    assert beam_module_scans.find_imported_submodules(uses_it.__code__, [concurrent]) == []  # unloaded again

    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        side = pipeline | "side" >> beam.Create([10, 20])
        added = pipeline | beam.Create([1, 2]) | beam.Map(lambda x, side: x + sum(side), side=beam.pvalue.AsList(side))
        assert_that(added, equal_to([31, 32]))
