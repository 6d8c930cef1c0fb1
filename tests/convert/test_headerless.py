"""Files without a header row, columns named by position, and the caret delimiter."""

from datetime import date
from pathlib import Path

import pytest

from programs_bridge.cli.main import main
from programs_bridge.convert.engine import Conversion, ConvertOptions, Status, convert_export
from programs_bridge.convert.mapping import Mapping, MappingError, parse_mapping
from programs_bridge.convert.profiles import PROFILES, detect_profile

TODAY = date(2026, 9, 1)
#: A fixed-order report-writer extract: id, last, first, birth date, program, start, end, school.
ROWS = [
    "004521|O'Brien|Zoë|3/4/2012|144|8/15/2025||101",
    "004522|Nguyễn|Thảo|1/2/2013|181|9/1/2025|6/1/2026|102",
]
POSITIONAL = {
    "header": False,
    "columns": {
        "import_student_id": 1,
        "last_name": 2,
        "first_name": 3,
        "birth_date": 4,
        "program_id": 5,
        "program_start_date": 6,
        "program_end_date": 7,
        "site_id": 8,
    },
}


def convert(tmp_path: Path, lines: list[str], mapping: Mapping | None) -> tuple[Conversion, list[str]]:
    source = tmp_path / "extract.txt"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    destination = tmp_path / "programs.txt"
    conversion = convert_export(source, destination, ConvertOptions(mapping=mapping, today=TODAY, max_reject_share=1.0))
    written = destination.read_text(encoding="utf-8").splitlines()[1:] if destination.exists() else []
    return conversion, written


def test_a_headerless_file_is_read_by_position_from_its_first_line(tmp_path: Path) -> None:
    conversion, written = convert(tmp_path, ROWS, parse_mapping(POSITIONAL))
    assert conversion.status is Status.OK
    assert (conversion.rows_read, conversion.rows_written, conversion.lines_read) == (2, 2, 2)
    assert written[0].split("\t")[:7] == ["004521", "", "O'Brien", "Zoë", "", "03/04/2012", "144"]
    assert written[1].split("\t")[10] == "06/01/2026" and written[1].endswith("\t102")


def test_findings_in_a_headerless_file_name_the_physical_line_and_the_field_by_position(tmp_path: Path) -> None:
    damaged = ["004523|Lee|Ana|1/2/2013|144|TBD||101", *ROWS]
    conversion, written = convert(tmp_path, damaged, parse_mapping({**POSITIONAL}))
    [finding] = conversion.findings.as_dicts()
    assert (finding["line"], finding["column"], finding["code"]) == (1, "field 6", "bad_date")
    assert len(written) == 2


def test_field_names_name_a_headerless_files_columns_in_mappings_and_messages(tmp_path: Path) -> None:
    names = ["ID", "Last", "First", "Born", "Program", "From", "To", "School"]
    mapping = parse_mapping(
        {
            "header": False,
            "field_names": names,
            "columns": {**POSITIONAL["columns"], "import_student_id": "ID", "site_id": "School"},  # type: ignore[dict-item]
        }
    )
    conversion, written = convert(tmp_path, ["004523|Lee|Ana|1/2/2013|144|TBD||101", *ROWS], mapping)
    assert [f["column"] for f in conversion.findings.as_dicts()] == ["From"]
    assert written[0].startswith("004521\t")


def test_a_row_of_another_width_is_a_row_error_that_says_what_the_layout_expects(tmp_path: Path) -> None:
    conversion, written = convert(tmp_path, [*ROWS, "004524|Kim|Jo|1/2/2013|144"], parse_mapping(POSITIONAL))
    [finding] = conversion.findings.as_dicts()
    assert (finding["line"], finding["code"]) == (3, "field_count")
    assert "5 fields but the file's first row has 8" in finding["message"]
    assert len(written) == 2


def test_positions_also_work_in_a_file_with_a_header(tmp_path: Path) -> None:
    mapping = parse_mapping({"columns": POSITIONAL["columns"]})
    header = "Perm|Surname|Given|DOB|Code|From|To|Site"
    conversion, written = convert(tmp_path, [header, *ROWS], mapping)
    assert conversion.status is Status.OK
    assert (conversion.rows_read, len(written)) == (2, 2)  # the header is not read as a row
    assert written[0].startswith("004521\t\tO'Brien\t")


