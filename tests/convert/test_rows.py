"""One export row at a time: what lands in programs.txt, and what the clerk is told."""

from datetime import date

import pytest

from programs_bridge.convert.codetable import parse_code_table
from programs_bridge.convert.headers import match_columns
from programs_bridge.convert.mapping import Mapping, parse_mapping
from programs_bridge.convert.profiles import POWERSCHOOL
from programs_bridge.convert.rows import Outcome, RowConverter, RowResult
from programs_bridge.programs_txt.layout import LEGACY, STANDARD, Layout, custom_layout

HEADER = [
    "Student_Number", "State_StudentNumber", "Last_Name", "First_Name", "Middle_Name", "DOB", "ProgramID",
    "Enter_Date", "Exit_Date", "ExitCode", "SchoolID",
]  # fmt: skip
GOOD = ["004521", "1234567890", "O'Brien", "Zoë", "Ann", "3/4/2012", "144", "8/15/2025", "", "", "101"]
TODAY = date(2026, 9, 1)
CODES = parse_code_table("Code Key,Description,System Key\n144,Special Education,\n101,504 Plan,504_plan\n"
                         "5040,Section 504 accommodations,\n181,Free Meal,\n")  # fmt: skip


def converter(mapping: Mapping = POWERSCHOOL, layout: Layout = STANDARD, **kwargs: object) -> RowConverter:
    return RowConverter(mapping, match_columns(mapping, HEADER), HEADER, layout, today=TODAY, **kwargs)  # type: ignore[arg-type]


def row(**changes: str) -> list[str]:
    values = dict(zip(HEADER, GOOD, strict=True))
    values.update(changes)
    return list(values.values())


def codes(result: RowResult) -> list[str]:
    return [f.code for f in result.findings]


def test_a_clean_row_becomes_a_15_column_programs_txt_line() -> None:
    result = converter().convert(2, row())
    assert result.outcome is Outcome.WRITTEN
    assert result.findings == ()
    assert result.line.split("\t") == [
        "004521", "1234567890", "O'Brien", "Zoë", "Ann", "03/04/2012", "144", "", "", "08/15/2025", "",
        "2025-2026", "", "", "101",
    ]  # fmt: skip
    assert result.key == ("004521", "144", "08/15/2025", "101")


def test_the_legacy_layout_stops_after_academic_year_and_keys_without_site() -> None:
    result = converter(layout=LEGACY).convert(2, row())
    assert len(result.line.split("\t")) == 12
    assert result.key == ("004521", "144", "08/15/2025", "")


def test_a_custom_column_order_is_followed() -> None:
    layout = custom_layout(["program_id", "import_student_id", "last_name", "first_name", "birth_date",
                            "program_start_date"])  # fmt: skip
    assert converter(layout=layout).convert(2, row()).line == "144\t004521\tO'Brien\tZoë\t03/04/2012\t08/15/2025"


@pytest.mark.parametrize(
    ("column", "value", "code"),
    [
        ("Student_Number", "", "required"),
        ("Last_Name", "  ", "required"),
        ("ProgramID", "", "required"),
        ("DOB", "", "required"),
        ("DOB", "41856", "excel_serial_date"),
        ("DOB", "2/30/2012", "impossible_date"),
        ("DOB", "3/4/2031", "birth_date_future"),
        ("Enter_Date", "", "start_date_missing"),
        ("Enter_Date", "45890", "excel_serial_date"),
        ("Exit_Date", "someday", "bad_date"),
        ("Exit_Date", "8/14/2025", "end_before_start"),
        ("Student_Number", "1.23457E+11", "excel_scientific_id"),
        ("Student_Number", "9" * 31, "too_long"),
        ("SchoolID", "Lincoln High", "site_id_not_integer"),
    ],
)
def test_a_row_with_an_error_is_left_out_and_says_where_and_why(column: str, value: str, code: str) -> None:
    result = converter().convert(7, row(**{column: value}))
    assert result.outcome is Outcome.REJECTED
    assert code in codes(result)
    finding = next(f for f in result.findings if f.code == code)
    assert finding.line == 7
    assert finding.severity == "error"
    assert finding.column in (column, "Enter_Date", None)


def test_messages_never_quote_personal_values() -> None:
    result = converter().convert(3, row(Student_Number="1.23457E+11", DOB="41856", Last_Name=""))
    text = " ".join(f.message for f in result.findings)
    assert "41856" not in text  # a birth date is personal, even when damaged
    assert "1.23457E+11" in text  # ... the example in the message, not the row's value
    assert "O'Brien" not in text and "Zoë" not in text


def test_the_many_date_spellings_of_real_exports_come_out_as_mm_dd_yyyy() -> None:
    for spelling in ("2012-03-04", "2012-03-04T00:00:00", "03/04/12", "04-MAR-2012", "3/4/2012"):
        assert converter().convert(2, row(DOB=spelling)).line.split("\t")[5] == "03/04/2012"


def test_an_old_1900_exit_date_means_still_enrolled() -> None:
    result = converter().convert(2, row(Exit_Date="1/1/1900"))
    assert result.outcome is Outcome.WRITTEN
    assert result.line.split("\t")[10] == ""


