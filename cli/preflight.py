"""Checks of a local run's input and output places made before any TensorFlow is loaded, so that mistakes are
reported in one line within seconds instead of as an exception inside a component minutes later.

What is checked is what CsvExampleGen or the Pusher would otherwise turn into an obscure failure: a missing folder,
no CSV files, a wrong header, a line that is not UTF-8 or has another number of fields than the header, and an
output folder that cannot be created. Bad *values* are the validation gate's job: they are reported per feature
after ExampleValidator has looked at the data.

Every CSV file is read to its end, in binary blocks (``_scan_rows``), lines split and quoted values joined the way
TFX's ExampleGen does it: 1.5 million rows (192 MB) take 0.7 s here, 2.8 s if every value is quoted
(docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import codecs
import csv
import os
from itertools import repeat
from pathlib import Path
from typing import BinaryIO

from models import features
from pipeline.config import PipelineConfig
from pipeline.errors import UserError
from tfx_compat import csv_column_names

BLOCK_BYTES = 8 << 20  # bytes read at a time; a block is decoded and counted as a whole
QUOTE = b'"'
# How a file that is no CSV text starts, and what to tell its owner.
_FORMAT_HINTS = (
    (b"\x1f\x8b", "is gzip-compressed; decompress it first (gunzip)"),
    (b"PK\x03\x04", "is a zip archive or an Excel workbook, not CSV text; save it as CSV UTF-8"),
    (codecs.BOM_UTF16_LE, "is UTF-16 text; save it as CSV UTF-8"),
    (codecs.BOM_UTF16_BE, "is UTF-16 text; save it as CSV UTF-8"),
)


def check_inputs(config: PipelineConfig) -> None:
    """Everything about a local run that can be checked without TensorFlow: the data folder, the curated schema
    file, and the folders the run writes to."""
    if config.data.bigquery_query:
        raise UserError(
            "data.bigquery_query reads the trips from BigQuery, which runs on the vertex, kubeflow and composer "
            "profiles only; a local run reads CSV files (--data FOLDER, and data.bigquery_query empty)"
        )
    check_csv_folder(config.data.root)
    if not config.schema.path.startswith("gs://") and not Path(config.schema.path).is_file():
        raise UserError(f"curated schema {config.schema.path} not found (setting schema.path)")
    check_output_folders(config)


def check_output_folders(config: PipelineConfig) -> None:
    """Raises a UserError if a folder the run writes to cannot be created: TFX would find out only when the
    component that writes there runs (the Pusher, after every model is trained), and say nothing a user could use.

    Nothing is created here; a folder that does not exist yet only needs its nearest existing parent to be a
    writable folder.
    """
    places = [
        ("--home", config.log_dir),
        ("--home", str(Path(config.home) / "runs")),  # each run's config and report (runners/local.py)
        ("pipeline.root", config.pipeline.root),
    ]
    if config.metadata.sqlite_path and not config.metadata.mysql_host:
        places.append(("metadata.sqlite_path", str(Path(config.metadata.sqlite_path).parent)))
    if not config.vertex.push_to_endpoint:
        places.append(("serving.directory", config.serving_model_dir))
    for setting, folder in places:
        if "://" in folder:
            continue  # a remote file system: the orchestrator's business
        problem = _why_not_creatable(Path(folder))
        if problem:
            raise UserError(f"{setting}: cannot create {folder}: {problem}")


def _why_not_creatable(folder: Path) -> str:
    """Why ``folder`` cannot be created (or written into, if it exists); empty if it can."""
    for place in [folder, *folder.absolute().parents]:
        if not place.exists():
            continue
        if not place.is_dir():
            return f"{place} is a file, not a folder"
        if not os.access(place, os.W_OK | os.X_OK):
            return f"{place} is not writable"
        return ""
    return ""


def check_csv_folder(data_root: str) -> list[Path]:
    """Returns the CSV files of ``data_root`` or raises a UserError saying exactly what is wrong with it."""
    if data_root.startswith("gs://"):
        return []  # remote data is checked by the pipeline itself
    folder = Path(data_root)
    if not folder.exists():
        raise UserError(f"data folder {folder} does not exist (--data must point at a folder of CSV files)")
    if not folder.is_dir():
        raise UserError(f"--data must be a folder of CSV files, but {folder} is a file; pass its parent folder")
    files = sorted(path for path in folder.iterdir() if path.is_file() and not path.name.startswith("."))
    csv_files = [path for path in files if path.suffix.lower() == ".csv"]
    if not csv_files:
        raise UserError(f"data folder {folder} holds no .csv files")
    others = [path.name for path in files if path not in csv_files]
    if others:
        # CsvExampleGen reads every file in the folder, so a stray file would be parsed as CSV.
        raise UserError(f"data folder {folder} holds files that are not CSV: {', '.join(others[:5])}; move them out")
    headers = {path: check_csv_file(path) for path in csv_files}
    first, first_header = next(iter(headers.items()))
    for path, header in headers.items():
        if header != first_header:
            # CsvExampleGen takes the column order from one file and applies it to all of them.
            raise UserError(f"{path.name} lists its columns in another order than {first.name}; use one order")
    return csv_files


def check_csv_file(path: Path) -> list[str]:
    """Returns the file's column names, or raises a UserError naming the file, the line and what is wrong there."""
    with path.open("rb") as handle:
        first_line = handle.readline()
        columns = _check_header(path, first_line)
        rows = _scan_rows(path, handle, first_line, len(columns))
    if not rows:
        raise UserError(f"{path}: the file has a header but no data rows")
    return columns


