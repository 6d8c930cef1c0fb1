"""Shifted columns: names, birth dates and student IDs in every column, and not one of them in a message.

A second export with another column order concatenated below the first (or a row that lost a field before
the SIS wrote it) puts a student's name in the Site ID column, a birth date in Program Start Date and a
student ID in Academic Year.  The findings about those rows travel further than the export: to stderr, to
the JSON and Markdown reports, to e-mail.  Each test plants personal values in every column position of a
row, as single values and as whole rows shifted through every position, converts the file with the real
converter, and searches every message for the planted values, and for what they turn into (a birth date as
MM/DD/YYYY, a student ID without its leading zeros, the date an ID means read as an Excel serial number).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from conftest import PERSONAL_VALUES
from programs_bridge.convert.codetable import parse_code_table
from programs_bridge.convert.dates import excel_serial_day, format_date
from programs_bridge.convert.engine import Conversion, ConvertOptions, convert_export
from programs_bridge.programs_txt.layout import COLUMNS
from programs_bridge.report.conversion import summary
from support.log_leaks import leaked

TODAY = date(2026, 9, 1)
#: Illuminate's own column labels: the profile that reads all fifteen columns, so every check runs.
HEADER = [column.label for column in COLUMNS]
GOOD = [
    "004521", "1234567890", "Quillfeather", "Marisol", "Evangeline", "03/04/2012", "144", "", "",
    "08/15/2025", "", "2025-2026", "", "", "101",
]  # fmt: skip
NAMES = ("Quillfeather", "Marisol", "Evangeline", "NGUYEN", "O'Brien-Smith", "Zoë", "Thi Thảo")
BIRTH_DATES = ("03/04/2012", "2012-03-04", "3/4/12", "04-MAR-2012", "20120304", "2/30/2012")
STUDENT_IDS = ("004521", "918273645", "45304", "AB123", "XQ5501", "S1234567", "1234567890", "0101")
PLANTED = (*NAMES, *BIRTH_DATES, *STUDENT_IDS)
#: What the planted values can turn into on the way: the forms a message could show them in.
DERIVED = {
    "4521",  # 004521 without its leading zeros
    format_date(excel_serial_day(45304)),  # the day student ID 45304 means as an Excel serial number
    "02/30/2012",
    "2011-2012",  # the school year of a birth date in a start date column
    "2012-2013",
}
FORBIDDEN = set(PLANTED) | DERIVED
PERSONAL_VALUES.update(v for v in PLANTED if len(v) >= 3)  # the suite-wide log check looks for these too
CODES = parse_code_table("Code Key,Description,System Key\n144,Special Education,\n101,504 Plan,504_plan\n")


def planted_rows() -> list[list[str]]:
    """Every planted value in every column, then the good row shifted through every position and reversed,
    with a byte-order mark and a zero-width space stuck to values, as a concatenated export brings them."""
    rows = []
    for position in range(len(GOOD)):
        for value in PLANTED:
            rows.append([*GOOD[:position], value, *GOOD[position + 1 :]])
        rows.append([*GOOD[:position], "\ufeff" + GOOD[position] + "\u200b", *GOOD[position + 1 :]])
    for shift in range(1, len(GOOD)):
        rows.append(GOOD[shift:] + GOOD[:shift])
        bad = ["0101", "1234567890", "NGUYEN", "Thi Thảo", "O'Brien-Smith", "45304", "AB123", "2/30/2012",
               "3/4/12", "20120304", "04-MAR-2012", "918273645", "S1234567", "XQ5501", "2012-03-04"]  # fmt: skip
        rows.append(bad[shift:] + bad[:shift])
    rows.append(GOOD[::-1])
    rows.append(HEADER[::-1])  # the second export's own header, now a data row
    return rows


def convert(tmp_path: Path, rows: list[list[str]], **options: object) -> Conversion:
    source = tmp_path / "export.txt"
    source.write_text("\n".join("\t".join(row) for row in [HEADER, *rows]) + "\n", encoding="utf-8")
    return convert_export(
        source,
        tmp_path / "programs.txt",
        ConvertOptions(today=TODAY, max_reject_share=1.0, **options),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("code_table", [CODES, None], ids=["with a code table", "without"])
def test_no_message_quotes_a_name_birth_date_or_student_id_in_any_column(tmp_path: Path, code_table: object) -> None:
    conversion = convert(tmp_path, planted_rows(), code_table=code_table)
    issues = conversion.findings.as_dicts()
    texts = [issue["message"] for issue in issues] + [conversion.reason or "", summary(conversion, None)]
    quoted = {
        (issue["line"], issue["code"], value) for issue in issues for value in leaked([issue["message"]], FORBIDDEN)
    }
    assert not quoted, f"messages quote personal values: {sorted(quoted)[:20]}"
    assert leaked(texts, FORBIDDEN) == []
    # 0101 is a student ID when it sits in Site ID; written there as 101, it must not be shown either
    assert not [issue for issue in issues if issue["code"] == "site_id_normalised" and "101" in issue["message"]]
    # the planted rows did reach every check that could have quoted them
    codes = {issue["code"] for issue in issues}
    expected = {
        "site_id_not_integer", "site_id_normalised", "bad_date", "impossible_date", "excel_serial_date",
        "academic_year_format", "academic_year_mismatch", "end_before_start", "invisible_character",
        "required",
    }  # fmt: skip
    if code_table is not None:
        expected.add("unknown_program")
    assert expected <= codes


def test_a_name_in_a_code_column_is_described_and_a_code_shaped_value_still_quoted(tmp_path: Path) -> None:
    described = [[*GOOD[:14], "Quillfeather"], [*GOOD[:6], "NGUYEN", *GOOD[7:]], [*GOOD[:11], "03/04/2012", *GOOD[12:]]]
    quoted = [[*GOOD[:14], "12A"], [*GOOD[:6], "SP-2", *GOOD[7:]], [*GOOD[:11], "2025-27", *GOOD[12:]]]
    conversion = convert(tmp_path, described + quoted, code_table=CODES)
    messages = {(issue["line"], issue["code"]): issue["message"] for issue in conversion.findings.as_dicts()}
    assert messages[2, "site_id_not_integer"].startswith("Site ID is text, not a whole number")
    assert messages[3, "unknown_program"].startswith("Program ID (text, not shown) is not a code key")
    assert messages[4, "academic_year_format"].startswith("Academic Year is a date, not a school year")
    assert messages[5, "site_id_not_integer"].startswith("Site ID '12A' is not a whole number")
    assert messages[6, "unknown_program"].startswith("Program ID 'SP-2' is not a code key")
    assert messages[7, "academic_year_format"].startswith("'2025-27' is not one school year")


def test_a_year_and_month_in_the_academic_year_column_is_described_not_quoted(tmp_path: Path) -> None:
    rows = [[*GOOD[:11], "2010-05", *GOOD[12:]], [*GOOD[:11], "2009/11", *GOOD[12:]]]  # a birth year and month
    conversion = convert(tmp_path, rows, code_table=CODES)
    messages = [issue["message"] for issue in conversion.findings.as_dicts() if issue["code"].startswith("academic")]
    assert len(messages) == 2
    assert not any("2010" in message or "2009" in message for message in messages)
