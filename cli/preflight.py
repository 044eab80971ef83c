"""Checks of the input CSV folder made before any TensorFlow is loaded, so mistakes are reported in a second.

Only what CsvExampleGen would otherwise turn into an obscure failure is checked here (missing folder, no CSV
files, wrong header). Bad *values* are the validation gate's job: they are reported per feature after
ExampleValidator has looked at the data.
"""

from __future__ import annotations

import csv
from pathlib import Path

from models import features
from pipeline.config import PipelineConfig
from pipeline.errors import UserError


def check_inputs(config: PipelineConfig) -> None:
    """Everything about a local run's input that can be checked without TensorFlow: the data folder and the
    curated schema file."""
    check_csv_folder(config.data.root)
    if not config.schema.path.startswith("gs://") and not Path(config.schema.path).is_file():
        raise UserError(f"curated schema {config.schema.path} not found (setting schema.path)")


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
    headers = {path: _check_header(path) for path in csv_files}
    first, first_header = next(iter(headers.items()))
    for path, header in headers.items():
        if header != first_header:
            # CsvExampleGen takes the column order from one file and applies it to all of them.
            raise UserError(f"{path.name} lists its columns in another order than {first.name}; use one order")
    return csv_files


def _check_header(path: Path) -> list[str]:
    """Returns the file's column names, or raises a UserError naming what is missing, extra or malformed."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), None)
            has_rows = next(handle, None) is not None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text CSV file") from None
    if not header:
        raise UserError(f"{path}: the file is empty; expected a header line with the taxi columns")
    columns = [column.strip() for column in header]
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
    if not has_rows:
        raise UserError(f"{path}: the file has a header but no data rows")
    return columns