def _check_header(path: Path, first_line: bytes) -> list[str]:
    """The columns of the header line (a UTF-8 byte-order mark, as Excel writes, is fine), or a UserError naming
    what is missing, extra or malformed."""
    if not first_line.strip(b"\r\n"):
        what = "the file is empty" if not first_line else "line 1 is blank"
        raise UserError(f"{path}: {what}; expected a header line with the taxi columns")
    for magic, hint in _FORMAT_HINTS:
        if first_line.startswith(magic):
            raise UserError(f"{path}: the file {hint}")
    if b"\r" in first_line.rstrip(b"\r\n"):
        raise UserError(f"{path}: lines end in a carriage return alone (old Mac style); save with LF or CRLF ends")
    try:
        columns = csv_column_names(first_line)
    except UnicodeDecodeError:
        raise UserError(f"{path}: line 1: {_not_utf8(first_line.removeprefix(codecs.BOM_UTF8))}") from None
    except csv.Error as error:
        raise UserError(f"{path}: line 1: {error}") from None
    duplicates = sorted({column for column in columns if columns.count(column) > 1})
    if duplicates:
        raise UserError(f"{path}: duplicated columns: {', '.join(duplicates)}")
    missing = sorted(features.CSV_COLUMNS - set(columns))
    extra = sorted(set(columns) - features.CSV_COLUMNS)
    problems = []
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected columns: {', '.join(extra)}")
    if problems:
        raise UserError(f"{path}: {'; '.join(problems)} (see models/features.py for the expected columns)")
    return columns


