"""The export reader against the files districts really drop: every encoding, delimiter and line end, gzip,
Excel leftovers, and the damaged files that must end in one clear sentence instead of a traceback.

All data is synthetic and built as bytes here, so each test shows exactly what is on disk.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import random
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from programs_bridge.convert.findings import Severity
from programs_bridge.convert.reader import ExportError, ExportReader

#: Names a clerk would check by eye: accents, an apostrophe and smart quotes (all in Windows-1252 too).
HEADER = ["Student_Number", "Last_Name", "First_Name", "ProgramID"]
ROWS = [
    ["00123", "Núñez", "José", "101"],
    ["00456", "O\u2019Brien", "\u201cZo\u00eb\u201d", "127"],  # smart quotes
    ["00789", "Søren-Müller", "Ève", "144"],
]


def export(rows: list[list[str]], delimiter: str = ",", newline: str = "\n") -> str:
    return "".join(delimiter.join(fields) + newline for fields in rows)


def read(
    path: Path, *, delimiter: str | None = None, encoding: str | None = None
) -> tuple[ExportReader, list[tuple[int, list[str]]]]:
    with ExportReader(path, delimiter=delimiter, encoding=encoding) as reader:
        return reader, list(reader.rows())


def write(tmp_path: Path, data: bytes, name: str = "export.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def refusal(tmp_path: Path, data: bytes, *, encoding: str | None = None) -> str:
    """The message of the ExportError that reading ``data`` to the end raises."""
    with pytest.raises(ExportError) as raised:
        read(write(tmp_path, data), encoding=encoding)
    return str(raised.value)


# --- encodings ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "reported", "delimiter"),
    [
        (lambda text: text.encode("utf-8"), "utf-8", ","),
        (lambda text: codecs.BOM_UTF8 + text.encode("utf-8"), "utf-8-sig", ","),
        (lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le"), "utf-16-le", "\t"),
        (lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be"), "utf-16-be", "\t"),
        (lambda text: text.encode("cp1252"), "cp1252", ","),
    ],
    ids=["utf-8", "utf-8-bom", "utf-16-le", "utf-16-be", "cp1252"],
)
def test_each_encoding_gives_back_the_accented_names(
    tmp_path: Path, encoded: Callable[[str], bytes], reported: str, delimiter: str
) -> None:
    data = encoded(export([HEADER, *ROWS], delimiter))

    reader, rows = read(write(tmp_path, data))

    assert reader.info.encoding == reported
    assert reader.info.delimiter == delimiter
    assert reader.header == HEADER
    assert rows == [(2, ROWS[0]), (3, ROWS[1]), (4, ROWS[2])]


def test_windows_1252_is_said_in_a_finding(tmp_path: Path) -> None:
    reader, _ = read(write(tmp_path, export([HEADER, *ROWS]).encode("cp1252")))

    assert [(f.code, f.severity) for f in reader.findings] == [("encoding_cp1252", Severity.INFO)]
    assert "Windows-1252" in reader.findings[0].message


def test_utf8_files_have_no_encoding_findings(tmp_path: Path) -> None:
    reader, _ = read(write(tmp_path, export([HEADER, *ROWS]).encode("utf-8")))

    assert reader.findings == []


def test_a_windows_1252_byte_deep_in_a_large_file_decides_for_the_whole_file(tmp_path: Path) -> None:
    ascii_rows = [[f"{n:06d}", "Smith", "Ann", "101"] for n in range(120_000)]  # > 2 MB before the é
    data = export([HEADER, *ascii_rows, ["999999", "Gómez", "Luis", "101"]]).encode("cp1252")
    assert len(data) > 2 * 1024 * 1024

    reader, rows = read(write(tmp_path, data))

    assert reader.info.encoding == "cp1252"
    assert rows[-1] == (120_002, ["999999", "Gómez", "Luis", "101"])


def test_bytes_windows_1252_leaves_undefined_are_kept_and_reported(tmp_path: Path) -> None:
    data = export([HEADER, *ROWS]).encode("cp1252") + b"00999,Ma\x81,Lee,101\n"

    reader, rows = read(write(tmp_path, data))

    assert rows[-1] == (5, ["00999", "Ma\x81", "Lee", "101"])
    undefined = [f for f in reader.findings if f.code == "encoding_cp1252_undefined"]
    assert [(f.line, f.severity) for f in undefined] == [(5, Severity.WARNING)]
    assert "line 5" in undefined[0].message


def test_utf16_without_a_bom_is_recognised_by_its_nul_pattern(tmp_path: Path) -> None:
    data = export([HEADER, *ROWS], "\t").encode("utf-16-le")

    reader, rows = read(write(tmp_path, data))

    assert reader.info.encoding == "utf-16-le"
    assert [f.code for f in reader.findings] == ["encoding_utf16_no_bom"]
    assert rows[1] == (3, ROWS[1])


def test_the_bom_is_stripped_even_before_a_quoted_first_label(tmp_path: Path) -> None:
    text = '"Student_Number"\tLast_Name\r\n00123\tNúñez\r\n'
    for data in (codecs.BOM_UTF8 + text.encode("utf-8"), codecs.BOM_UTF16_LE + text.encode("utf-16-le")):
        reader, rows = read(write(tmp_path, data))

        assert reader.header == ["Student_Number", "Last_Name"]
        assert rows == [(2, ["00123", "Núñez"])]


def test_an_explicit_encoding_overrides_the_guess(tmp_path: Path) -> None:
    path = write(tmp_path, export([HEADER, *ROWS]).encode("cp1252"))

    reader, rows = read(path, encoding="Windows-1252")

    assert reader.info.encoding == "cp1252"
    assert reader.findings == []  # asked for, so nothing to point out
    assert rows[0] == (2, ROWS[0])


def test_an_unknown_explicit_encoding_is_a_configuration_error(tmp_path: Path) -> None:
    path = write(tmp_path, export([HEADER, *ROWS]).encode("utf-8"))

    with pytest.raises(ValueError, match="unsupported encoding"):
        ExportReader(path, encoding="ebcdic-cp-us")


def test_a_file_declared_utf8_that_is_mostly_not_utf8_is_refused_naming_the_line(tmp_path: Path) -> None:
    # A few bad bytes in a UTF-8 file cost only their rows (tests/hostile/test_encoding.py); a BOM on a file
    # that is Windows-1252 throughout is a wrong declaration, and the whole file is refused.
    data = codecs.BOM_UTF8 + export([HEADER, *ROWS]).encode("cp1252")

    message = refusal(tmp_path, data)

    assert message.startswith("line 2 has bytes that are not valid UTF-8, although the file is declared as UTF-8")


def test_an_explicit_utf8_that_does_not_fit_names_the_line(tmp_path: Path) -> None:
    message = refusal(tmp_path, export([HEADER, *ROWS]).encode("cp1252"), encoding="utf-8")

    assert message.startswith("line 2 has bytes that are not valid UTF-8")


# --- delimiters and quoting -----------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", "\t", "|", ";"])
def test_each_delimiter_is_found_from_the_header_even_with_others_inside_quotes(tmp_path: Path, delimiter: str) -> None:
    header = delimiter.join(['"Name, Last; First | Tab\there"', "ID", "Program"])
    row = delimiter.join(['"Núñez, José"', "00123", '"a ""quoted"" code"'])
    data = f"{header}\n{row}\n".encode()

    reader, rows = read(write(tmp_path, data))

    assert reader.info.delimiter == delimiter
    assert reader.header == ["Name, Last; First | Tab\there", "ID", "Program"]
    assert rows == [(2, ["Núñez, José", "00123", 'a "quoted" code'])]


def test_a_tie_goes_to_the_delimiter_least_likely_inside_a_label(tmp_path: Path) -> None:
    data = "Name, Last\tName, First\tID\nNúñez\tJosé\t00123\n".encode()

    reader, _ = read(write(tmp_path, data))

    assert reader.info.delimiter == "\t"
    assert reader.header == ["Name, Last", "Name, First", "ID"]


def test_an_explicit_delimiter_overrides_the_sniffing(tmp_path: Path) -> None:
    data = b"ID;Code,Name\n1;2,3\n"

    reader, rows = read(write(tmp_path, data), delimiter=",")

    assert reader.header == ["ID;Code", "Name"]
    assert rows == [(2, ["1;2", "3"])]


def test_a_header_with_no_delimiter_at_all_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, b"Dear clerk\nhello there\n")

    assert "does not look like a delimited export" in message


def test_a_quoted_newline_moves_the_line_numbers_of_later_rows(tmp_path: Path) -> None:
    data = b'ID,Note,Program\n1,"two\nlines",101\n2,"three\r\nphysical\rlines",102\n3,plain,103\n'

    _, rows = read(write(tmp_path, data))

    assert rows == [
        (2, ["1", "two\nlines", "101"]),
        (4, ["2", "three\r\nphysical\rlines", "102"]),
        (7, ["3", "plain", "103"]),
    ]


def test_a_header_label_spanning_lines_is_one_header(tmp_path: Path) -> None:
    reader, rows = read(write(tmp_path, b'"Student\nNumber",Program\n00123,101\n'))

    assert reader.header == ["Student\nNumber", "Program"]
    assert rows == [(3, ["00123", "101"])]


@pytest.mark.parametrize(("newline", "name"), [("\n", "LF"), ("\r\n", "CRLF"), ("\r", "CR")])
def test_every_line_ending_gives_the_same_rows_and_is_reported(tmp_path: Path, newline: str, name: str) -> None:
    data = export([HEADER, *ROWS, [], []], newline=newline).encode()

    reader, rows = read(write(tmp_path, data))

    assert reader.info.line_ending == name
    assert rows == [(2, ROWS[0]), (3, ROWS[1]), (4, ROWS[2])]


def test_blank_lines_and_excel_leftovers_are_skipped_but_keep_their_line_numbers(tmp_path: Path) -> None:
    data = b"\n\nID,Program\n1,101\n\n,,\n   \n2,102\n,\n\n\n"

    reader, rows = read(write(tmp_path, data))

    assert reader.header == ["ID", "Program"]
    assert rows == [(4, ["1", "101"]), (8, ["2", "102"])]


def test_leftovers_before_the_header_do_not_sway_the_delimiter(tmp_path: Path) -> None:
    text = "\r\n,,,,,\r\nID;Program;Last\r\n1;101;Núñez\r\n"

    reader, rows = read(write(tmp_path, codecs.BOM_UTF16_LE + text.encode("utf-16-le")))

    assert reader.info.delimiter == ";"
    assert reader.header == ["ID", "Program", "Last"]
    assert rows == [(4, ["1", "101", "Núñez"])]


def test_ragged_rows_are_yielded_as_they_are(tmp_path: Path) -> None:
    data = b"ID,Last,Program\n1,Lee\n2,Kim,101,extra\n3,Ray,102\n"

    _, rows = read(write(tmp_path, data))

    assert rows == [(2, ["1", "Lee"]), (3, ["2", "Kim", "101", "extra"]), (4, ["3", "Ray", "102"])]


def test_header_labels_lose_surrounding_whitespace(tmp_path: Path) -> None:
    reader, _ = read(write(tmp_path, b" ID , Program \n1,101\n"))

    assert reader.header == ["ID", "Program"]


# --- gzip -----------------------------------------------------------------------------------------------


def test_gzip_is_recognised_by_its_content_not_its_name(tmp_path: Path) -> None:
    data = gzip.compress(export([HEADER, *ROWS]).encode("cp1252"))

    reader, rows = read(write(tmp_path, data, name="export.csv"))

    assert reader.info.compressed
    assert reader.info.encoding == "cp1252"
    assert rows[2] == (4, ROWS[2])


def test_a_plain_file_named_gz_is_read_as_plain(tmp_path: Path) -> None:
    reader, rows = read(write(tmp_path, export([HEADER, *ROWS]).encode(), name="export.csv.gz"))

    assert not reader.info.compressed
    assert len(rows) == 3


def test_a_truncated_gzip_file_is_refused(tmp_path: Path) -> None:
    data = gzip.compress(export([HEADER, *ROWS] * 200).encode())

    assert "damaged or incomplete" in refusal(tmp_path, data[: len(data) // 2])


# --- files that cannot be read --------------------------------------------------------------------------


def test_an_excel_workbook_is_refused_with_what_to_do(tmp_path: Path) -> None:
    message = refusal(tmp_path, b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)) * 4)

    assert "Excel workbook" in message
    assert "save it as 'CSV UTF-8'" in message


def test_binary_garbage_is_refused(tmp_path: Path) -> None:
    assert "binary data" in refusal(tmp_path, bytes(range(256)) * 16)


def test_a_nul_byte_names_its_line(tmp_path: Path) -> None:
    data = export([HEADER, ROWS[0]]).encode() + b"00999,Ma\x00rtin,Lee,101\n"

    message = refusal(tmp_path, data)

    assert "line 3 contains a NUL byte" in message


def test_a_nul_far_into_a_crlf_file_names_its_exact_line(tmp_path: Path) -> None:
    # 17-byte header + 12-byte lines: the CRLF ending line 21845 straddles the scanner's 256 KiB chunk boundary.
    lines = b"".join(b"%06d,101\r\n" % n for n in range(40_000))
    data = b"Student,Program\r\n" + lines + b"999999,1\x0001\r\n"

    assert "line 40002 contains a NUL byte" in refusal(tmp_path, data)


def test_a_nul_in_a_utf16_file_names_its_line(tmp_path: Path) -> None:
    text = export([HEADER, ROWS[0], ["00999", "Ma\x00rtin", "Lee", "101"]], "\t", "\r\n")

    message = refusal(tmp_path, codecs.BOM_UTF16_LE + text.encode("utf-16-le"))

    assert "line 3 contains a NUL byte" in message


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    assert refusal(tmp_path, b"") == "the file is empty"


def test_a_file_of_blank_lines_is_refused(tmp_path: Path) -> None:
    assert "only blank lines" in refusal(tmp_path, b"\r\n\r\n,,,\r\n")


def test_a_header_without_rows_is_refused(tmp_path: Path) -> None:
    assert refusal(tmp_path, b"ID,Program\n\n\n") == "the file has a header but no data rows"


def test_an_unclosed_quote_at_the_end_names_the_row_where_it_opened(tmp_path: Path) -> None:
    data = b'ID,Last,Program\n1,Lee,101\n2,"Kim,102\n3,Ray,103\n'

    with ExportReader(write(tmp_path, data)) as reader:
        rows = reader.rows()
        assert next(rows) == (2, ["1", "Lee", "101"])  # what came before the damage was delivered
        with pytest.raises(ExportError, match="quote opened in the row starting on line 3 is never closed"):
            next(rows)


def test_a_runaway_quote_stops_at_the_field_size_limit_and_names_its_line(tmp_path: Path) -> None:
    filler = b"".join(b"%d,Lee,101\n" % n for n in range(20_000))  # well past csv's 128 KiB per value
    data = b'ID,Last,Program\n1,Lee,101\n2,Kim,102\n3,"Ray,103\n' + filler

    assert "line 4 is never closed" in refusal(tmp_path, data)


def test_a_stray_quote_mid_value_names_its_line(tmp_path: Path) -> None:
    data = b'ID,Last,Program\n1,Lee,101\n2,"Kim"son,102\n'

    assert "the row starting on line 3 has a quote in the middle of a value" in refusal(tmp_path, data)


def test_utf32_is_refused_with_what_to_do(tmp_path: Path) -> None:
    data = codecs.BOM_UTF32_LE + export([HEADER, *ROWS]).encode("utf-32-le")

    assert "UTF-32" in refusal(tmp_path, data)


def test_rows_can_be_read_only_once(tmp_path: Path) -> None:
    with ExportReader(write(tmp_path, export([HEADER, *ROWS]).encode())) as reader:
        list(reader.rows())
        with pytest.raises(RuntimeError):
            reader.rows()


# --- streaming ------------------------------------------------------------------------------------------


def _large_export(path: Path, rows: int) -> None:
    """Write a realistic export line by line, so the test itself never holds the file in memory."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("Student_Number,State_StudentNumber,Last_Name,First_Name,DOB,ProgramID,Enter_Date,Exit_Date\r\n")
        for n in range(rows):
            out.write(
                f'{n:07d},{n * 7:010d},"Núñez-O\'Brien, Jr",José,3/{n % 28 + 1}/2012,{101 + n % 30},8/15/2024,\r\n'
            )


