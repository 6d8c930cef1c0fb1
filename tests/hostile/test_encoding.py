"""Encodings that lie: what the bridge will not do is send a name that went through the wrong codec.

A UTF-8 export with a few bad bytes on one row (a name pasted from an older system) used to be read as
Windows-1252 from top to bottom: exit 0, every accented name garbled (``JosÃ©``), and through the pipeline
the whole feed re-sent as "updated".  The rule now (reader.py, ``_decide``): over the whole file, count the
characters that are valid multi-byte UTF-8 and the bytes that are in no valid UTF-8 sequence; the file is
Windows-1252 only when the bad bytes outnumber the valid characters.  Whichever wins, a row that does not
fit it is left out with a row error naming its line, and every other row converts.

Every input is built here as bytes, so each test shows exactly what is on disk.
"""

from __future__ import annotations

import codecs
from datetime import date
from pathlib import Path

import pytest

from conftest import PERSONAL_VALUES
from programs_bridge.convert.engine import Conversion, ConvertOptions, convert_export
from programs_bridge.convert.findings import Finding, Severity
from programs_bridge.convert.reader import ExportError, ExportReader
from programs_bridge.programs_txt.layout import COLUMNS

TODAY = date(2026, 9, 1)
#: Accented names a clerk would check by eye, all of them in Windows-1252 too.
NAMES = [("Núñez", "José"), ("Søren-Müller", "Ève"), ("Çelik", "Zoë"), ("Ibáñez", "Iñaki"), ("Dvořák", "Renée")]
CP1252_NAMES = NAMES[:2] + NAMES[2:4]  # Dvořák's ř is not in Windows-1252
PERSONAL_VALUES.update({*(n for pair in NAMES for n in pair), "Gómez", "Luis", "Lefèvre"})
ILLUMINATE = "\t".join(column.label for column in COLUMNS).encode() + b"\n"


def programs_row(number: int, last: bytes, first: bytes) -> bytes:
    """One row of an export in Illuminate's own 15 columns (tab-delimited), names as raw bytes."""
    fields = [b"%06d" % number, b"", last, first, b"", b"03/04/2012", b"144", b"", b"", b"08/15/2025", b"",
              b"2025-2026", b"", b"", b"101"]  # fmt: skip
    return b"\t".join(fields) + b"\n"


def convert(tmp_path: Path, data: bytes) -> tuple[Conversion, str]:
    source, output = tmp_path / "export.txt", tmp_path / "programs.txt"
    source.write_bytes(data)
    conversion = convert_export(source, output, ConvertOptions(today=TODAY, max_reject_share=1.0))
    return conversion, output.read_text(encoding="utf-8") if output.exists() else ""


def read(path: Path, **options: object) -> tuple[ExportReader, list[tuple[int, list[str]]]]:
    with ExportReader(path, **options) as reader:  # type: ignore[arg-type]
        return reader, list(reader.rows())


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "export.csv"
    path.write_bytes(data)
    return path


def row_errors(findings: list[Finding]) -> list[tuple[int | None, str, Severity]]:
    return [(f.line, f.code, f.severity) for f in findings if f.code in ("encoding_invalid_bytes", "encoding_mixed")]


def csv_rows(names: list[tuple[str, str]], encoding: str, start: int = 1) -> bytes:
    return b"".join(f"{start + i:05d},{last},{first},101\n".encode(encoding) for i, (last, first) in enumerate(names))


HEADER = b"Student_Number,Last_Name,First_Name,ProgramID\n"


# --- a UTF-8 export with a few bad bytes stays UTF-8 ----------------------------------------------------


def test_a_utf8_export_with_bad_bytes_on_one_row_keeps_every_other_name_intact(tmp_path: Path) -> None:
    rows = [programs_row(n, last.encode(), first.encode()) for n, (last, first) in enumerate(NAMES, start=1)]
    rows.insert(3, programs_row(999, b"G\xf3mez", b"Luis"))  # line 5: an o-acute pasted as Windows-1252

    conversion, programs = convert(tmp_path, ILLUMINATE + b"".join(rows))

    assert conversion.info is not None and conversion.info.encoding == "utf-8"
    for last, first in NAMES:
        assert f"\t{last}\t{first}\t" in programs
    assert "Ã" not in programs  # nothing went through the wrong codec
    assert "000999" not in programs  # the damaged row was not sent
    assert programs.count("\n") == 1 + len(NAMES)


