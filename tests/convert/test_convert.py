"""Whole files through the converter: what is written, what is refused, and the counts that prove it."""

from datetime import date
from pathlib import Path

from programs_bridge.convert.engine import Conversion, ConvertOptions, Status, convert_export, converted_rows
from programs_bridge.programs_txt.render import OutputFormat

HEADER = (
    "Student_Number,State_StudentNumber,Last_Name,First_Name,Middle_Name,DOB,ProgramID,"
    "Enter_Date,Exit_Date,ExitCode,SchoolID"
)
ROWS = [
    "004521,1234567890,O'Brien,Zoë,,3/4/2012,144,8/15/2025,,,101",
    '004522,1234567891,"García, Jr.",José,Luis,11/30/2011,181,8/15/2025,6/1/2026,E1,101',
    "004523,1234567892,Nguyễn,Thảo,,1/2/2013,101,9/1/2025,,,102",
]
TODAY = date(2026, 9, 1)


def run(tmp_path: Path, lines: list[str], **options: object) -> tuple[Conversion, Path]:
    source = tmp_path / "export.csv"
    source.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    destination = tmp_path / "programs.txt"
    conversion = convert_export(source, destination, ConvertOptions(today=TODAY, **options))  # type: ignore[arg-type]
    return conversion, destination


def test_a_clean_export_becomes_a_byte_exact_programs_txt(tmp_path: Path) -> None:
    conversion, out = run(tmp_path, ROWS)
    assert conversion.status is Status.OK
    assert conversion.profile == "powerschool" and conversion.profile_detected
    assert out.read_bytes().decode("utf-8") == (
        "01 Import Student ID\t02 State Student ID\t03 Student Last Name\t04 Student First Name\t"
        "05 Student Middle Name\t06 Birth Date\t07 Program ID\t08 Eligibility Start Date\t09 Eligibility End Date\t"
        "10 Program Start Date\t11 Program End Date\t12 Academic Year\t13 Program Eligibility Code\t"
        "14 Program Exit Code\t15 Site ID\n"
        "004521\t1234567890\tO'Brien\tZoë\t\t03/04/2012\t144\t\t\t08/15/2025\t\t2025-2026\t\t\t101\n"
        "004522\t1234567891\tGarcía, Jr.\tJosé\tLuis\t11/30/2011\t181\t\t\t08/15/2025\t06/01/2026\t2025-2026\t"
        "\tE1\t101\n"
        "004523\t1234567892\tNguyễn\tThảo\t\t01/02/2013\t101\t\t\t09/01/2025\t\t2025-2026\t\t\t102\n"
    )
    assert not out.read_bytes().startswith(b"\xef\xbb\xbf")


def test_crlf_and_no_header_are_options(tmp_path: Path) -> None:
    _, out = run(tmp_path, ROWS[:1], output=OutputFormat(header=False, newline="\r\n"))
    assert (
        out.read_bytes()
        == "004521\t1234567890\tO'Brien\tZoë\t\t03/04/2012\t144\t\t\t08/15/2025\t\t2025-2026\t\t\t101\r\n".encode()
    )


def test_an_identical_repeat_of_a_record_is_sent_once_with_a_warning(tmp_path: Path) -> None:
    conversion, out = run(tmp_path, [*ROWS, ROWS[0]])
    assert conversion.status is Status.OK
    assert (conversion.rows_written, conversion.rows_merged) == (3, 1)
    assert out.read_text(encoding="utf-8").count("004521\t") == 1
    [finding] = conversion.findings.as_dicts()
    assert finding["code"] == "duplicate_merged" and finding["line"] == 5 and "line 2" in finding["message"]


def test_conflicting_rows_for_one_record_are_all_left_out(tmp_path: Path) -> None:
    changed = ROWS[0].replace(",,,101", ",6/1/2026,E2,101")
    many = [f"{n:06d},,Doe,Sam,,1/1/2012,144,8/15/2025,,,101" for n in range(100, 160)]
    conversion, out = run(tmp_path, [*ROWS, *many, changed])
    assert conversion.status is Status.PARTIAL
    assert conversion.rows_rejected == 2
    assert "004521\t" not in out.read_text(encoding="utf-8")
    lines = sorted(f["line"] for f in conversion.findings.as_dicts() if f["code"] == "duplicate_conflict")
    assert lines == [2, 65]


def test_too_many_bad_rows_reject_the_whole_file_and_write_nothing(tmp_path: Path) -> None:
    (tmp_path / "programs.txt").write_text("yesterday's file\n")
    bad = ROWS[0].replace("3/4/2012", "41000")
    conversion, out = run(tmp_path, [*ROWS, bad])
    assert conversion.status is Status.REJECTED
    assert "1 of 4 rows (25.0%) have errors, more than the 5% allowed" in (conversion.reason or "")
    assert out.read_text() == "yesterday's file\n"  # untouched: nothing written
    assert not list(tmp_path.glob(".programs-*"))  # no staging file left behind


def test_the_reject_share_is_configurable(tmp_path: Path) -> None:
    bad = ROWS[0].replace("3/4/2012", "41000")
    conversion, _ = run(tmp_path, [*ROWS, bad], max_reject_share=0.5)
    assert conversion.status is Status.PARTIAL


def test_a_file_with_no_valid_row_is_rejected(tmp_path: Path) -> None:
    conversion, out = run(tmp_path, [ROWS[0].replace("O'Brien", "")], max_reject_share=1.0)
    assert conversion.status is Status.REJECTED
    assert "none of the 1 rows is valid" in (conversion.reason or "")
    assert not out.exists()


def test_a_course_roster_is_rejected_as_the_wrong_file(tmp_path: Path) -> None:
    source = tmp_path / "roster.csv"
    source.write_text("Student_Number,Course_Number,Section,Teacher,Period\n004521,ENG101,2,Smith,3\n")
    conversion = convert_export(source, tmp_path / "programs.txt", ConvertOptions(today=TODAY))
    assert conversion.status is Status.REJECTED
    assert "matches no known program export" in (conversion.reason or "")
    assert not (tmp_path / "programs.txt").exists()


def test_every_row_read_is_accounted_for(tmp_path: Path) -> None:
    rows = [*ROWS, ROWS[0], ROWS[1].replace("11/30/2011", "2/30/2011"), "1,2,3"]
    conversion, _ = run(tmp_path, rows, max_reject_share=1.0)
    assert conversion.rows_read == 6
    assert conversion.rows_read == (
        conversion.rows_valid + conversion.rows_rejected + conversion.rows_skipped + conversion.rows_merged
    )
    assert (conversion.rows_written, conversion.rows_rejected, conversion.rows_merged) == (3, 2, 1)


def test_the_written_rows_can_be_read_back_with_their_export_lines(tmp_path: Path) -> None:
    changed = ROWS[0].replace(",,,101", ",6/1/2026,E2,101")
    many = [f"{n:06d},,Doe,Sam,,1/1/2012,144,8/15/2025,,,101" for n in range(100, 160)]
    conversion, _ = run(tmp_path, [*ROWS, ROWS[1], *many, changed], keep_source_lines=True)
    rows = list(converted_rows(conversion))
    assert [line for line, _ in rows] == [3, 4, *range(6, 66)]  # 2 and 67 conflict, 5 repeats 3
    assert rows[0][1][:3] == ["004522", "1234567891", "García, Jr."]
    assert len(rows) == conversion.rows_written
    assert list(converted_rows(conversion)) == rows  # walkable again