def test_a_headerless_file_is_never_detected_so_its_first_row_is_not_taken_for_a_header(tmp_path: Path) -> None:
    assert all(detection is None for detection in [detect_profile(ROWS[0].split("|"))])
    conversion, written = convert(tmp_path, ROWS, None)
    assert conversion.status is Status.REJECTED and written == []
    assert "calpads-sprg" not in conversion.reason.split("closest")[1]


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({**POSITIONAL, "columns": {**POSITIONAL["columns"], "site_id": "School"}}, "not found: School"),  # type: ignore[dict-item]
        ({**POSITIONAL, "field_counts": [7]}, "position(s) 8 lie past the 7 fields of a row"),
        ({"field_names": ["A"], "columns": POSITIONAL["columns"]}, "add header = false"),
        (
            {**POSITIONAL, "columns": {**POSITIONAL["columns"], "site_id": 0}},
            "columns.site_id: Input should be greater",
        ),  # type: ignore[dict-item]
        (
            {**POSITIONAL, "columns": {**POSITIONAL["columns"], "site_id": True}},
            "columns.site_id: Input should be a valid",
        ),  # type: ignore[dict-item]
        ({**POSITIONAL, "field_names": list("abcdefga")}, "field_names name each field once, in order: a appear"),
        ({**POSITIONAL, "field_names": [*"abcdefg", " "]}, "field_names name each field once, in order: one is blank"),
        ({**POSITIONAL, "records": {"column": 1, "values": []}}, "records.values: name the record kinds"),
        ({**POSITIONAL, "records": {"column": 1, "values": ["SPRG", ""]}}, "records.values: name the record kinds"),
    ],
)
def test_a_positional_mapping_that_cannot_work_is_refused_with_its_reason(
    settings: dict[str, object], problem: str
) -> None:
    with pytest.raises(MappingError, match="not a valid mapping") as caught:
        parse_mapping(settings)
    assert problem in str(caught.value)
    assert "by-position" not in str(caught.value) and "by-name" not in str(caught.value)


def test_a_caret_delimited_file_is_sniffed_and_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "export.txt"
    lines = ["Student_Number^Last_Name^First_Name^DOB^ProgramID^Enter_Date^Exit_Date^SchoolID"]
    source.write_text("\n".join([*lines, *(row.replace("|", "^") for row in ROWS)]) + "\n", encoding="utf-8")
    assert main(["convert", str(source), "-o", str(tmp_path / "programs.txt"), "--as-of", "2026-09-01"]) == 0
    assert "caret-delimited" in capsys.readouterr().err
    assert (tmp_path / "programs.txt").read_text(encoding="utf-8").count("\n") == 3


def test_the_caret_can_be_named_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "export.txt"
    header = "Student_Number^Last_Name^First_Name^DOB^ProgramID^Enter_Date^Exit_Date^SchoolID"
    # One row, whose pipes would out-sniff the caret: naming the delimiter settles it.
    source.write_text(f"{header}\n004521^O'Brien|Jr^Zoë^3/4/2012^144^8/15/2025^^101\n", encoding="utf-8")
    out = tmp_path / "programs.txt"
    assert main(["convert", str(source), "-o", str(out), "--delimiter", "caret", "--as-of", "2026-09-01"]) == 0
    assert "O'Brien|Jr" in out.read_text(encoding="utf-8")


def test_a_profile_that_needs_the_districts_codes_refuses_the_file_without_them(tmp_path: Path) -> None:
    sprg = "SPRG^A^^1964733^6003922^2025-2026^2963394839^206371^Ana^Lee^20160531^F^181^2^20251024^" + "^" * 10
    conversion, written = convert(tmp_path, [sprg], PROFILES["calpads-sprg"])
    assert conversion.status is Status.REJECTED and written == []
    assert "needs a [values.site_id] table" in conversion.reason
    assert 'extends = "calpads-sprg"' in conversion.reason
