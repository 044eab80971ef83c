"""TensorFlow's file formats read without TensorFlow: TFRecord files (gzipped or not), ``tf.train.Example`` and the
part of a SavedModel that names its signatures.

Importing TensorFlow costs 3-5 s (far more on a busy machine), and the run explorer only previews these files: the
framing of a TFRecord file is four fields, and the messages are declared here, field for field as TensorFlow's
``example.proto``, ``feature.proto``, ``saved_model.proto`` and ``meta_graph.proto`` number them, in a private
descriptor pool (so they never clash with TensorFlow's own classes in a process that has imported it). Only the
fields the previews show are declared; protobuf skips the others (a SavedModel's graph) while parsing.
``tests/e2e/test_artifact_views.py`` checks both against TensorFlow's own parsing.
"""

from __future__ import annotations

import functools
import gzip
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

_GZIP_MAGIC = b"\x1f\x8b"
_CRC_MASK_DELTA = 0xA282EAD8

# The messages, in protobuf's own text form of a FileDescriptorProto. A map field is declared as the repeated
# entry message it is on the wire (``key`` = 1, ``value`` = 2).
_DESCRIPTOR = """
name: "taxi_runs/tensorflow_subset.proto"
package: "taxi_runs.tf"
syntax: "proto3"
message_type {
  name: "BytesList"
  field { name: "value" number: 1 label: LABEL_REPEATED type: TYPE_BYTES }
}
message_type {
  name: "FloatList"
  field { name: "value" number: 1 label: LABEL_REPEATED type: TYPE_FLOAT }
}
message_type {
  name: "Int64List"
  field { name: "value" number: 1 label: LABEL_REPEATED type: TYPE_INT64 }
}
message_type {
  name: "Feature"
  field { name: "bytes_list" number: 1 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".taxi_runs.tf.BytesList"
          oneof_index: 0 }
  field { name: "float_list" number: 2 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".taxi_runs.tf.FloatList"
          oneof_index: 0 }
  field { name: "int64_list" number: 3 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".taxi_runs.tf.Int64List"
          oneof_index: 0 }
  oneof_decl { name: "kind" }
}
message_type {
  name: "FeatureEntry"
  field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
  field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".taxi_runs.tf.Feature" }
}
message_type {
  name: "Features"
  field { name: "feature" number: 1 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".taxi_runs.tf.FeatureEntry" }
}
message_type {
  name: "Example"
  field { name: "features" number: 1 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".taxi_runs.tf.Features" }
}
message_type {
  name: "Dim"
  field { name: "size" number: 1 label: LABEL_OPTIONAL type: TYPE_INT64 }
  field { name: "name" number: 2 label: LABEL_OPTIONAL type: TYPE_STRING }
}
message_type {
  name: "TensorShape"
  field { name: "dim" number: 2 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".taxi_runs.tf.Dim" }
  field { name: "unknown_rank" number: 3 label: LABEL_OPTIONAL type: TYPE_BOOL }
}
message_type {
  name: "TensorInfo"
  field { name: "name" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
  field { name: "dtype" number: 2 label: LABEL_OPTIONAL type: TYPE_INT32 }
  field { name: "tensor_shape" number: 3 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".taxi_runs.tf.TensorShape" }
  field { name: "coo_sparse" number: 4 label: LABEL_OPTIONAL type: TYPE_BYTES }
  field { name: "composite_tensor" number: 5 label: LABEL_OPTIONAL type: TYPE_BYTES }
}
message_type {
  name: "TensorInfoEntry"
  field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
  field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".taxi_runs.tf.TensorInfo" }
}
message_type {
  name: "SignatureDef"
  field { name: "inputs" number: 1 label: LABEL_REPEATED type: TYPE_MESSAGE
          type_name: ".taxi_runs.tf.TensorInfoEntry" }
  field { name: "outputs" number: 2 label: LABEL_REPEATED type: TYPE_MESSAGE
          type_name: ".taxi_runs.tf.TensorInfoEntry" }
  field { name: "method_name" number: 3 label: LABEL_OPTIONAL type: TYPE_STRING }
}
message_type {
  name: "SignatureEntry"
  field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
  field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".taxi_runs.tf.SignatureDef" }
}
message_type {
  name: "MetaInfoDef"
  field { name: "tags" number: 4 label: LABEL_REPEATED type: TYPE_STRING }
  field { name: "tensorflow_version" number: 5 label: LABEL_OPTIONAL type: TYPE_STRING }
}
message_type {
  name: "MetaGraphDef"
  field { name: "meta_info_def" number: 1 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".taxi_runs.tf.MetaInfoDef" }
  field { name: "signature_def" number: 5 label: LABEL_REPEATED type: TYPE_MESSAGE
          type_name: ".taxi_runs.tf.SignatureEntry" }
}
message_type {
  name: "SavedModel"
  field { name: "saved_model_schema_version" number: 1 label: LABEL_OPTIONAL type: TYPE_INT64 }
  field { name: "meta_graphs" number: 2 label: LABEL_REPEATED type: TYPE_MESSAGE
          type_name: ".taxi_runs.tf.MetaGraphDef" }
}
"""