def test_the_damaged_row_gets_an_error_naming_its_line_and_quoting_nothing(tmp_path: Path) -> None:
    data = HEADER + csv_rows(NAMES[:2], "utf-8") + b"00999,G\xf3mez,Luis,101\n" + csv_rows(NAMES[2:], "utf-8", 3)

    reader, rows = read(write(tmp_path, data))

    assert reader.info.encoding == "utf-8"
    assert row_errors(reader.findings) == [(4, "encoding_invalid_bytes", Severity.ERROR)]
    message = next(f.message for f in reader.findings if f.code == "encoding_invalid_bytes")
    assert not any(value in message for value in ("00999", "mez", "Luis", "\udcf3", "\ufffd"))
    assert [line for line, _ in rows] == [2, 3, 5, 6, 7]
    assert [fields[1:3] for _, fields in rows] == [list(pair) for pair in NAMES]
    assert (reader.counts.rows, reader.counts.damaged, reader.counts.lines) == (5, 1, 7)


def test_the_row_errors_go_to_the_callers_finding_log_as_they_are_found(tmp_path: Path) -> None:
    data = HEADER + csv_rows(NAMES, "utf-8") + b"00999,G\xf3mez,Luis,101\n00998,Lef\xe8vre,Luis,101\n"
    found: list[Finding] = []

    reader, rows = read(write(tmp_path, data), on_finding=found.append)

    assert row_errors(found) == [
        (7, "encoding_invalid_bytes", Severity.ERROR),
        (8, "encoding_invalid_bytes", Severity.ERROR),
    ]
    assert reader.findings == []
    assert len(rows) == len(NAMES)


def test_a_bad_byte_on_the_first_row_does_not_decide_for_the_whole_file(tmp_path: Path) -> None:
    many = NAMES * 400  # 2,000 rows, 64 KiB chunks apart: the evidence is the whole file, not its first bad byte
    data = HEADER + b"00999,G\xf3mez,Luis,101\n" + csv_rows(many, "utf-8", 2)

    reader, rows = read(write(tmp_path, data))

    assert reader.info.encoding == "utf-8"
    assert row_errors(reader.findings) == [(2, "encoding_invalid_bytes", Severity.ERROR)]
    assert [fields[1:3] for _, fields in rows] == [list(pair) for pair in many]


@pytest.mark.parametrize(("valid", "bad"), [(1, 1), (5, 1), (40, 39)], ids=["a tie", "more valid", "one more valid"])
def test_a_file_stays_utf8_while_its_valid_characters_are_at_least_its_bad_bytes(
    tmp_path: Path, valid: int, bad: int
) -> None:
    good_rows = b"".join(b"%05d,Ren\xc3\xa9e,Ana,101\n" % n for n in range(valid))  # one valid e-acute each
    bad_rows = b"".join(b"%05d,Ren\xe9e,Ana,101\n" % (500 + n) for n in range(bad))  # one bad byte each

    reader, rows = read(write(tmp_path, HEADER + good_rows + bad_rows))

    assert reader.info.encoding == "utf-8"
    assert len(row_errors(reader.findings)) == bad
    assert {fields[1] for _, fields in rows} == {"Renée"}


def test_a_file_declared_utf8_by_its_bom_keeps_its_good_rows_too(tmp_path: Path) -> None:
    data = codecs.BOM_UTF8 + HEADER + csv_rows(NAMES, "utf-8") + b"00999,G\xf3mez,Luis,101\n"

    reader, rows = read(write(tmp_path, data))

    assert reader.info.encoding == "utf-8-sig"
    assert row_errors(reader.findings) == [(7, "encoding_invalid_bytes", Severity.ERROR)]
    assert [fields[1:3] for _, fields in rows] == [list(pair) for pair in NAMES]


def test_a_damaged_row_spanning_lines_is_named_by_the_line_it_starts_on(tmp_path: Path) -> None:
    data = HEADER + csv_rows(NAMES[:1], "utf-8") + b'00999,"G\xf3mez\nJr",Luis,101\n' + csv_rows(NAMES[1:], "utf-8", 3)

    reader, rows = read(write(tmp_path, data))

    assert row_errors(reader.findings) == [(3, "encoding_invalid_bytes", Severity.ERROR)]
    assert [line for line, _ in rows] == [2, 5, 6, 7, 8]
    assert reader.counts.continued == 1


