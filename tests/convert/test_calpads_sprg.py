"""The CALPADS Student Program (SPRG) extract through the converter, as a district's mapping extends it."""

from pathlib import Path

import pytest

from programs_bridge.cli.main import main
from programs_bridge.convert.profiles import SPRG_FIELDS

CODES = """
extends = "calpads-sprg"
[values.site_id]
"6000101" = "12"
"6000102" = "14"
[values.program_id]
"101" = "504"
"""


def sprg(**fields: str) -> str:
    """One SPRG record: a Free Meal membership at school 6000101, with ``fields`` (by layout name) changed."""
    record = dict.fromkeys(SPRG_FIELDS, "")
    record.update(
        RecordTypeCode="SPRG", TransactionTypeCode="A", ReportingLEA="1964733", SchoolOfAttendance="6000101",
        AcademicYearID="2025-2026", SSID="2963394839", LocalStudentID="006371", StudentLegalFirstName="Ana",
        StudentLegalLastName="Lee", StudentBirthDate="20160531", StudentGenderCode="F",
        EducationProgramCode="181", EducationProgramMembershipCode="2",
        EducationProgramMembershipStartDate="20250815",
    )  # fmt: skip
    record.update(fields)
    return "^".join(record.values())


def convert(tmp_path: Path, lines: list[str], *extra: str, newline: str = "\n") -> tuple[int, list[list[str]]]:
    source, codes, out = tmp_path / "sprg.txt", tmp_path / "codes.toml", tmp_path / "programs.txt"
    source.write_bytes("".join(line + newline for line in lines).encode("utf-8"))
    codes.write_text(CODES, encoding="utf-8")
    args = ["convert", str(source), "--mapping", str(codes), "-o", str(out), "--as-of", "2026-09-01", *extra]
    code = main([*args, "--report", str(tmp_path / "report.json")])
    rows = [line.split("\t") for line in out.read_text(encoding="utf-8").splitlines()[1:]] if out.exists() else []
    return code, rows


def findings(tmp_path: Path) -> list[dict[str, object]]:
    import json

    issues: list[dict[str, object]] = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))["issues"]
    return issues


def test_an_sprg_record_becomes_a_programs_txt_row_keyed_by_its_membership_dates(tmp_path: Path) -> None:
    code, [row] = convert(tmp_path, [sprg(EducationProgramMembershipEndDate="20260110")])
    assert code == 0
    assert row == [
        "006371", "2963394839", "Lee", "Ana", "", "05/31/2016", "181", "", "", "08/15/2025", "01/10/2026",
        "2025-2026", "", "", "12",
    ]  # fmt: skip


def test_the_districts_program_and_school_codes_replace_the_state_codes(tmp_path: Path) -> None:
    code, [row] = convert(tmp_path, [sprg(EducationProgramCode="101", SchoolOfAttendance="6000102")])
    assert code == 0 and (row[6], row[14]) == ("504", "14")


def test_the_ods_extract_with_its_two_trailing_fields_is_read_too(tmp_path: Path) -> None:
    ods = sprg(RecordTypeCode="SPRG-R") + "^20250901^20250902"
    code, rows = convert(tmp_path, [ods, sprg(LocalStudentID="006372")])
    assert code == 0 and [r[0] for r in rows] == ["006371", "006372"]
    assert len(ods.split("^")) == 28


def test_a_record_of_neither_width_is_a_row_error(tmp_path: Path) -> None:
    short = "^".join(sprg(LocalStudentID="006372").split("^")[:25])
    code, rows = convert(tmp_path, [sprg(), short], "--max-reject-share", "1")
    assert code == 1 and len(rows) == 1
    [finding] = findings(tmp_path)
    assert finding["line"] == 2 and finding["code"] == "field_count"
    assert "reads rows of 26 or 28 fields" in str(finding["message"])


def test_delete_transactions_are_skipped_and_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, rows = convert(tmp_path, [sprg(), sprg(TransactionTypeCode="D", LocalStudentID="006372")])
    assert code == 0 and [r[0] for r in rows] == ["006371"]
    assert "2 read, 1 written, 0 rejected, 1 skipped" in capsys.readouterr().err