def _count(rows: Iterator[tuple[int, list[str]]]) -> tuple[int, int]:
    count = last = 0
    for line, _ in rows:
        count, last = count + 1, line
    return count, last


def test_memory_stays_flat_on_a_large_file(tmp_path: Path) -> None:
    path = tmp_path / "large.csv"
    _large_export(path, 200_000)
    size = path.stat().st_size

    tracemalloc.start()
    try:
        with ExportReader(path) as reader:
            count, last_line = _count(reader.rows())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (count, last_line) == (200_000, 200_001)
    assert size > 12 * 1024 * 1024
    assert peak < 4 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB for a {size / 2**20:.0f} MiB file"


def _random_export(rng: random.Random) -> str:
    """A small CSV of what exports hold and what damages them: quoted values with delimiters, doubled quotes
    and line breaks inside, inch marks in unquoted values, stray quotes, blank lines and Excel leftovers,
    every line end; all ASCII, so only the csv shape is under test."""
    newline = rng.choice(["\n", "\r\n", "\r"])

    def value() -> str:
        kind = rng.random()
        if kind < 0.55:
            return "".join(rng.choice("xyz019 ") for _ in range(rng.randrange(4)))
        if kind < 0.8:
            inside = "".join(rng.choice('ab, ""') for _ in range(rng.randrange(5)))
            return f'"{inside}"'
        if kind < 0.9:
            return f"5'{rng.randrange(12)}\""  # an inch mark in an unquoted value
        if kind < 0.95:
            return '"a' + rng.choice(["\n", "\r\n"]) + 'b"'  # a line break kept inside quotes
        return rng.choice(['"x"y', 'x"', '"'])  # damage, or an opening quote csv reads on from

    lines = ["a,b,c"]
    for _ in range(rng.randrange(1, 40)):
        shape = rng.random()
        if shape < 0.05:
            lines.append("")
        elif shape < 0.1:
            lines.append(",,")
        else:
            lines.append(",".join(value() for _ in range(rng.choice([3, 3, 3, 2, 4]))))
    return newline.join(lines) + rng.choice([newline, ""])


