"""The checks of the input CSV folder that run before TensorFlow is loaded."""

from __future__ import annotations

import pytest

from cli.preflight import check_csv_folder
from models import features
from pipeline.errors import UserError

HEADER = ",".join(sorted(features.CSV_COLUMNS))


def _write(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def test_bundled_data_passes():
    from pipeline.config import PROJECT_DIR

    assert [path.name for path in check_csv_folder(str(PROJECT_DIR / "data"))] == ["taxi.csv"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "holds no .csv files"),
        ({"a.csv": ""}, "the file is empty"),
        ({"a.csv": HEADER + "\n"}, "has a header but no data rows"),
        ({"a.csv": HEADER.replace("fare,", "") + "\n1\n"}, "missing columns: fare"),
        ({"a.csv": HEADER + ",surge\n1\n"}, "unexpected columns: surge"),
        ({"a.csv": HEADER + ",fare\n1\n"}, "duplicated columns: fare"),
        ({"a.csv": HEADER + "\n1\n", "notes.txt": "hi"}, "files that are not CSV: notes.txt"),
    ],
)
def test_bad_folders_get_one_clear_message(tmp_path, files, message):
    for name, text in files.items():
        _write(tmp_path / "data", name, text)
    (tmp_path / "data").mkdir(exist_ok=True)
    with pytest.raises(UserError, match=message):
        check_csv_folder(str(tmp_path / "data"))


def test_missing_folder_and_file_instead_of_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        check_csv_folder(str(tmp_path / "nowhere"))
    _write(tmp_path, "one.csv", HEADER + "\n1\n")
    with pytest.raises(UserError, match="is a file; pass its parent folder"):
        check_csv_folder(str(tmp_path / "one.csv"))


def test_files_must_share_one_column_order(tmp_path):
    columns = sorted(features.CSV_COLUMNS)
    _write(tmp_path, "a.csv", ",".join(columns) + "\n1\n")
    _write(tmp_path, "b.csv", ",".join(reversed(columns)) + "\n1\n")
    with pytest.raises(UserError, match="another order"):
        check_csv_folder(str(tmp_path))