def test_an_unmapped_school_code_is_a_row_error_that_names_the_code(tmp_path: Path) -> None:
    code, rows = convert(tmp_path, [sprg(), sprg(SchoolOfAttendance="6009999")], "--max-reject-share", "1")
    assert code == 1 and len(rows) == 1
    [finding] = findings(tmp_path)
    assert (finding["line"], finding["column"], finding["code"]) == (2, "SchoolOfAttendance", "unmapped_site_id")
    assert "'6009999'" in str(finding["message"]) and "[values.site_id]" in str(finding["message"])


def test_a_student_id_misplaced_in_the_school_column_is_described_not_quoted(tmp_path: Path) -> None:
    code, _ = convert(
        tmp_path, [sprg(), sprg(SchoolOfAttendance="0063710", LocalStudentID="0063710")], "--max-reject-share", "1"
    )
    assert code == 1
    [finding] = findings(tmp_path)
    assert finding["code"] == "unmapped_site_id" and "0063710" not in str(finding["message"])


def test_a_file_of_another_calpads_record_type_is_rejected_as_the_wrong_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    senr = "SENR^A^^1964733^6000101^2025-2026^2963394839^006371^Ana^^Lee^^^20160531^F^^^^^20250815^^^^^^^^^^"
    code, rows = convert(tmp_path, [senr, senr])
    assert code == 2 and rows == []
    err = capsys.readouterr().err
    assert "not a file of SPRG or SPRG-R records" in err and "RecordTypeCode is SENR" in err


def test_an_unknown_record_kind_is_described_never_quoted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = convert(tmp_path, [sprg(RecordTypeCode="Lee")])
    assert code == 2
    err = capsys.readouterr().err
    assert "RecordTypeCode is " in err and "Lee" not in err.split("reason:")[1].split("\n")[0]


def test_a_later_record_of_another_type_is_a_row_error(tmp_path: Path) -> None:
    code, rows = convert(tmp_path, [sprg(), sprg(RecordTypeCode="SINF")], "--max-reject-share", "1")
    assert code == 1 and len(rows) == 1
    [finding] = findings(tmp_path)
    assert (finding["line"], finding["code"]) == (2, "other_record_type") and "SINF" in str(finding["message"])


def test_an_excel_saved_extract_keeps_its_student_ids_once_the_width_is_given(tmp_path: Path) -> None:
    lines = [sprg(LocalStudentID="6371"), sprg(LocalStudentID="123456")]
    code, rows = convert(tmp_path, lines, newline="\r\n")
    assert code == 0 and [r[0] for r in rows] == ["6371", "123456"]
    (tmp_path / "codes.toml").write_text(CODES + "[ids]\nimport_student_id_width = 6\n", encoding="utf-8")
    source = tmp_path / "sprg.txt"
    out = tmp_path / "fixed.txt"
    assert main(["convert", str(source), "--mapping", str(tmp_path / "codes.toml"), "-o", str(out)]) == 0
    assert [line.split("\t")[0] for line in out.read_text(encoding="utf-8").splitlines()[1:]] == ["006371", "123456"]


def test_the_profile_alone_is_refused_before_any_row_for_want_of_the_school_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "sprg.txt"
    source.write_text(sprg() + "\n", encoding="utf-8")
    assert main(["convert", str(source), "--profile", "calpads-sprg", "-o", str(tmp_path / "p.txt")]) == 2
    assert "needs a [values.site_id] table" in capsys.readouterr().err


def test_an_empty_school_code_is_a_row_error_not_a_row_without_a_site(tmp_path: Path) -> None:
    """Site ID is part of the record's key: sent empty, it would open a second record in Illuminate."""
    code, rows = convert(
        tmp_path, [sprg(), sprg(SchoolOfAttendance="", LocalStudentID="006372")], "--max-reject-share", "1"
    )
    assert code == 1 and [r[0] for r in rows] == ["006371"]
    [finding] = findings(tmp_path)
    assert (finding["line"], finding["column"], finding["code"]) == (2, "SchoolOfAttendance", "required")
    assert "the school code is empty" in str(finding["message"])