def _as_csv_reads_it(text: str) -> tuple[list[tuple[int, list[str]]], bool]:
    """The oracle: csv over the whole text, each non-blank row with the line it starts on; and whether csv
    stopped at damage."""
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        next(reader)
        last = reader.line_num
        for fields in reader:
            if fields and "".join(fields).strip():
                rows.append((last + 1, fields))
            last = reader.line_num
    except csv.Error:
        return rows, True
    return rows, False


@pytest.mark.parametrize("batch", [1, 3, 512])
def test_the_rows_are_the_ones_csv_reads_whatever_the_quotes_and_line_breaks(batch: int, tmp_path: Path) -> None:
    """Lines are split in C and only a line with a quote goes through csv (``_split``): on random quoting,
    inch marks, quoted line breaks and damage, the rows, their lines and where the file is refused are
    exactly csv's own."""
    rng = random.Random(1729 + batch)
    source = tmp_path / "export.csv"
    for case in range(300):
        text = _random_export(rng)
        source.write_bytes(text.encode("ascii"))
        expected, damaged = _as_csv_reads_it(text)
        got: list[tuple[int, list[str]]] = []
        refused = False
        try:
            with ExportReader(source, delimiter=",", encoding="utf-8", batch_rows=batch) as reader:
                got.extend(reader.rows())
        except ExportError:
            refused = True
        assert refused == damaged or not expected, f"case {case}: {text!r}"  # no data row is refused too
        assert got == (expected[: len(got)] if refused else expected), f"case {case}: {text!r}"