def test_a_header_with_bad_bytes_is_refused_naming_its_line(tmp_path: Path) -> None:
    data = b"Student_Number,Nom,Pr\xe9nom,ProgramID\n" + csv_rows(NAMES, "utf-8")

    with pytest.raises(ExportError, match="the header on line 1 has bytes that are not valid UTF-8"):
        read(write(tmp_path, data))


def test_a_file_whose_every_row_is_damaged_is_refused_in_one_sentence(tmp_path: Path) -> None:
    # Each row: two valid UTF-8 characters and one bad byte, so the file is UTF-8 and every row is damaged.
    data = HEADER + b"".join(b"%05d,Ren\xc3\xa9e Lef\xe8vre,Zo\xc3\xab,101\n" % n for n in range(3))

    with pytest.raises(ExportError, match=r"none of the file's 3 data row\(s\) can be read"):
        read(write(tmp_path, data))


# --- a Windows-1252 export with a UTF-8 row: the same rule the other way round ---------------------------


def test_a_utf8_row_in_a_windows_1252_export_is_left_out_not_garbled(tmp_path: Path) -> None:
    rows = [
        programs_row(n, last.encode("cp1252"), first.encode("cp1252"))
        for n, (last, first) in enumerate(CP1252_NAMES, 1)
    ]
    rows.insert(2, programs_row(999, "Gómez".encode(), b"Luis"))  # line 4: one row saved as UTF-8

    conversion, programs = convert(tmp_path, ILLUMINATE + b"".join(rows))

    assert conversion.info is not None and conversion.info.encoding == "cp1252"
    for last, first in CP1252_NAMES:
        assert f"\t{last}\t{first}\t" in programs
    assert "Ã" not in programs
    assert "000999" not in programs


def test_the_utf8_row_of_a_windows_1252_export_gets_an_error_naming_its_line(tmp_path: Path) -> None:
    data = HEADER + csv_rows(CP1252_NAMES, "cp1252") + "00999,Gómez,Luis,101\n".encode()

    reader, rows = read(write(tmp_path, data))

    assert reader.info.encoding == "cp1252"
    assert [f.code for f in reader.findings] == ["encoding_cp1252", "encoding_mixed"]
    assert row_errors(reader.findings) == [(6, "encoding_mixed", Severity.ERROR)]
    assert [fields[1:3] for _, fields in rows] == [list(pair) for pair in CP1252_NAMES]


def test_a_conversion_counts_the_damaged_row_as_read_and_rejected_and_reports_its_error(tmp_path: Path) -> None:
    rows = [programs_row(n, last.encode(), first.encode()) for n, (last, first) in enumerate(NAMES, start=1)]
    rows.insert(2, programs_row(999, b"G\xf3mez", b"Luis"))  # line 4

    conversion, _ = convert(tmp_path, ILLUMINATE + b"".join(rows) + b"\n\t\t\t\n")

    assert (conversion.rows_read, conversion.rows_rejected, conversion.rows_written) == (6, 1, 5)
    assert conversion.rows_read == conversion.rows_valid + conversion.rows_rejected + conversion.rows_skipped
    assert (conversion.rows_blank, conversion.lines_read) == (2, 9)  # every physical line is in the totals
    assert [(f["line"], f["code"]) for f in conversion.findings.as_dicts()] == [(4, "encoding_invalid_bytes")]


# --- a declared encoding that the bytes contradict --------------------------------------------------------


def test_a_utf8_export_declared_windows_1252_is_refused_rather_than_garbled(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + csv_rows(CP1252_NAMES, "utf-8"))
    with pytest.raises(ExportError, match="declared as Windows-1252 but it is UTF-8 with accented letters"):
        read(path, encoding="cp1252")
    # Windows-1252 bytes declared as such, and a plain ASCII file declared so, read as asked.
    reader, rows = read(write(tmp_path, HEADER + csv_rows(CP1252_NAMES, "cp1252")), encoding="cp1252")
    assert [row[1][1] for row in rows] == [last for last, _ in CP1252_NAMES]
    reader, rows = read(write(tmp_path, HEADER + b"00001,Lee,Ann,101\n"), encoding="cp1252")
    assert reader.info.encoding == "cp1252" and len(rows) == 1
