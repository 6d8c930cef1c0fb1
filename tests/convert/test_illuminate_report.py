"""The ``illuminate-report`` profile: Illuminate's own program records (Custom Reporting, "Students: Programs"),
and past programs.txt files, read so that their keys compare equal with the nightly rows of the same records.

Everything here is synthetic: made-up people, IDs and codes.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from programs_bridge.convert.engine import Conversion, ConvertOptions, Status, convert_export, converted_rows
from programs_bridge.convert.mapping import Mapping, parse_mapping
from programs_bridge.convert.profiles import ILLUMINATE, ILLUMINATE_REPORT, PROFILES, detect_profile
from programs_bridge.ledger.model import row_facts
from programs_bridge.local import synthetic
from programs_bridge.programs_txt.layout import COLUMNS, LEGACY, STANDARD, Field

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
GOLDEN = Path(__file__).parent / "golden"
TODAY = date(2026, 9, 1)
AS_OF = "2026-09-01"  # as test_golden.py: the synthetic data's reference day
F = Field


def _convert(tmp_path: Path, name: str, text: str, mapping: Mapping | None = None) -> Conversion:
    source = tmp_path / name
    source.write_text(text, encoding="utf-8")
    options = ConvertOptions(mapping=mapping, today=TODAY, keep_source_lines=True)
    return convert_export(source, tmp_path / f"{name}.programs.txt", options)


def _rows(conversion: Conversion) -> list[list[str]]:
    return [fields for _, fields in converted_rows(conversion)]


def _keys(conversion: Conversion) -> list[str]:
    return [row_facts(fields, STANDARD).key_text for fields in _rows(conversion)]


# --- header variants ----------------------------------------------------------------------------------

#: Report headers as districts' Custom Reports spell them; each maps student, program, start date and site.
REPORT_HEADERS = {
    "report labels": ["Student ID", "Last Name", "First Name", "Birthdate", "Program", "Start Date", "End Date",
                      "Site"],
    "local id, codes": ["Local Student ID", "State Student ID", "Last Name", "First Name", "Middle Name",
                        "Birth Date", "Program Code", "Start Date", "End Date", "Exit Code", "School ID"],
    "any case and punctuation": ["LOCAL_STUDENT_ID", "last_name", "FIRST NAME", "date of birth", "program-code",
                                 "start_date", "END DATE", "site"],
    "programs.txt labels, report site": ["Import Student ID", "Student Last Name", "Student First Name",
                                         "Birth Date", "Program ID", "Program Start Date", "Program End Date",
                                         "School ID"],
    "the generator's sample": list(synthetic.PROFILES["illuminate-report"].header),
}  # fmt: skip


@pytest.mark.parametrize("variant", sorted(REPORT_HEADERS))
def test_report_headers_are_detected_as_the_report_profile(variant: str) -> None:
    header = REPORT_HEADERS[variant]
    detection = detect_profile(header)
    assert detection is not None and detection.mapping.name == "illuminate-report"
    found = {field: header[at] for field, at in detection.match.positions.items()}
    for field in (F.IMPORT_STUDENT_ID, F.PROGRAM_ID, F.PROGRAM_START_DATE, F.SITE_ID, F.LAST_NAME, F.BIRTH_DATE):
        assert field in found, f"{variant}: {field.value} not matched"


def test_the_more_specific_label_wins_when_a_report_has_both() -> None:
    header = ["Student ID", "Local Student ID", "Program", "Program Code", "Site", "School ID", "Last Name",
              "First Name", "Birth Date", "Start Date"]  # fmt: skip
    detection = detect_profile(header)
    assert detection is not None and detection.mapping.name == "illuminate-report"
    positions = detection.match.positions
    assert header[positions[F.IMPORT_STUDENT_ID]] == "Local Student ID"  # not Illuminate's internal Student ID
    assert header[positions[F.PROGRAM_ID]] == "Program Code"  # "Program" may be the program's name
    assert header[positions[F.SITE_ID]] == "School ID"


def test_the_profile_is_a_valid_mapping_a_feed_can_extend() -> None:
    assert PROFILES["illuminate-report"] is ILLUMINATE_REPORT
    mapping = parse_mapping({"extends": "illuminate-report", "values": {"site_id": {"Lincoln": "12"}}}, "m", PROFILES)
    assert mapping.sources(F.SITE_ID) == ("Site ID", "School ID", "Site")


@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_a_report_converts_as_csv_or_tsv_with_the_converters_normalisation(tmp_path: Path, delimiter: str) -> None:
    header = ["Local Student ID", "Last Name", "First Name", "Birthdate", "Program Code", "Program", "Start Date",
              "End Date", "Academic Year", "Site ID"]  # fmt: skip
    rows = [
        ["004521", "Testperson", "Ada", "2012-03-04", "144", "Special Education", "2025-08-15", "", "", "012"],
        ["004522", "Sample", "Bo", "11/30/2011", "181", "Free Meal Program", "8/15/2025", "6/1/2026", "2025-26",
         "101"],
    ]  # fmt: skip
    text = "\n".join(delimiter.join(row) for row in [header, *rows]) + "\n"
    conversion = _convert(tmp_path, "report.txt", text, ILLUMINATE_REPORT)
    assert conversion.status is Status.OK, conversion.reason
    assert _rows(conversion) == [
        ["004521", "", "Testperson", "Ada", "", "03/04/2012", "144", "", "", "08/15/2025", "", "2025-2026", "", "",
         "12"],
        ["004522", "", "Sample", "Bo", "", "11/30/2011", "181", "", "", "08/15/2025", "06/01/2026", "2025-2026", "",
         "", "101"],
    ]  # fmt: skip
    assert conversion.info is not None and conversion.info.delimiter == delimiter
    # Site 012 is written 12, with the warning a nightly export would get.
    assert [f["code"] for f in conversion.findings.as_dicts()] == ["site_id_normalised"]


# --- a report without names or birth date: refused, naming the columns --------------------------------

NAMELESS = "Local Student ID,Program Code,Start Date,End Date,Site ID\n004521,144,2025-08-15,,12\n"


def test_a_report_without_names_and_birth_date_is_refused_whole_naming_the_columns(tmp_path: Path) -> None:
    conversion = _convert(tmp_path, "nameless.csv", NAMELESS, ILLUMINATE_REPORT)
    assert conversion.status is Status.REJECTED
    assert conversion.output is None and not (tmp_path / "nameless.csv.programs.txt").exists()
    reason = conversion.reason or ""
    assert "mapping 'illuminate-report' does not fit this file" in reason
    for label in ("Student Last Name", "Student First Name", "Birth Date"):
        assert label in reason
    assert "004521" not in reason


def test_a_report_without_names_is_not_detected_as_any_profile(tmp_path: Path) -> None:
    assert detect_profile(NAMELESS.splitlines()[0].split(",")) is None
    conversion = _convert(tmp_path, "nameless.csv", NAMELESS)
    assert conversion.status is Status.REJECTED
    reason = conversion.reason or ""
    assert "matches no known program export" in reason
    assert "the closest, illuminate-report, lacks Student Last Name, Student First Name, Birth Date" in reason


def test_names_and_birth_date_stay_required_for_every_profile() -> None:
    """The report profile is not a way around the rules: no built-in profile may leave them out."""
    for profile in PROFILES.values():
        for field in (c.field for c in COLUMNS if c.required):
            assert profile.sources(field) or field in profile.constants, f"{profile.name}: {field.value}"


# --- past programs.txt files: 15 or 12 columns, with or without NN numbers ---------------------------

PAST_ROWS = [
    ["004521", "1234567890", "Testperson", "Ada", "", "03/04/2012", "144", "", "", "08/15/2025", "", "2025-2026",
     "", "", "101"],
    ["004522", "1234567891", "Sample", "Bo", "Lee", "11/30/2011", "181", "08/15/2025", "06/01/2026", "", "",
     "2025-2026", "", "TR", "102"],
]  # fmt: skip
PAST_SHAPES = {
    "15 columns, NN labels": (STANDARD, True),
    "15 columns, bare labels": (STANDARD, False),
    "12 columns, NN labels": (LEGACY, True),
    "12 columns, bare labels": (LEGACY, False),
}


def _past_file(layout_numbered: tuple[object, bool]) -> str:
    layout, numbered = layout_numbered
    assert layout in (STANDARD, LEGACY)
    width = len(STANDARD.fields) if layout is STANDARD else len(LEGACY.fields)
    header = STANDARD.header[:width]
    if not numbered:
        header = [label.split(" ", 1)[1] for label in header]
    lines = ["\t".join(header), *("\t".join(row[:width]) for row in PAST_ROWS)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("shape", sorted(PAST_SHAPES))
def test_a_past_programs_txt_is_read_by_the_illuminate_profile(tmp_path: Path, shape: str) -> None:
    layout, _ = PAST_SHAPES[shape]
    conversion = _convert(tmp_path, "programs.txt", _past_file(PAST_SHAPES[shape]))
    assert conversion.status is Status.OK, conversion.reason
    assert conversion.profile == "illuminate" and conversion.profile_detected
    width = len(layout.fields)
    # Written back in the standard layout, unchanged; the legacy file has no codes or Site ID to give.
    assert _rows(conversion) == [row[:width] + [""] * (len(STANDARD.fields) - width) for row in PAST_ROWS]


@pytest.mark.parametrize("shape", sorted(PAST_SHAPES))
def test_the_report_profile_reads_a_past_programs_txt_the_same_way(tmp_path: Path, shape: str) -> None:
    text = _past_file(PAST_SHAPES[shape])
    by_illuminate = _convert(tmp_path, "a.txt", text, ILLUMINATE)
    by_report = _convert(tmp_path, "b.txt", text, ILLUMINATE_REPORT)
    assert by_report.status is Status.OK, by_report.reason
    assert _rows(by_report) == _rows(by_illuminate)


@pytest.mark.parametrize("shape", sorted(PAST_SHAPES))
def test_a_past_programs_txt_is_detected_as_illuminate_not_as_a_report(shape: str) -> None:
    header = _past_file(PAST_SHAPES[shape]).splitlines()[0].split("\t")
    detection = detect_profile(header)
    assert detection is not None and detection.mapping.name == "illuminate"


# --- keys equal to a nightly export's -----------------------------------------------------------------

POWERSCHOOL = (
    "Students.Student_Number,Students.State_StudentNumber,Students.Last_Name,Students.First_Name,"
    "Students.Middle_Name,Students.DOB,SPEnrollments.ProgramID,SPEnrollments.Enter_Date,SPEnrollments.Exit_Date,"
    "SPEnrollments.ExitCode,SPEnrollments.SchoolID\n"
    "004521,1234567890,Testperson,Ada,,3/4/2012,144,8/5/2025,,,12\n"
    "004522,1234567891,Sample,Bo,Lee,11/30/2011,181,8/15/2025,1/1/1900,,102\n"
    "004523,1234567892,Example,Cy,,1/2/2013,101,9/1/2025,6/1/2026,TR,7\n"
)
#: The same three records as Illuminate's report gives them: other labels and column order, ISO and
#: unpadded dates, a zero-padded site, the free-meal record dated by its eligibility start.
REPORT = (
    "Site ID,Program Code,Program,Local Student ID,Last Name,First Name,Birthdate,Eligibility Start Date,"
    "Start Date,End Date,Exit Code\n"
    "012,144,Special Education,004521,Testperson,Ada,2012-03-04,,2025-08-05,,\n"
    "102,181,Free Meal Program,004522,Sample,Bo,2011-11-30,2025-08-15,,,\n"
    "7,101,Section 504 Plan,004523,Example,Cy,2013-01-02,,9/1/2025,2026-06-01,TR\n"
)


def test_a_report_row_keys_equal_the_nightly_powerschool_row_of_the_same_record(tmp_path: Path) -> None:
    nightly = _convert(tmp_path, "nightly.csv", POWERSCHOOL)
    report = _convert(tmp_path, "report.csv", REPORT)
    assert (nightly.profile, report.profile) == ("powerschool", "illuminate-report")
    assert nightly.status is Status.OK and report.status is not Status.REJECTED, report.reason
    assert _keys(report) == _keys(nightly)
    assert len(set(_keys(nightly))) == 3
    # Open and exited alike: PowerSchool's 1/1/1900 is open, as the report's empty end date is.
    ends = [[row_facts(fields, STANDARD).end_date for fields in _rows(c)] for c in (nightly, report)]
    assert ends[0] == ends[1] == ["", "", "06/01/2026"]


# --- detection ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", sorted(p.name for p in synthetic.PROFILES.values() if p.header_row))
def test_every_generated_shape_keeps_its_own_profile(profile: str) -> None:
    detection = detect_profile(list(synthetic.PROFILES[profile].header))
    assert detection is not None and detection.mapping.name == profile


def test_the_course_roster_is_still_refused() -> None:
    assert detect_profile(list(synthetic.COURSE_ROSTER_HEADER)) is None


def test_program_names_in_a_column_called_program_are_refused_not_keyed(tmp_path: Path) -> None:
    """Seeded under its name, a record would never match the code key a nightly export sends."""
    source = tmp_path / "report.csv"
    source.write_text(
        "Student ID,Last Name,First Name,Birth Date,Program,Start Date,End Date,Site\n"
        "004570,Lee,Ann,03/04/2012,Free Meal Program,8/15/2025,,101\n"
        "004571,Kim,Bo,05/06/2011,504,8/15/2025,,101\n",
        encoding="utf-8",
    )
    conversion = convert_export(source, tmp_path / "out.txt", ConvertOptions(records_only=True, max_reject_share=1))
    assert [f.code for f in conversion.findings.first] == ["program_name"]
    assert conversion.rows_written == 1 and "Free Meal" not in conversion.findings.first[0].message
