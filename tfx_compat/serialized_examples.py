"""CSV cells -> serialized ``tf.train.Example``: the bytes protobuf's deterministic serialization gives, built directly.

Why: TFX's CsvExampleGen builds a ``tf.train.Example`` message per row (``_ParsedCsvToTfExample``: a ``Feature``, a
value list and a map entry per cell) and then serializes it twice: deterministically, for the hash that picks the
row's split, and once more to write it. That was about half of ExampleGen's time (42 us of message building and
4 us of serializing per row here). ``ExampleEncoder`` writes the same bytes from the cells (each column's constant
parts computed once) in about half the time, and TFX's split step hashes bytes as they are, so every row lands in
the split TFX would give it.

The bytes are those of ``example.SerializeToString(deterministic=True)`` for the message TFX builds: features in
name order, an empty value list for an empty cell, an empty ``Feature`` for a column with no value at all; the
records TFX writes (its non-deterministic serialization) hold the same fields in another order, so they parse to
equal messages. ``tests/unit/test_tfx_compat.py`` compares the bytes with TFX's message on awkward cells (negative
and 64-bit integers, spaces and signs that ``int`` accepts, floats beyond float32, NaN, long and non-ASCII
strings, empty cells, untyped columns).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

import numpy as np
from tfx_bsl.coders import csv_decoder

_PACK_FLOAT = struct.Struct("<f").pack
_SHORT = [bytes((value,)) for value in range(128)]


def _varint(value: int) -> bytes:
    """Protobuf's base-128 varint; a negative int64 as its 64-bit two's complement (10 bytes), as protobuf does."""
    if 0 <= value < 128:
        return _SHORT[value]
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag byte, the payload's length, the payload."""
    return tag + _varint(len(payload)) + payload


# Field tags (field number << 3 | wire type 2, length-delimited) of the messages involved.
_ENTRY = b"\x0a"  # Features.feature (a map entry), and Example.features
_KEY = b"\x0a"  # map entry key
_VALUE = b"\x12"  # map entry value: the Feature
_BYTES_LIST = b"\x0a"  # Feature.bytes_list
_FLOAT_LIST = b"\x12"  # Feature.float_list
_INT64_LIST = b"\x1a"  # Feature.int64_list
_VALUES = b"\x0a"  # {Bytes,Float,Int64}List.value (packed for numbers)


def _float32(value: float) -> bytes:
    """A double as float32's 4 bytes, as protobuf stores it (out of range: infinity)."""
    try:
        return _PACK_FLOAT(value)
    except OverflowError:
        with np.errstate(over="ignore"):
            return np.float32(value).tobytes()


CellEncoder = Callable[[bytes], bytes]


def _column_encoder(name: str, kind: csv_decoder.ColumnType) -> CellEncoder:
    """The map entry (name -> Feature) of one cell of a column, as TFX's handler for its type makes the Feature."""
    key = _field(_KEY, name.encode())

    def entry(feature: bytes) -> bytes:
        return _field(_ENTRY, key + _field(_VALUE, feature))

    if kind == csv_decoder.ColumnType.INT:
        empty = entry(_field(_INT64_LIST, b""))
        # The whole entry for an n-byte varint differs from the others only in a few length bytes: one prefix per n.
        prefixes = {n: entry(_field(_INT64_LIST, _field(_VALUES, b"\0" * n)))[:-n] for n in range(1, 11)}

        def encode_int(cell: bytes) -> bytes:
            if not cell:
                return empty
            value = _varint(int(cell))
            return prefixes[len(value)] + value

        return encode_int
    if kind == csv_decoder.ColumnType.FLOAT:
        empty = entry(_field(_FLOAT_LIST, b""))
        prefix = entry(_field(_FLOAT_LIST, _field(_VALUES, b"\0" * 4)))[:-4]

        def encode_float(cell: bytes) -> bytes:
            return prefix + _float32(float(cell)) if cell else empty

        return encode_float
    if kind == csv_decoder.ColumnType.STRING:
        empty = entry(_field(_BYTES_LIST, b""))

        def encode_bytes(cell: bytes) -> bytes:
            return entry(_field(_BYTES_LIST, _field(_VALUES, cell))) if cell else empty

        return encode_bytes
    # A column without any value (TFX: an empty ``tf.train.Feature()`` whatever the cell).
    untyped = entry(b"")
    return lambda cell: untyped


class ExampleEncoder:
    """Serializes rows of CSV cells (in the columns' order) as TFX's CsvExampleGen's Examples, deterministically."""

    def __init__(self, column_infos: Sequence[csv_decoder.ColumnInfo]) -> None:
        # Deterministic serialization writes map entries in key order (UTF-8 bytes).
        order = sorted(range(len(column_infos)), key=lambda index: column_infos[index].name.encode())
        self._columns = [
            (index, _column_encoder(column_infos[index].name, column_infos[index].type)) for index in order
        ]
        self.width = len(column_infos)

    def encode(self, cells: Sequence[bytes]) -> bytes:
        body = b"".join([encode(cells[index]) for index, encode in self._columns])
        return _ENTRY + _varint(len(body)) + body
