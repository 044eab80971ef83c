"""CsvExampleGen's executor with the header read as ``tfx_compat.csv_column_names`` reads it.

Why: a CSV saved by Excel as "CSV UTF-8" starts with a byte-order mark. TFX 1.16's CsvExampleGen takes the column
names from the first line with ``io_utils.load_csv_column_names`` (split at commas, nothing stripped), so the mark
would become part of the first column's name (``\\ufeffpickup_community_area``) and the pipeline would find that
feature missing. Everything else is TFX's: data lines are read by TFX's own ``_ReadCsvRecordsFromTextFile``, which
skips each file's first line as a whole (mark included) and joins quoted values that span lines; cells are parsed
by tfx_bsl's ``ParseCSVLine`` and typed by its ``ColumnTypeInferrer``, and ``_ParsedCsvToTfExample`` makes the
examples, as in ``csv_example_gen.executor._CsvToExample.expand``, with one change: the column types are inferred
before the Beam job (``tfx_compat.column_types``), not inside it, so Beam streams the rows instead of holding them all;
and each row's Example is its serialized bytes, written directly (``tfx_compat.serialized_examples``: the bytes of
the message TFX builds, serialized deterministically, which is also what TFX hashes to pick the row's split).
And the splits are written by ``tfx_compat.shuffled_shards`` (shuffled, in bounded memory, in several files) instead
of TFX's ``WriteSplit``, whose Reshuffle held every example in memory (3.2 GB of 4.0 at 1.5 million trips).

The pipeline hands ``Executor`` to a ``FileBasedExampleGen`` through ``custom_executor_spec`` (TFX's documented
way to give an ExampleGen another executor; TFX 1.16's ``CsvExampleGen`` takes no executor spec). Steps name the
class by its module path, so this module must import wherever ExampleGen runs (the venv, the pipeline image).

Relies on (asserted in ``tests/unit/test_tfx_compat.py``): the private ``_ReadCsvRecordsFromTextFile`` and
``_ParsedCsvToTfExample`` of ``tfx.components.example_gen.csv_example_gen.executor``, and ``_CsvToExample.expand``
doing nothing beyond the steps repeated below.
"""

from __future__ import annotations

import os
import unittest.mock
from collections.abc import Iterator
from typing import Any, Union

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen import write_split
from tfx.components.example_gen.csv_example_gen import executor as csv_executor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils
from tfx_bsl.coders import csv_decoder

from tfx_compat import column_types, csv_column_names, serialized_examples, shuffled_shards


def read_column_names(csv_file: str) -> list[str]:
    """The column names of ``csv_file`` (any file system TFX reads), without a byte-order mark."""
    with fileio.open(csv_file, "rb") as handle:
        return csv_column_names(handle.readline())


class ParsedCsvToSerializedExample(beam.DoFn):
    """TFX's ``_ParsedCsvToTfExample`` (blank records skipped, another width refused with TFX's message), each
    Example given as its deterministic serialization (``serialized_examples.ExampleEncoder``)."""

    def __init__(self) -> None:
        self._encoder: serialized_examples.ExampleEncoder | None = None

    def process(self, csv_cells: list[bytes], column_infos: list[csv_decoder.ColumnInfo]) -> Iterator[bytes]:
        if self._encoder is None:
            self._encoder = serialized_examples.ExampleEncoder(column_infos)
        if not csv_cells:
            return
        if len(csv_cells) != self._encoder.width:
            raise ValueError(f"Invalid CSV line: {csv_cells}")
        yield self._encoder.encode(csv_cells)