def test_a_code_mapped_to_nothing_is_a_mapping_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, codes = tmp_path / "sprg.txt", tmp_path / "codes.toml"
    source.write_text(sprg() + "\n", encoding="utf-8")
    codes.write_text(CODES.replace('"6000102" = "14"', '"6000102" = " "'), encoding="utf-8")
    assert main(["convert", str(source), "--mapping", str(codes), "-o", str(tmp_path / "p.txt")]) == 64
    assert "values.site_id.6000102 map(s) a code to an empty value" in capsys.readouterr().err


def test_one_schools_extract_may_give_its_site_as_a_constant_instead_of_a_code_table(tmp_path: Path) -> None:
    source, codes, out = tmp_path / "sprg.txt", tmp_path / "codes.toml", tmp_path / "p.txt"
    source.write_text(sprg() + "\n" + sprg(SchoolOfAttendance="", LocalStudentID="006372") + "\n", encoding="utf-8")
    codes.write_text('extends = "calpads-sprg"\n[constants]\nsite_id = "12"\n', encoding="utf-8")
    assert main(["convert", str(source), "--mapping", str(codes), "-o", str(out), "--as-of", "2026-09-01"]) == 0
    assert [line.split("\t")[14] for line in out.read_text(encoding="utf-8").splitlines()[1:]] == ["12", "12"]


def test_a_double_quote_in_a_name_stays_in_its_own_record(tmp_path: Path) -> None:
    """SPRG is never quoted: a stray " (a nickname typed into the SIS) must not join the next record into it."""
    lines = [sprg(StudentLegalFirstName='"Nan'), sprg(LocalStudentID="006372"), sprg(LocalStudentID="006373")]
    code, rows = convert(tmp_path, lines)
    assert code == 0
    assert [(r[0], r[3]) for r in rows] == [("006371", '"Nan'), ("006372", "Ana"), ("006373", "Ana")]


def test_a_senr_record_among_sprg_records_is_named_as_another_record_type(tmp_path: Path) -> None:
    """A SENR record has its own width: the row error says which record it is, not only that it is too long."""
    senr = "SENR^A^^1964733^6000101^2025-2026^2963394839^006371^Ana^^Lee^^^20160531^F^^^^^20250815^^^^^^^^^^"
    code, rows = convert(tmp_path, [sprg(), senr, sprg(LocalStudentID="006372")], "--max-reject-share", "1")
    assert code == 1 and [r[0] for r in rows] == ["006371", "006372"]
    [finding] = findings(tmp_path)
    assert (finding["line"], finding["code"]) == (2, "other_record_type") and "SENR" in str(finding["message"])


def test_a_line_ending_in_one_caret_too_many_says_so(tmp_path: Path) -> None:
    code, _ = convert(tmp_path, [sprg() + "^", sprg(LocalStudentID="006372")], "--max-reject-share", "1")
    assert code == 1
    [finding] = findings(tmp_path)
    assert finding["code"] == "field_count" and "this row has 27 fields" in str(finding["message"])
    assert "as if the line ended with one delimiter too many" in str(finding["message"])


def test_a_file_of_only_delete_transactions_is_rejected_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = convert(tmp_path, [sprg(TransactionTypeCode="D"), sprg(TransactionTypeCode="D", LocalStudentID="6")])
    assert code == 2
    assert "all 2 rows are ones the mapping skips" in capsys.readouterr().err


def test_a_header_line_some_tools_add_is_skipped_and_said_so(tmp_path: Path) -> None:
    code, rows = convert(tmp_path, ["^".join(SPRG_FIELDS), sprg()])
    assert code == 0 and [r[0] for r in rows] == ["006371"]
    [finding] = findings(tmp_path)
    assert (finding["line"], finding["code"], finding["severity"]) == (1, "header_row_skipped", "info")


def test_an_extract_given_without_its_mapping_is_told_how_to_name_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "sprg.txt"
    source.write_text(sprg() + "\n" + sprg(LocalStudentID="006372") + "\n", encoding="utf-8")
    assert main(["convert", str(source), "-o", str(tmp_path / "p.txt")]) == 2
    err = capsys.readouterr().err
    assert "this looks like a CALPADS SPRG extract, which has no header row" in err
    assert 'extends = "calpads-sprg"' in err and "profiles:" not in err
