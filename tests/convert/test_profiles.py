from pathlib import Path

import pytest

from programs_bridge.convert.engine import ConvertOptions, convert_export
from programs_bridge.convert.profiles import detect_profile
from programs_bridge.programs_txt.layout import STANDARD, Field

HEADERS = {
    "powerschool": "Students.Student_Number,Students.State_StudentNumber,Students.Last_Name,Students.First_Name,"
    "Students.Middle_Name,Students.DOB,SPEnrollments.ProgramID,GEN.Name,SPEnrollments.Enter_Date,"
    "SPEnrollments.Exit_Date,SPEnrollments.ExitCode,SPEnrollments.GradeLevel,SPEnrollments.SchoolID",
    "aeries": "PGM.PID,STU.CID,STU.LN,STU.FN,STU.MN,STU.BD,PGM.CD,PGM.ESD,PGM.EED,PGM.PSD,PGM.PED,PGM.SCL,PGM.DEL",
    "infinite-campus": "student.studentNumber,student.stateID,student.lastName,student.firstName,"
    "student.middleName,student.birthdate,spProgram.code,spProgram.name,spProgram.startDate,spProgram.endDate,"
    "school.schoolNumber",
    "illuminate": ",".join(STANDARD.header),
    "synergy": "student_code,state_student_id,last_name,first_name,middle_name,birth_date,school_year,school_code,"
    "program_code,date_enrolled,date_withdrawn,withdrawal_code",
}


@pytest.mark.parametrize("profile", sorted(HEADERS))
def test_each_sis_shape_is_recognised_from_its_header(profile: str) -> None:
    detection = detect_profile(HEADERS[profile].split(","))
    assert detection is not None
    assert detection.mapping.name == profile


def test_illuminate_labels_match_without_their_numbers_and_in_any_case() -> None:
    header = [label.split(" ", 1)[1].upper() for label in STANDARD.header[:12]]
    detection = detect_profile(header)
    assert detection is not None and detection.mapping.name == "illuminate"
    assert Field.SITE_ID not in detection.match.positions


def test_powerschool_without_table_prefixes_is_still_powerschool() -> None:
    header = [h.split(".")[-1].lower() for h in HEADERS["powerschool"].split(",")]
    detection = detect_profile(header)
    assert detection is not None and detection.mapping.name == "powerschool"


def test_synergy_needs_only_its_key_and_name_columns_in_any_order_and_case() -> None:
    header = ["PROGRAM_CODE", "Date_Enrolled", "Student_Code", "Last_Name", "First_Name", "Birth_Date", "School_Code"]
    detection = detect_profile(header)
    assert detection is not None and detection.mapping.name == "synergy"
    assert detection.match.positions[Field.PROGRAM_START_DATE] == 1
    assert Field.PROGRAM_END_DATE not in detection.match.positions


def test_a_headerless_profile_is_never_detected_even_from_its_own_field_names() -> None:
    from programs_bridge.convert.profiles import SPRG_FIELDS

    detection = detect_profile(list(SPRG_FIELDS))
    assert detection is None or detection.mapping.name != "calpads-sprg"


def test_a_course_roster_matches_no_profile() -> None:
    assert detect_profile(["Student_Number", "Course_Number", "Section", "Teacher", "Period"]) is None


def test_aeries_skips_rows_flagged_deleted() -> None:
    detection = detect_profile(HEADERS["aeries"].split(","))
    assert detection is not None
    assert detection.match.skip == ((12, frozenset({"y", "t", "1", "true"})),)


def test_a_repeated_column_is_named_as_repeated_not_as_lacking_nothing(tmp_path: Path) -> None:
    """A Synergy export with state_student_id twice lacks nothing: the rejection says what is repeated."""
    source = tmp_path / "synergy.csv"
    header = "student_code,state_student_id,last_name,first_name,birth_date,school_code,program_code,date_enrolled"
    source.write_text(
        f"{header},state_student_id\n180201,7187871254,Lee,Ann,2008-12-12,128,302,2026-05-08,7187871254\n"
    )
    conversion = convert_export(source, None, ConvertOptions())
    assert conversion.reason is not None and "lacks ." not in conversion.reason
    assert "finds columns more than once (state_student_id, state_student_id for state_student_id)" in conversion.reason
