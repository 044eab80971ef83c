"""The checks of a local run's input folder and output folders that run before TensorFlow is loaded."""

from __future__ import annotations

import codecs
import gzip

import pytest

from cli import preflight
from cli.preflight import check_csv_folder, check_output_folders
from models import features
from pipeline.config import PROJECT_DIR, load_config
from pipeline.errors import UserError

HEADER = ",".join(sorted(features.CSV_COLUMNS))
WIDTH = len(features.CSV_COLUMNS)
ROW = ",".join(["1"] * WIDTH)
TAXI_LINES = (PROJECT_DIR / "data" / "taxi.csv").read_bytes().splitlines(keepends=True)


def _write(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def _taxi_file(folder, rows: int = 3000, *, prefix: bytes = b"", change: dict[int, bytes] | None = None):
    """data/taxi.csv's header and first ``rows`` rows as ``folder/taxi.csv``; ``change`` replaces file lines
    (1-based, the header is line 1) by other bytes, each ending in one line end."""
    lines = [prefix + TAXI_LINES[0], *TAXI_LINES[1 : rows + 1]]
    for number, text in (change or {}).items():
        line = text.removesuffix(b"\n") + b"\n"
        assert lines[number - 1] != line, "the test's change must change the line"
        lines[number - 1] = line
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "taxi.csv").write_bytes(b"".join(lines))
    return folder


def test_bundled_data_passes():
    assert [path.name for path in check_csv_folder(str(PROJECT_DIR / "data"))] == ["taxi.csv"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "holds no .csv files"),
        ({"a.csv": ""}, "the file is empty"),
        ({"a.csv": "\n" + HEADER + "\n" + ROW + "\n"}, "line 1 is blank"),
        ({"a.csv": HEADER + "\n"}, "has a header but no data rows"),
        ({"a.csv": HEADER + "\n\n\r\n"}, "has a header but no data rows"),  # blank lines are no rows
        ({"a.csv": HEADER.replace("fare,", "") + "\n1\n"}, "missing columns: fare"),
        ({"a.csv": HEADER + ",surge\n1\n"}, "unexpected columns: surge"),
        ({"a.csv": HEADER + ",fare\n1\n"}, "duplicated columns: fare"),
        ({"a.csv": HEADER + "\n1\n", "notes.txt": "hi"}, "files that are not CSV: notes.txt"),
        ({"a.csv": HEADER + "\n1\n", "taxi.csv.gz": "x"}, "files that are not CSV: taxi.csv.gz"),
        ({"a.csv": f"{HEADER}\n{ROW}\n{HEADER}\n{ROW}\n"}, r"a.csv: line 3 repeats the header line \(were two"),
        ({"a.csv": f"{HEADER}\r{ROW}\r"}, "carriage return alone"),
    ],
)
def test_bad_folders_get_one_clear_message(tmp_path, files, message):
    for name, text in files.items():
        _write(tmp_path / "data", name, text)
    (tmp_path / "data").mkdir(exist_ok=True)
    with pytest.raises(UserError, match=message) as raised:
        check_csv_folder(str(tmp_path / "data"))
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (gzip.compress(HEADER.encode() + b"\n" + ROW.encode() + b"\n"), "the file is gzip-compressed; decompress it"),
        (b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)), "zip archive or an Excel workbook"),
        (codecs.BOM_UTF16_LE + HEADER.encode("utf-16-le"), "the file is UTF-16 text"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "line 1: byte 0x89 at column 1 is not UTF-8"),
        (HEADER.replace("company", "compañía").encode("latin-1") + b"\n", "line 1: byte 0xf1 at column"),
    ],
)
def test_files_that_are_not_utf8_csv_text_get_one_clear_message(tmp_path, content, message):
    (tmp_path / "taxi.csv").write_bytes(content)
    with pytest.raises(UserError, match=message) as raised:
        check_csv_folder(str(tmp_path))
    assert "\n" not in str(raised.value)


def test_missing_folder_and_file_instead_of_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        check_csv_folder(str(tmp_path / "nowhere"))
    _write(tmp_path, "one.csv", HEADER + "\n" + ROW + "\n")
    with pytest.raises(UserError, match="is a file; pass its parent folder"):
        check_csv_folder(str(tmp_path / "one.csv"))


def test_files_must_share_one_column_order(tmp_path):
    columns = sorted(features.CSV_COLUMNS)
    _write(tmp_path, "a.csv", ",".join(columns) + "\n" + ROW + "\n")
    _write(tmp_path, "b.csv", ",".join(reversed(columns)) + "\n" + ROW + "\n")
    with pytest.raises(UserError, match="another order"):
        check_csv_folder(str(tmp_path))