# tensorflow/core/framework/types.proto's DataType numbers, named as ``tf.dtypes.DType.name`` names them.
DTYPE_NAMES = {
    1: "float32",
    2: "float64",
    3: "int32",
    4: "uint8",
    5: "int16",
    6: "int8",
    7: "string",
    8: "complex64",
    9: "int64",
    10: "bool",
    11: "qint8",
    12: "quint8",
    13: "qint32",
    14: "bfloat16",
    15: "qint16",
    16: "quint16",
    17: "uint16",
    18: "complex128",
    19: "float16",
    20: "resource",
    21: "variant",
    22: "uint32",
    23: "uint64",
}


@functools.cache
def message_class(name: str) -> Any:
    """The class of one of the messages above (``Example``, ``SavedModel``, ...): built once, on first use."""
    pool = _pool()
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"taxi_runs.tf.{name}"))


@functools.cache
def _pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(text_format.Parse(_DESCRIPTOR, descriptor_pb2.FileDescriptorProto()))
    return pool


def dtype_name(number: int) -> str:
    return DTYPE_NAMES.get(number, f"DataType {number}")


def example_values(serialized: bytes) -> dict[str, list[str | int | float]]:
    """A serialized ``tf.train.Example`` as feature name -> its values (text for bytes, floats as float32 shows them).

    An empty list is a feature present without a value: ExampleGen writes an empty CSV cell that way.
    """
    example = message_class("Example").FromString(serialized)
    values: dict[str, list[str | int | float]] = {}
    for entry in example.features.feature:
        kind = entry.value.WhichOneof("kind")
        if kind == "bytes_list":
            values[entry.key] = [value.decode("utf-8", "replace") for value in entry.value.bytes_list.value]
        elif kind == "float_list":
            values[entry.key] = [float32_shown(value) for value in entry.value.float_list.value]
        elif kind == "int64_list":
            values[entry.key] = list(entry.value.int64_list.value)
        else:
            values[entry.key] = []
    return values


def float32_shown(value: float) -> float:
    """The shortest decimal that is the same float32: 12.45, not 12.449999809265137."""
    stored = struct.pack("<f", value)
    for digits in range(6, 10):
        shown = float(f"{value:.{digits}g}")
        if struct.pack("<f", shown) == stored:
            return shown
    return value


def records(path: str | Path, limit: int | None = None) -> Iterator[bytes]:
    """The records of a TFRecord file, gzipped or not (told by the file's first bytes), each checked by its CRCs.

    Args:
        path: the file.
        limit: stop after this many records; all when None.
    """
    with _open(path) as handle:
        count = 0
        while limit is None or count < limit:
            length = _next_length(handle, path)
            if length is None:
                return
            data = _read_exactly(handle, length + 4, path)
            if _masked_crc(data[:-4]) != struct.unpack("<I", data[-4:])[0]:
                raise ValueError(f"{path}: a record's data does not match its CRC")
            count += 1
            yield data[:-4]


def count_records(path: str | Path) -> int:
    """How many records a TFRecord file holds: reads each record's length (checked by its CRC) and skips its data."""
    count = 0
    with _open(path) as handle:
        while (length := _next_length(handle, path)) is not None:
            handle.seek(length + 4, 1)
            count += 1
    return count


def _open(path: str | Path) -> BinaryIO:
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if gzipped else open(path, "rb")  # noqa: SIM115 - the caller closes it


def _next_length(handle: BinaryIO, path: str | Path) -> int | None:
    """The next record's length, or None at the end of the file."""
    header = handle.read(12)
    if not header:
        return None
    if len(header) < 12:
        raise ValueError(f"{path}: the file ends inside a record's header")
    length, crc = struct.unpack("<QI", header)
    if _masked_crc(header[:8]) != crc:
        raise ValueError(f"{path}: a record's length does not match its CRC (not a TFRecord file?)")
    return length


def _read_exactly(handle: BinaryIO, size: int, path: str | Path) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise ValueError(f"{path}: the file ends inside a record")
    return data


def _masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC-32C. ``google_crc32c`` comes with TFX's Google Cloud dependencies (its C version)."""
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _CRC_MASK_DELTA) & 0xFFFFFFFF