def test_a_scientific_state_id_is_blanked_with_a_warning_not_rejected() -> None:
    result = converter().convert(2, row(State_StudentNumber="1.23457E+11"))
    assert result.outcome is Outcome.WRITTEN
    assert result.line.split("\t")[1] == ""
    assert codes(result) == ["excel_scientific_id"]


def test_an_implausibly_old_student_is_a_warning() -> None:
    result = converter().convert(2, row(DOB="3/4/1960"))
    assert result.outcome is Outcome.WRITTEN
    assert codes(result) == ["birth_date_implausible"]


def test_ragged_rows_are_row_errors() -> None:
    result = converter().convert(9, GOOD[:-1])
    assert result.outcome is Outcome.REJECTED
    assert codes(result) == ["field_count"]
    assert "has 10 fields but the header has 11" in result.findings[0].message


def test_tabs_and_line_breaks_inside_values_become_spaces() -> None:
    result = converter().convert(2, row(Middle_Name="Ann\tMarie\r\nLee"))
    assert result.line.split("\t")[4] == "Ann Marie Lee"
    assert result.line.count("\t") == 14
    assert codes(result) == ["line_break_in_value"]


def custom(**sections: object) -> Mapping:
    base: dict[str, object] = {"columns": dict(POWERSCHOOL.columns)}
    base.update(sections)
    return parse_mapping(base)


def test_value_maps_turn_sis_codes_into_illuminate_code_keys() -> None:
    mapping = custom(values={"program_id": {"SPED": "144"}, "site_id": {"Lincoln High": "101"}})
    line = converter(mapping).convert(2, row(ProgramID="sped", SchoolID="Lincoln High")).line.split("\t")
    assert (line[6], line[14]) == ("144", "101")


def test_stripped_leading_zeros_are_restored_to_the_configured_width() -> None:
    convert = converter(custom(ids={"import_student_id_width": 6}))
    assert convert.convert(2, row(Student_Number="4521")).key[0] == "004521"
    assert convert.zeros_restored == 1


def test_day_first_order_reads_ambiguous_dates_day_first() -> None:
    line = converter(custom(dates={"order": "DMY"})).convert(2, row(DOB="3/4/2012", Enter_Date="15/8/2025")).line
    assert line.split("\t")[5] == "04/03/2012"


def test_academic_year_follows_the_configured_first_month() -> None:
    line = converter(custom(academic_year={"first_month": 9})).convert(2, row(Enter_Date="8/15/2025")).line
    assert line.split("\t")[11] == "2024-2025"


def test_a_given_academic_year_is_checked_against_the_start_date() -> None:
    mapping = custom(columns={**POWERSCHOOL.columns, "academic_year": "ExitCode"})
    result = converter(mapping).convert(2, row(ExitCode="2023-24"))
    assert result.outcome is Outcome.WRITTEN
    assert result.line.split("\t")[11] == "2023-2024"
    assert codes(result) == ["academic_year_mismatch"]
    assert converter(mapping).convert(2, row(ExitCode="2025")).outcome is Outcome.REJECTED


def test_a_program_missing_from_the_code_table_is_a_row_error() -> None:
    result = converter(code_table=CODES).convert(2, row(ProgramID="Special Ed"))
    assert result.outcome is Outcome.REJECTED
    assert codes(result) == ["unknown_program"]


def test_a_504_program_off_the_system_code_is_warned_once() -> None:
    convert = converter(code_table=CODES)
    first = convert.convert(2, row(ProgramID="5040"))
    again = convert.convert(3, row(ProgramID="5040"))
    assert first.outcome is Outcome.WRITTEN
    assert codes(first) == ["not_504_system_code"]
    assert "code '101'" in first.findings[0].message
    assert again.findings == ()
    assert convert.convert(4, row(ProgramID="101")).findings == ()


def test_ids_shorter_than_the_padded_width_are_flagged_as_stripped_zeros() -> None:
    convert = converter()
    for line, sid in enumerate(["004521", "104522", "4523", "204524"], start=2):
        assert convert.convert(line, row(Student_Number=sid)).outcome is Outcome.WRITTEN
    finding = convert.id_shape.finding("Student_Number")
    assert finding is not None and finding.code == "leading_zeros_stripped"
    assert "1 Import Student ID(s) are shorter than the 6 digits" in finding.message
    assert "lines 4" in finding.message


def test_one_long_id_with_a_leading_zero_does_not_make_every_shorter_id_suspect() -> None:
    convert = converter()
    for line, sid in enumerate(["104521", "104522", "0123456789", "204524"], start=2):
        assert convert.convert(line, row(Student_Number=sid)).outcome is Outcome.WRITTEN
    assert convert.id_shape.finding("Student_Number") is None


def test_unpadded_ids_of_mixed_widths_are_not_suspected() -> None:
    convert = converter()
    for line, sid in enumerate(["4521", "104522", "99"], start=2):
        convert.convert(line, row(Student_Number=sid))
    assert convert.id_shape.finding("Student_Number") is None