def test_two_files_with_other_columns_are_named(tmp_path):
    _write(tmp_path, "a.csv", HEADER + "\n" + ROW + "\n")
    _write(tmp_path, "b.csv", HEADER.replace("tips", "tip") + "\n" + ROW + "\n")
    with pytest.raises(UserError, match=r"b.csv: missing columns: tips; unexpected columns: tip"):
        check_csv_folder(str(tmp_path))


def test_an_excel_byte_order_mark_is_accepted(tmp_path):
    """Excel's "CSV UTF-8" starts the file with EF BB BF; the first column keeps its plain name."""
    folder = _taxi_file(tmp_path / "data", prefix=codecs.BOM_UTF8)
    assert check_csv_folder(str(folder)) == [folder / "taxi.csv"]
    assert preflight.check_csv_file(folder / "taxi.csv")[0] == "pickup_community_area"


# Line 2,500 of a 3,000-row file lies about 300 KB in, far beyond what a look at the file's start reads.
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({2500: TAXI_LINES[2499].rstrip(b"\n").rsplit(b",", 1)[0]}, "line 2500 has 17 fields, the header has 18"),
        ({2500: TAXI_LINES[2499].rstrip(b"\n") + b",7"}, "line 2500 has 19 fields, the header has 18 \\(a value"),
        ({2500: TAXI_LINES[2499].replace(b"Taxi", b"Caf\xe9 Taxi")}, "line 2500: byte 0xe9 at column"),
        ({2500: TAXI_LINES[2499].replace(b"Cash", b"Ca\xff\xfesh")}, "line 2500: byte 0xff at column"),
        ({2500: b" "}, "line 2500 has 1 field, the header has 18"),
        ({2500: TAXI_LINES[0].rstrip(b"\n")}, "line 2500 repeats the header line"),
        ({2500: b'5,"unclosed' + TAXI_LINES[2499][1:].rstrip(b"\n")}, "line 2500: a quoted value is never closed"),
        ({2500: b'"a","b",' + TAXI_LINES[2499]}, "line 2500 has 20 fields"),
    ],
)
@pytest.mark.parametrize("block_bytes", [7, 4096, preflight.BLOCK_BYTES])
def test_a_bad_line_anywhere_is_named_by_file_and_line(tmp_path, monkeypatch, change, message, block_bytes):
    """Whatever block a line falls in (7-byte blocks split every line), the check names its file and number."""
    monkeypatch.setattr(preflight, "BLOCK_BYTES", block_bytes)
    folder = _taxi_file(tmp_path / "data", change=change)
    with pytest.raises(UserError, match=f"{folder / 'taxi.csv'}: {message}") as raised:
        check_csv_folder(str(folder))
    assert "\n" not in str(raised.value)


def _quoted(line: bytes, column: int, value: bytes) -> bytes:
    """``line`` with its field ``column`` replaced by the quoted ``value``."""
    cells = line.rstrip(b"\r\n").split(b",")
    cells[column] = b'"' + value.replace(b'"', b'""') + b'"'
    return b",".join(cells)


TAXI_COMPANY = TAXI_LINES[0].decode().rstrip("\n").split(",").index("company")


@pytest.mark.parametrize(
    "change",
    [
        {10: _quoted(TAXI_LINES[9], TAXI_COMPANY, b"Blue, Red & Co")},  # a comma inside quotes
        {10: _quoted(TAXI_LINES[9], TAXI_COMPANY, b'The "Best" Cab')},  # doubled quotes inside quotes
        {10: _quoted(TAXI_LINES[9], TAXI_COMPANY, b"two\nlines")},  # a value spanning lines, as ExampleGen joins
        {10: TAXI_LINES[9].rstrip(b"\n") + b"\r"},  # a Windows line end
        {10: b""},  # a blank line, which ExampleGen skips
        {10: TAXI_LINES[9].replace(b"Cash", "Caf\u00e9 \u00fc\u00df \u6771\u4eac".encode())},  # UTF-8 beyond ASCII
    ],
)
@pytest.mark.parametrize("block_bytes", [7, 4096, preflight.BLOCK_BYTES])
def test_quoted_values_windows_line_ends_and_blank_lines_pass(tmp_path, monkeypatch, change, block_bytes):
    monkeypatch.setattr(preflight, "BLOCK_BYTES", block_bytes)
    folder = _taxi_file(tmp_path / "data", rows=3000, change=change)
    assert check_csv_folder(str(folder)) == [folder / "taxi.csv"]


