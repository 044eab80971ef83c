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

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_GZIP_MAGIC = b"\x1f\x8b"
_CRC_MASK_DELTA = 0xA282EAD8

_PACKAGE = "taxi_runs.tf"
# The messages, field for field as TensorFlow's .proto files number them (only the fields the previews read). A map
# field is declared as what it is on the wire, repeated entries of ``key`` (1) and ``value`` (2).
_MESSAGES = {
    "BytesList": "repeated bytes value = 1",
    "FloatList": "repeated float value = 1",
    "Int64List": "repeated int64 value = 1",
    "Feature": "BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3",
    "Features": "map<Feature> feature = 1",
    "Example": "Features features = 1",
    "Dim": "int64 size = 1; string name = 2",
    "TensorShape": "repeated Dim dim = 2; bool unknown_rank = 3",
    # name, coo_sparse and composite_tensor are a oneof in TensorFlow; here only whether each is set matters.
    "TensorInfo": "string name = 1; int32 dtype = 2; TensorShape tensor_shape = 3; bytes coo_sparse = 4; "
    "bytes composite_tensor = 5",
    "SignatureDef": "map<TensorInfo> inputs = 1; map<TensorInfo> outputs = 2; string method_name = 3",
    "MetaInfoDef": "repeated string tags = 4; string tensorflow_version = 5",
    "MetaGraphDef": "MetaInfoDef meta_info_def = 1; map<SignatureDef> signature_def = 5",
    "SavedModel": "int64 saved_model_schema_version = 1; repeated MetaGraphDef meta_graphs = 2",
}
# Messages whose fields all belong to one oneof, by its name (``Feature.WhichOneof("kind")``).
_ONEOFS = {"Feature": "kind"}
_FIELD = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "bytes": _FIELD.TYPE_BYTES,
    "float": _FIELD.TYPE_FLOAT,
    "int64": _FIELD.TYPE_INT64,
    "int32": _FIELD.TYPE_INT32,
    "string": _FIELD.TYPE_STRING,
    "bool": _FIELD.TYPE_BOOL,
}

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
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))


@functools.cache
def _pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file_descriptor())
    return pool


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """``_MESSAGES`` as the FileDescriptorProto protoc would make of them."""
    file = descriptor_pb2.FileDescriptorProto(name="taxi_runs/tensorflow_subset.proto", package=_PACKAGE)
    file.syntax = "proto3"
    for name, declarations in _MESSAGES.items():
        message = file.message_type.add(name=name)
        if name in _ONEOFS:
            message.oneof_decl.add(name=_ONEOFS[name])
        for declaration in declarations.split(";"):
            words, number = declaration.split("=")
            *modifiers, type_name, field_name = words.split()
            field = message.field.add(name=field_name, number=int(number), label=_FIELD.LABEL_OPTIONAL)
            if name in _ONEOFS:
                field.oneof_index = 0
            if modifiers == ["repeated"]:
                field.label = _FIELD.LABEL_REPEATED
            if type_name.startswith("map<"):
                entry = file.message_type.add(name=f"{name}_{field_name}_Entry")
                entry.field.add(name="key", number=1, label=_FIELD.LABEL_OPTIONAL, type=_FIELD.TYPE_STRING)
                _set_type(entry.field.add(name="value", number=2, label=_FIELD.LABEL_OPTIONAL), type_name[4:-1])
                field.label = _FIELD.LABEL_REPEATED
                type_name = entry.name
            _set_type(field, type_name)
    return file


def _set_type(field: descriptor_pb2.FieldDescriptorProto, type_name: str) -> None:
    if type_name in _SCALARS:
        field.type = _SCALARS[type_name]
    else:
        field.type = _FIELD.TYPE_MESSAGE
        field.type_name = f".{_PACKAGE}.{type_name}"


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
