"""The CSV column types TFX's CsvExampleGen infers (int, float, string, unknown), computed column by column.

Why: TFX types each column by calling tfx_bsl's ``_InferValueType`` (``int(cell)``, else ``float(cell)``) on every
cell of every row in Python: 24 s of ExampleGen's ~115 s at 1.5 million trips. ``infer_column_types`` gives the
same answer from Arrow: pyarrow's CSV reader (C++, both cores) reads the cells as text, and regular expressions
sort each column's non-empty cells into those ``int()`` surely takes (an optional sign and up to 18 digits: always
within int64), those ``float()`` surely takes and ``int()`` refuses (a decimal point or an exponent), and the
rest, on whose distinct values tfx_bsl's own ``_InferValueType`` is asked. A column's type is then the highest of
its cells' in tfx_bsl's order (unknown < int < float < string), as ``ColumnTypeInferrer`` folds them.

Where Arrow's reading of a file could differ from TFX's record reader (TFX joins lines inside quotes and reads with
Python's ``csv`` module; it decodes UTF-8 strictly), the rows are typed TFX's way instead, one by one
(``infer_by_rows``): a file with a quote, a NUL byte or a carriage return that does not end a line (CRLF), a file
Arrow cannot read (bad UTF-8, rows of another width), a file not on the local disk, duplicate column names, or no
data rows at all.
``tests/unit/test_tfx_compat.py`` compares both ways on awkward columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv as arrow_csv
from tfx.components.example_gen.csv_example_gen import executor as csv_executor
from tfx_bsl.coders import csv_decoder

# Cells int() takes and whose value fits int64 whatever the digits (18 digits < 2**63).
_SURE_INT = r"^[+-]?[0-9]{1,18}$"
# Cells float() takes and int() refuses: a decimal point or an exponent.
_SURE_FLOAT = r"^[+-]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$|^[+-]?[0-9]+[eE][+-]?[0-9]+$"
# Bytes where Arrow's reader and TFX's (quoted values, Python's csv) may part ways; carriage returns are checked
# apart.
_UNSAFE_BYTES = (b'"', b"\0")
_CHUNK = 64 << 20

ColumnType = csv_decoder.ColumnType


def infer_column_types(csv_files: Sequence[str], column_names: list[str]) -> list[csv_decoder.ColumnInfo]:
    """Each column's type, as TFX's CsvExampleGen infers it over every data row of ``csv_files``."""
    by_columns = _infer_by_columns(csv_files, column_names)
    return by_columns if by_columns is not None else infer_by_rows(csv_files, column_names)


def infer_by_rows(csv_files: Sequence[str], column_names: list[str]) -> list[csv_decoder.ColumnInfo]:
    """TFX's own steps, run directly: ``_ReadCsvRecordsFromTextFile`` (header skipped, quoted values spanning lines
    joined), tfx_bsl's ``ParseCSVLine`` and its ``ColumnTypeInferrer`` over every record."""
    reader = csv_executor._ReadCsvRecordsFromTextFile()
    parser = csv_decoder.ParseCSVLine(delimiter=",")
    parser.setup()
    inferrer = csv_decoder.ColumnTypeInferrer(column_names, skip_blank_lines=True)
    accumulator = inferrer.create_accumulator()
    for csv_file in csv_files:
        for record in reader.process(csv_file):
            for cells, _ in parser.process(record):
                accumulator = inferrer.add_input(accumulator, cells)
    return inferrer.extract_output(accumulator)


def _infer_by_columns(csv_files: Sequence[str], column_names: list[str]) -> list[csv_decoder.ColumnInfo] | None:
    """The same types from Arrow, or None where Arrow's reading might differ from TFX's."""
    if len(set(column_names)) != len(column_names) or not all(_arrow_reads_as_tfx(path) for path in csv_files):
        return None
    types: dict[str, ColumnType] = {}
    rows = 0
    try:
        for csv_file in csv_files:
            for batch in _batches(csv_file, column_names):
                rows += batch.num_rows
                for name, column in zip(column_names, batch.columns, strict=True):
                    if types.get(name) != ColumnType.STRING:  # the highest type: nothing can change it
                        types[name] = max(types.get(name, ColumnType.UNKNOWN), _column_type(column))
    except pa.ArrowInvalid:  # bad UTF-8, rows of another width: TFX's reader decides
        return None
    if rows == 0:
        return None
    return [csv_decoder.ColumnInfo(name, types[name]) for name in column_names]


def _arrow_reads_as_tfx(path: str) -> bool:
    """Whether the file is on the local disk and has none of the bytes where the two readers may differ.

    A carriage return is safe only before a line feed (CRLF: Windows line ends, Excel's CSV): both readers end the
    line there. A lone one ends a line for Arrow but is an error inside a field for Python's ``csv``.
    """
    if "://" in path or not Path(path).is_file():
        return False
    pending_return = False  # the previous chunk ended in a carriage return
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            if any(unsafe in chunk for unsafe in _UNSAFE_BYTES):
                return False
            if pending_return and not chunk.startswith(b"\n"):
                return False
            pending_return = chunk.endswith(b"\r")
            body = chunk[:-1] if pending_return else chunk
            if body.count(b"\r") != body.count(b"\r\n"):
                return False
    return not pending_return


def _batches(path: str, column_names: list[str]):
    """The file's data rows (its first line skipped, as TFX skips it), every cell as text, in record batches."""
    reader = arrow_csv.open_csv(
        path,
        read_options=arrow_csv.ReadOptions(column_names=column_names, skip_rows=1, block_size=16 << 20),
        parse_options=arrow_csv.ParseOptions(delimiter=",", quote_char=False, ignore_empty_lines=True),
        convert_options=arrow_csv.ConvertOptions(
            column_types={name: pa.string() for name in column_names}, strings_can_be_null=False
        ),
    )
    yield from reader


def _column_type(cells: pa.Array) -> ColumnType:
    """The highest type among one batch's cells of a column (UNKNOWN where every cell is empty)."""
    values = cells.filter(pc.not_equal(pc.binary_length(cells), 0))
    if len(values) == 0:
        return ColumnType.UNKNOWN
    found = ColumnType.UNKNOWN
    sure_int = pc.match_substring_regex(values, _SURE_INT)
    if pc.any(sure_int).as_py():
        found = ColumnType.INT
    rest = values.filter(pc.invert(sure_int))
    sure_float = pc.match_substring_regex(rest, _SURE_FLOAT)
    if pc.any(sure_float).as_py():
        found = ColumnType.FLOAT
    for value in pc.unique(rest.filter(pc.invert(sure_float))).to_pylist():
        found = max(found, csv_decoder._InferValueType(value.encode()))
        if found == ColumnType.STRING:
            break
    return found