def _scan_rows(path: Path, handle: BinaryIO, header_line: bytes, width: int) -> int:
    """Reads the rest of the file and returns how many data rows it holds; raises a UserError at the first line
    that is not UTF-8, has another number of fields than the header, or repeats the header.

    The rules are ExampleGen's (TFX's ``_ReadCsvRecordsFromTextFile`` and tfx_bsl's CSV parser): lines end at
    ``\\n``, a line with an odd number of quotes continues on the next one, blank lines are skipped, and every
    other record must have exactly ``width`` fields. Each block is decoded in one call; in a block without quotes
    the commas of each line are counted (in C), a block with quotes is parsed by one ``csv.reader``
    (``_count_quoted_rows``). Only a block where that finds something wrong, or with a value spanning lines or a
    repeated header, goes line by line, to name the line.
    """
    separators = width - 1
    header = header_line.removeprefix(codecs.BOM_UTF8).rstrip(b"\r\n")
    rows = 0
    line_number = 1  # lines before the block being checked; the header is line 1
    pending: list[bytes] = []  # the lines of a record whose quoted value continues on the next line
    pending_start = pending_quotes = 0
    carry = b""
    while True:
        block = handle.read(BLOCK_BYTES)
        data = carry + block
        if block:
            end = data.rfind(b"\n") + 1
            if not end:
                carry = data
                continue
            data, carry = data[:end], data[end:]
        elif not data:
            break
        else:
            carry = b""
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as error:
            line = line_number + data.count(b"\n", 0, error.start) + 1
            end = data.find(b"\n", error.start)
            bad_line = data[data.rfind(b"\n", 0, error.start) + 1 : end if end >= 0 else len(data)]
            raise UserError(f"{path}: line {line}: {_not_utf8(bad_line)}") from None
        lines = data.split(b"\n")
        if lines[-1] == b"":
            lines.pop()  # the block ends with a line end: no line follows it
        if not pending and header not in data:
            if QUOTE not in data:  # every line a row of ``width`` fields, or blank (counted in C, not per line)
                blank = lines.count(b"") + lines.count(b"\r")
                right = list(map(bytes.count, lines, repeat(b","))).count(separators)
                good = right if right + blank == len(lines) else None
            else:
                good = _count_quoted_rows(data, lines, width)
            if good is not None:
                rows += good
                line_number += len(lines)
                continue
        for offset, line in enumerate(lines, start=line_number + 1):
            if pending:
                pending.append(line)
                pending_quotes += line.count(QUOTE)
                if pending_quotes % 2:
                    continue
                record, start_line, pending = b"\n".join(pending), pending_start, []
            elif line.count(QUOTE) % 2:
                pending, pending_start, pending_quotes = [line], offset, line.count(QUOTE)
                continue
            else:
                record, start_line = line, offset
            rows += _check_record(path, record, start_line, width, header)
        line_number += len(lines)
        if not block:
            break
    if pending:
        raise UserError(f"{path}: line {pending_start}: a quoted value is never closed (unbalanced quotes)")
    return rows


def _count_quoted_rows(data: bytes, lines: list[bytes], width: int) -> int | None:
    """The number of rows in a block of whole records that holds quotes, if each line is one record of ``width``
    fields or blank; None if not (then the line-by-line path finds the line and says what is wrong).

    One ``csv.reader`` parses the whole block in C. A line with an odd number of quotes would be joined with the
    next one by ExampleGen, so such a block is left to the line-by-line path, as is any line the reader did not
    end as a row of its own.
    """
    if any(count % 2 for count in map(bytes.count, lines, repeat(QUOTE))):
        return None
    texts = data.decode("utf-8").split("\n")
    if texts[-1] == "":
        texts.pop()
    try:
        widths = list(map(len, csv.reader(texts)))
    except csv.Error:
        return None
    if len(widths) != len(texts) or not set(widths) <= {width, 0}:
        return None
    return len(widths) - widths.count(0)


def _check_record(path: Path, record: bytes, line: int, width: int, header: bytes) -> int:
    """1 for a data record of ``width`` fields, 0 for a blank line; a UserError for anything else."""
    if record in (b"", b"\r"):
        return 0  # ExampleGen skips blank lines
    if record.rstrip(b"\r") == header:
        raise UserError(f"{path}: line {line} repeats the header line (were two CSV files joined?); remove it")
    if QUOTE in record:
        try:
            fields = len(next(csv.reader([record.decode("utf-8") + "\n"]), []))
        except csv.Error as error:
            raise UserError(f"{path}: line {line}: {error}") from None
    else:
        fields = record.count(b",") + 1
    if fields != width:
        hint = "a value holding a comma must be quoted" if fields > width else "a row cut short?"
        raise UserError(f"{path}: line {line} has {fields} field{'s' * (fields != 1)}, the header has {width} ({hint})")
    return 1


def _not_utf8(line: bytes) -> str:
    """What to say of a line that is not UTF-8: the first offending byte and its column."""
    try:
        line.decode("utf-8")
        return "not UTF-8 text; save the file as CSV UTF-8"
    except UnicodeDecodeError as error:
        position = error.start
    return (
        f"byte 0x{line[position]:02x} at column {position + 1} is not UTF-8 text "
        "(Latin-1 or Windows-1252?); save the file as CSV UTF-8"
    )