@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(Union[bytes, tf.train.Example])  # noqa: UP007 - Beam reads typing.Union
class CsvToExample(beam.PTransform):
    """TFX's ``_CsvToExample`` (CSV files of one split -> tf.Examples) with ``read_column_names`` for the header,
    giving serialized Examples (TFX's split and write steps take bytes as they are).

    Where the split config splits by a feature's value (``partition_feature_name``), TFX's split step reads the
    feature from a message, so there the rows are TFX's ``tf.train.Example`` messages.
    """

    def __init__(self, exec_properties: dict[str, Any], split_pattern: str):
        """Same arguments as TFX's: ``exec_properties`` holds ``input_base``; ``split_pattern`` is relative to it."""
        super().__init__()
        self._csv_pattern = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
        output_config = example_gen_pb2.Output()
        if exec_properties.get(standard_component_specs.OUTPUT_CONFIG_KEY):
            proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        self._as_messages = output_config.split_config.HasField("partition_feature_name")

    def expand(self, pipeline: beam.Pipeline) -> beam.PCollection:
        csv_files = fileio.glob(self._csv_pattern)
        if not csv_files:
            raise RuntimeError(f"Split pattern {self._csv_pattern} does not match any files.")
        column_names = read_column_names(csv_files[0])
        for csv_file in csv_files[1:]:
            if read_column_names(csv_file) != column_names:
                raise RuntimeError(f"Files in same split {self._csv_pattern} have different header.")
        # Column types first, outside Beam, as TFX infers them (tfx_compat.column_types): TFX computes them in
        # the same Beam job as a side input of the conversion, so Beam keeps every parsed row in memory until
        # the last one has been typed (4.7 GB at 1.5 million trips). Read twice, the rows stream.
        column_infos = column_types.infer_column_types(csv_files, column_names)
        return (
            pipeline
            | "CreateFilenames" >> beam.Create(csv_files)
            | "ReadFromText" >> beam.ParDo(csv_executor._ReadCsvRecordsFromTextFile())
            | "ParseCSVLine" >> beam.ParDo(csv_decoder.ParseCSVLine(delimiter=","))
            | "ExtractParsedCSVLines" >> beam.Keys()
            | "ToTFExample"
            >> beam.ParDo(
                csv_executor._ParsedCsvToTfExample() if self._as_messages else ParsedCsvToSerializedExample(),
                column_infos,
            )
        )


class Executor(csv_executor.Executor):
    """TFX's CSV ExampleGen executor, reading column names without a byte-order mark (``CsvToExample``) and
    writing each split as shuffled shards in bounded memory (``tfx_compat.shuffled_shards``)."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802 - TFX's method name
        return CsvToExample

    def Do(  # noqa: N802 - TFX's method name
        self, input_dict: dict[str, list[Any]], output_dict: dict[str, list[Any]], exec_properties: dict[str, Any]
    ) -> None:
        """TFX's ``Do``, whose only write step, ``write_split.WriteSplit``, is ``WriteShuffledShards`` meanwhile.

        TFX's ``Do`` looks ``WriteSplit`` up in its module when it builds the Beam job (asserted in
        ``tests/unit/test_tfx_compat.py``), so replacing it there for the length of the call is enough.
        """
        if exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY) == example_gen_pb2.FORMAT_PARQUET:
            super().Do(input_dict, output_dict, exec_properties)  # TFX's own writer for Parquet payloads
            return
        shards = shuffled_shards.shards_for(_input_bytes(exec_properties))
        temporary_dir = self._get_tmp_dir()

        def write_split_in_shards(output_split_path: str, *_: Any) -> beam.PTransform:
            split = os.path.basename(output_split_path.rstrip("/"))
            buckets = os.path.join(temporary_dir, f"shuffle-{split}")
            return shuffled_shards.WriteShuffledShards(output_split_path, buckets, shards)

        with unittest.mock.patch.object(write_split, "WriteSplit", write_split_in_shards):
            super().Do(input_dict, output_dict, exec_properties)


def _input_bytes(exec_properties: dict[str, Any]) -> int:
    """The size of every input file of every input split, which sets the number of output shards."""
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
    base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    files = {path for split in input_config.splits for path in fileio.glob(os.path.join(base, split.pattern))}
    return sum(tf.io.gfile.stat(path).length for path in files)


def exec_properties(input_base: str, splits: example_gen_pb2.Output) -> dict[str, Any]:
    """What TFX hands a CSV ExampleGen's executor for every CSV file in ``input_base`` split as ``splits`` (GZIP
    TFRecords of tf.Examples): for running an executor's ``Do`` directly (bench/example_gen.py, the tests)."""
    return {
        standard_component_specs.INPUT_BASE_KEY: input_base,
        standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(
            example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="single_split", pattern="*")])
        ),
        standard_component_specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(splits),
        standard_component_specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        standard_component_specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
    }
