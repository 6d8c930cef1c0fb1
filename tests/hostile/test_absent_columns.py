"""A column the mapping names and the file lacks is never left out in silence.

A district renames a column in its export template (``date_withdrawn`` becomes ``withdrawn_on``), or types
a mapping's label wrong.  Before, every optional field was simply sent empty: a night without the end-date
column reopened every exited record in Illuminate, and one without the site column sent every key without
a quarter of itself.  Now the end dates and sites refuse the file, with the one line that accepts it when
the feed truly has none, and any other column the district's own mapping names is a warning.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from programs_bridge.convert.engine import Conversion, ConvertOptions, Status, convert_export
from programs_bridge.convert.mapping import MappingError, parse_mapping
from programs_bridge.convert.profiles import PROFILES

HEADER = (
    "student_code,state_student_id,last_name,first_name,middle_name,birth_date,school_year,school_code,"
    "program_code,date_enrolled,date_withdrawn"
)
ROWS = [
    "180201,7187871254,Testperson,Ada,,2008-12-12,2025-2026,128,302,2025-08-15,2026-01-30",
    "180202,7187871255,Sample,Bo,,2009-07-10,2025-2026,128,182,2025-08-15,",
]


def run(tmp_path: Path, header: str = HEADER, *, width: int = 11, **options: Any) -> Conversion:
    source = tmp_path / "export.csv"
    rows = [",".join(row.split(",")[:width]) for row in ROWS]
    source.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return convert_export(source, tmp_path / "programs.txt", ConvertOptions(today=date(2026, 9, 1), **options))


def said(conversion: Conversion, code: str) -> list[dict[str, Any]]:
    return [f for f in conversion.findings.as_dicts() if f["code"] == code]


def absent(conversion: Conversion) -> list[dict[str, Any]]:
    return said(conversion, "column_absent")


def the_warning(conversion: Conversion, code: str) -> tuple[Any, ...]:
    """The one warning of ``code`` a converted file has: its line, column and message."""
    assert conversion.status is Status.OK, conversion.reason
    [finding] = said(conversion, code)
    assert finding["severity"] == "warning"
    return finding["line"], finding["column"], finding["message"]


def test_the_built_in_profile_reads_its_export_without_a_word_about_columns_it_never_had(tmp_path: Path) -> None:
    conversion = run(tmp_path)  # no eligibility dates, no exit code: the sample's shape
    assert conversion.status is Status.OK and conversion.profile == "synergy"
    assert absent(conversion) == []


def test_a_renamed_end_date_column_refuses_the_file_instead_of_reopening_every_exit(tmp_path: Path) -> None:
    conversion = run(tmp_path, HEADER.replace("date_withdrawn", "withdrawn_on"), mapping=PROFILES["synergy"])
    assert conversion.status is Status.REJECTED
    assert not (tmp_path / "programs.txt").exists()
    assert "no Program End Date column ('date_withdrawn')" in conversion.reason
    assert "reopening any the SIS has exited" in conversion.reason
    assert 'extends = "synergy"' in conversion.reason and 'program_end_date = ""' in conversion.reason


def test_a_site_column_missing_refuses_the_file(tmp_path: Path) -> None:
    conversion = run(tmp_path, HEADER.replace("school_code", "campus"), mapping=PROFILES["synergy"])
    assert conversion.status is Status.REJECTED
    assert "no Site ID column ('school_code')" in conversion.reason and 'site_id = ""' in conversion.reason


def test_the_constant_the_refusal_names_accepts_a_feed_that_truly_has_no_end_dates(tmp_path: Path) -> None:
    mapping = parse_mapping({"extends": "synergy", "constants": {"program_end_date": ""}}, profiles=PROFILES)
    conversion = run(tmp_path, HEADER.replace(",date_withdrawn", ""), width=10, mapping=mapping)
    assert conversion.status is Status.OK, conversion.reason
    assert absent(conversion) == []


def test_a_typo_in_the_districts_mapping_is_caught_for_the_end_date_and_warned_for_the_rest(tmp_path: Path) -> None:
    typo_end = parse_mapping(
        {"extends": "synergy", "columns": {"program_end_date": "date_withdrawal"}}, profiles=PROFILES
    )
    refused = run(tmp_path, mapping=typo_end)
    assert refused.status is Status.REJECTED and "'date_withdrawal'" in refused.reason

    typo_state = parse_mapping({"extends": "synergy", "columns": {"state_student_id": "ssid"}}, profiles=PROFILES)
    line, _, message = the_warning(run(tmp_path, mapping=typo_state), "column_absent")
    assert line == 1
    assert message.startswith("the mapping names 'ssid' for State Student ID, and this file has no such")
    assert 'state_student_id = ""' in message
    # The profile's own optional columns the export never had are still not warned about.
    assert "Eligibility" not in message


# --- one column read twice ----------------------------------------------------------------------------


def test_an_end_date_read_from_the_start_date_column_refuses_the_file(tmp_path: Path) -> None:
    mapping = parse_mapping({"extends": "synergy", "columns": {"program_end_date": "date_enrolled"}}, profiles=PROFILES)
    conversion = run(tmp_path, mapping=mapping)
    assert conversion.status is Status.REJECTED
    assert "Program End Date from the same column as Program Start Date ('date_enrolled')" in conversion.reason
    assert "ended on the day it started" in conversion.reason


def test_another_column_read_twice_is_a_warning_but_the_state_id_as_local_id_is_not(tmp_path: Path) -> None:
    twice = parse_mapping({"extends": "synergy", "columns": {"middle_name": "first_name"}}, profiles=PROFILES)
    line, column, message = the_warning(run(tmp_path, mapping=twice), "column_reused")
    assert (line, column) == (1, "first_name")
    assert message.startswith("the mapping reads both Student First Name and Student Middle Name from")

    state_as_local = parse_mapping(
        {"extends": "synergy", "columns": {"import_student_id": "state_student_id"}}, profiles=PROFILES
    )
    conversion = run(tmp_path, mapping=state_as_local)
    assert conversion.status is Status.OK
    assert not said(conversion, "column_reused")


# --- a student's row taken for the header -------------------------------------------------------------

#: A mapping by position over ROWS' shape.
BY_POSITION = {"import_student_id": 1, "last_name": 3, "first_name": 4, "birth_date": 6, "program_id": 9,
               "program_start_date": 10, "program_end_date": 11, "site_id": 8}  # fmt: skip


def by_position(tmp_path: Path, text: str, columns: dict[str, Any] = BY_POSITION, **settings: Any) -> Conversion:
    source = tmp_path / "export.csv"
    source.write_text(text, encoding="utf-8")
    mapping = parse_mapping({"columns": columns, **settings})
    options = ConvertOptions(today=date(2026, 9, 1), mapping=mapping, max_reject_share=1.0)
    return convert_export(source, tmp_path / "programs.txt", options)


def test_a_positional_mapping_on_a_file_without_a_header_row_refuses_it_instead_of_losing_a_student(
    tmp_path: Path,
) -> None:
    no_header = "\n".join(ROWS) + "\n"  # no header row; the mapping forgot to say so
    conversion = by_position(tmp_path, no_header)
    assert conversion.status is Status.REJECTED
    assert "set header = false" in conversion.reason
    assert "180201" not in conversion.reason and "Testperson" not in conversion.reason
    # Said so, the file is read whole: both students.
    assert by_position(tmp_path, no_header, header=False).rows_written == 2
    # Letters before the ID, a time after the date: still a student's row.
    stamped = "S1801,,Testperson,Ada,,2008-12-12T00:00:00,,128,302,2025-08-15T00:00:00,\n" + ROWS[1] + "\n"
    assert by_position(tmp_path, stamped).status is Status.REJECTED


def test_a_header_with_a_date_for_a_label_beside_the_mapped_columns_is_still_a_header(tmp_path: Path) -> None:
    census = HEADER.replace("school_year", "10/01/2025")  # a census-date column, not read by the mapping
    assert by_position(tmp_path, "\n".join([census, *ROWS]) + "\n").rows_written == 2


# --- skip rules ---------------------------------------------------------------------------------------


def test_a_skip_rule_of_the_districts_own_whose_column_is_absent_refuses_the_file(tmp_path: Path) -> None:
    rule = {"column": "deleted_flag", "values": ["Y"]}
    mapping = parse_mapping({"extends": "synergy", "skip": [rule]}, profiles=PROFILES)
    conversion = run(tmp_path, mapping=mapping)
    assert conversion.status is Status.REJECTED
    assert "skip rule reads deleted_flag, which this file lacks" in conversion.reason


def test_a_profiles_own_skip_rule_without_its_column_is_only_noted(tmp_path: Path) -> None:
    header = "PGM.PID,STU.LN,STU.FN,STU.BD,PGM.CD,PGM.PSD,PGM.PED,PGM.SCL"  # Aeries, no DEL column
    source = tmp_path / "aeries.csv"
    source.write_text(header + "\n4521,Testperson,Ada,1/1/2012,144,8/15/2025,,101\n", encoding="utf-8")
    conversion = convert_export(source, tmp_path / "programs.txt", ConvertOptions(today=date(2026, 9, 1)))
    assert conversion.status is Status.OK and conversion.profile == "aeries"
    [noted] = said(conversion, "skip_column_absent")
    assert noted["severity"] == "info"


def test_a_skip_rule_with_no_values_is_a_mapping_error() -> None:
    with pytest.raises(MappingError, match="skip"):
        parse_mapping({"extends": "synergy", "skip": [{"column": "deleted", "values": []}]}, profiles=PROFILES)


def test_a_constant_that_replaces_a_column_the_file_has_is_said(tmp_path: Path) -> None:
    mapping = parse_mapping({"extends": "synergy", "constants": {"site_id": "12"}}, profiles=PROFILES)
    conversion = run(tmp_path, mapping=mapping)
    assert conversion.status is Status.OK
    [noted] = said(conversion, "constant_over_column")
    line, column, message, severity = noted["line"], noted["column"], noted["message"], noted["severity"]
    assert (line, column, severity) == (1, "school_code", "info")  # said, without a nightly warning
    assert message.startswith("the mapping gives Site ID as a constant, so this file's column for it")
    # Without the column in the file, the constant is what the district meant: nothing to say.
    conversion = run(tmp_path, HEADER.replace("school_code", "campus"), mapping=mapping)
    assert conversion.status is Status.OK
    assert not said(conversion, "constant_over_column")


# --- shapes that legitimately lack an end-date or site column ----------------------------------------


def test_an_export_dated_by_eligibility_alone_is_read_with_its_eligibility_end_dates(tmp_path: Path) -> None:
    header = "PGM.PID,STU.LN,STU.FN,STU.BD,PGM.CD,PGM.ESD,PGM.EED,PGM.SCL"  # Aeries without PSD and PED
    source = tmp_path / "aeries.csv"
    source.write_text(header + "\n4521,Testperson,Ada,1/1/2012,144,8/15/2025,1/30/2026,101\n", encoding="utf-8")
    conversion = convert_export(source, tmp_path / "programs.txt", ConvertOptions(today=date(2026, 9, 1)))
    assert conversion.status is Status.OK, conversion.reason
    assert absent(conversion) == []


def test_a_report_of_illuminates_key_columns_alone_seeds_and_says_its_records_are_learnt_open(
    tmp_path: Path,
) -> None:
    source = tmp_path / "report.csv"
    source.write_text("Local Student ID,Program Code,Start Date,School ID\n004521,144,2024-08-15,101\n")
    options = ConvertOptions(today=date(2026, 9, 1), records_only=True)
    conversion = convert_export(source, tmp_path / "programs.txt", options)
    assert conversion.status is Status.OK, conversion.reason
    [said] = absent(conversion)
    assert "every record is learnt as open" in said["message"]


def test_a_past_programs_txt_of_some_of_the_12_legacy_columns_needs_no_site(tmp_path: Path) -> None:
    from programs_bridge.programs_txt.layout import LEGACY

    labels = [label for label in LEGACY.header if "Middle" not in label]
    source = tmp_path / "past.txt"
    row = ["004521", "", "Testperson", "Ada", "03/04/2012", "144", "", "", "08/15/2024", "", "2024-2025"]
    source.write_text("\t".join(labels) + "\n" + "\t".join(row) + "\n", encoding="utf-8")
    conversion = convert_export(source, tmp_path / "programs.txt", ConvertOptions(today=date(2026, 9, 1)))
    assert conversion.status is Status.OK, conversion.reason


def test_a_constant_over_a_column_of_a_headerless_record_layout_is_named_by_its_field(tmp_path: Path) -> None:
    import tomllib

    samples = Path(__file__).resolve().parents[2] / "samples"
    settings = tomllib.loads((samples / "calpads-sprg-codes.toml").read_text(encoding="utf-8"))
    settings.setdefault("constants", {})["academic_year"] = "2025-2026"
    mapping = parse_mapping(settings, profiles=PROFILES)
    options = ConvertOptions(today=date(2026, 9, 1), mapping=mapping, max_reject_share=1.0)
    conversion = convert_export(samples / "calpads-sprg.txt", tmp_path / "programs.txt", options)
    [noted] = said(conversion, "constant_over_column")
    assert (noted["line"], noted["column"]) == (None, "AcademicYearID")


def test_a_positional_mappings_findings_name_columns_by_position_never_by_the_first_lines_cells(
    tmp_path: Path,
) -> None:
    # A first line that passes for a header (a short ID, no dates) may still be a student: never quoted.
    columns = {"import_student_id": 1, "last_name": 2, "first_name": 2, "birth_date": 4, "program_id": 5,
               "program_start_date": 6, "program_end_date": 7, "site_id": 8}  # fmt: skip
    conversion = by_position(tmp_path, "AB-12,Garcia,Maria,,144,,,12\nS-043,,Bo,1/2/2010,144,1/5/2024,,12\n", columns)
    text = json_text(conversion)
    assert "Garcia" not in text and "Maria" not in text
    assert said(conversion, "column_reused")[0]["column"] == "field 2"


def test_a_real_header_whose_id_label_holds_a_year_is_a_header(tmp_path: Path) -> None:
    columns = {"import_student_id": 1, "last_name": 2, "first_name": 3, "birth_date": 4, "program_id": 5,
               "program_start_date": 6, "program_end_date": 7, "site_id": 8}  # fmt: skip
    text = (
        "Student ID 2024-25,Last,First,DOB,Program,Start,End,School\n180201,Testperson,Ada,1/2/2010,144,1/5/2024,,12\n"
    )
    assert by_position(tmp_path, text, columns).rows_written == 1


def test_a_legacy_programs_txt_read_by_a_mapping_that_extends_illuminate_needs_no_site(tmp_path: Path) -> None:
    from programs_bridge.programs_txt.layout import LEGACY

    source = tmp_path / "past.txt"
    row = ["004521", "", "Testperson", "Ada", "", "03/04/2012", "144", "", "", "08/15/2024", "", "2024-2025"]
    source.write_text("\t".join(LEGACY.header) + "\n" + "\t".join(row) + "\n", encoding="utf-8")
    mapping = parse_mapping({"extends": "illuminate", "values": {"program_id": {"SPED": "144"}}}, profiles=PROFILES)
    options = ConvertOptions(today=date(2026, 9, 1), mapping=mapping)
    assert convert_export(source, tmp_path / "programs.txt", options).status is Status.OK


def json_text(conversion: Conversion) -> str:
    import json

    return json.dumps(conversion.findings.as_dicts())