def test_every_line_quoted_passes_and_a_bad_one_is_found(tmp_path):
    """The quoted block path (one csv.reader per block) and its fallback to the line-by-line path."""
    lines = [TAXI_LINES[0], *(b'"' + line.rstrip(b"\n").replace(b",", b'","') + b'"\n' for line in TAXI_LINES[1:])]
    (tmp_path / "taxi.csv").write_bytes(b"".join(lines))
    assert check_csv_folder(str(tmp_path)) == [tmp_path / "taxi.csv"]
    lines[12000] = lines[12000].replace(b'","', b",", 1)  # two quoted fields run into one: 17 fields
    (tmp_path / "taxi.csv").write_bytes(b"".join(lines))
    with pytest.raises(UserError, match="line 12001 has 17 fields"):
        check_csv_folder(str(tmp_path))


def _tfx_accepts(path) -> bool:
    """Whether TFX 1.16's CsvExampleGen reading would take every record of ``path``: its own line reader (skip the
    first line, join lines while quotes are unbalanced), tfx_bsl's parser, and its field-count check."""
    from tfx.components.example_gen.csv_example_gen import executor as csv_executor
    from tfx_bsl.coders import csv_decoder

    parser = csv_decoder.ParseCSVLine(delimiter=",")
    parser.setup()
    try:
        for record in csv_executor._ReadCsvRecordsFromTextFile().process(str(path)):
            cells, _ = next(iter(parser.process(record)))
            if cells and len(cells) != WIDTH:
                return False
    except (ValueError, UnicodeDecodeError):  # unbalanced quotes, a byte that is not UTF-8
        return False
    return True


@pytest.mark.parametrize(
    "line",
    [
        b'1,"a,b",' + b",".join([b"2"] * (WIDTH - 2)),
        b'1,"a""b",' + b",".join([b"2"] * (WIDTH - 2)),
        b'1,a"b",' + b",".join([b"2"] * (WIDTH - 2)),  # a quote inside an unquoted value is a character
        b'1,a"b,c",' + b",".join([b"2"] * (WIDTH - 2)),
        b'"1,"a"b",' + b",".join([b"2"] * (WIDTH - 2)),
        b'1,"a\nb",' + b",".join([b"2"] * (WIDTH - 2)),
        b",".join([b"2"] * (WIDTH - 1)),
        b",".join([b"2"] * WIDTH) + b"\r",
        b"\r",
        b"caf\xe9," + b",".join([b"2"] * (WIDTH - 1)),
    ],
)
def test_the_check_accepts_exactly_what_tfxs_csv_reading_accepts(tmp_path, line):
    """The same verdict as TFX's own reader on lines where quoting, line ends and encoding get tricky."""
    path = tmp_path / "taxi.csv"
    path.write_bytes(HEADER.encode() + b"\n" + ROW.encode() + b"\n" + line + b"\n" + ROW.encode() + b"\n")
    try:
        check_csv_folder(str(tmp_path))
        ours = True
    except UserError:
        ours = False
    assert ours == _tfx_accepts(path)


def test_output_folders_that_cannot_be_created_are_refused_before_any_work(tmp_path):
    (tmp_path / "plain-file").write_text("not a folder")
    config = load_config("local", ["serving.directory=" + str(tmp_path / "plain-file" / "serving")], home=str(tmp_path))
    with pytest.raises(UserError) as raised:
        check_output_folders(config)
    assert str(raised.value) == (
        f"serving.directory: cannot create {tmp_path}/plain-file/serving/taxi: {tmp_path}/plain-file is a file, "
        "not a folder"
    )
    with pytest.raises(UserError, match=r"^--home: cannot create .*/plain-file/home/logs: .* is a file, not a fo"):
        check_output_folders(load_config("local", home=str(tmp_path / "plain-file" / "home")))
    (tmp_path / "home" / "runs").mkdir(parents=True)
    (tmp_path / "home" / "logs").write_text("a file where the run's logs go")
    with pytest.raises(UserError, match=r"^--home: cannot create .*/home/logs: .*/home/logs is a file, not a fo"):
        check_output_folders(load_config("local", home=str(tmp_path / "home")))
    check_output_folders(load_config("local", home=str(tmp_path / "new" / "home")))  # not there yet: fine
    assert not (tmp_path / "new").exists()  # and nothing was created
