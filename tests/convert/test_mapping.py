import json
from pathlib import Path

import pytest

from programs_bridge.cli.main import main
from programs_bridge.convert.headers import match_columns
from programs_bridge.convert.mapping import MappingError, load_mapping
from programs_bridge.programs_txt.layout import Field

GOOD = """
name = "synergy"
[columns]
import_student_id = "Student ID"
last_name = "Last"
first_name = "First"
birth_date = "Birthdate"
program_id = ["Program Code", "Program"]
program_start_date = "Start"
program_end_date = "End"
[constants]
site_id = "12"
[values.program_id]
"Special Education" = "144"
[dates]
order = "DMY"
open_end_dates = ["12/31/9999"]
[academic_year]
first_month = 8
[[skip]]
column = "Deleted"
values = ["Y"]
[ids]
import_student_id_width = 6
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "district.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_complete_mapping_loads_with_every_setting(tmp_path: Path) -> None:
    mapping = load_mapping(write(tmp_path, GOOD))
    assert mapping.name == "synergy"
    assert mapping.sources(Field.PROGRAM_ID) == ("Program Code", "Program")
    assert mapping.constants[Field.SITE_ID] == "12"
    assert mapping.values["program_id"]["Special Education"] == "144"
    assert mapping.dates.order == "DMY"
    assert mapping.academic_year.first_month == 8
    assert mapping.skip[0].values == ("Y",)
    assert mapping.ids.import_student_id_width == 6


def test_the_file_name_names_a_mapping_without_a_name(tmp_path: Path) -> None:
    mapping = load_mapping(write(tmp_path, GOOD.replace('name = "synergy"', "")))
    assert mapping.name == "district"


def test_a_misspelt_column_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(MappingError) as caught:
        load_mapping(write(tmp_path, GOOD.replace("last_name =", "lastname =")))
    message = str(caught.value)
    assert "columns.lastname: not a programs.txt column" in message
    assert "last_name" in message  # the list of valid names helps the clerk fix it


def test_an_unknown_section_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match=r"datez: unknown setting"):
        load_mapping(write(tmp_path, GOOD + "\n[datez]\norder = 'MDY'\n"))


def test_a_bad_value_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match=r"academic_year.first_month"):
        load_mapping(write(tmp_path, GOOD.replace("first_month = 8", "first_month = 13")))


def test_a_required_column_left_unmapped_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match=r"birth_date"):
        load_mapping(write(tmp_path, GOOD.replace('birth_date = "Birthdate"\n', "")))


def test_broken_toml_is_a_mapping_error_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match=r"not valid TOML"):
        load_mapping(write(tmp_path, "[columns\n"))


def test_header_matching_ignores_case_punctuation_and_table_prefixes(tmp_path: Path) -> None:
    mapping = load_mapping(write(tmp_path, GOOD))
    header = ["STUDENT_ID", "x.Last", "first", "BirthDate", "program", "START", "end", "DELETED"]
    match = match_columns(mapping, header)
    assert match.usable
    assert match.positions[Field.PROGRAM_ID] == 4
    assert match.skip == ((7, frozenset({"y"})),)


def test_two_columns_that_both_fit_are_reported_as_ambiguous(tmp_path: Path) -> None:
    mapping = load_mapping(write(tmp_path, GOOD))
    header = [
        "Student ID",
        "Last",
        "First",
        "Birthdate",
        "Program",
        "enrollment.Start",
        "program.Start",
        "End",
    ]
    match = match_columns(mapping, header)
    assert not match.usable
    assert match.ambiguous[Field.PROGRAM_START_DATE] == ("enrollment.Start", "program.Start")


@pytest.mark.parametrize("empty", ["[]", '""', '["Student ID", " "]'])
def test_a_column_list_that_names_no_column_is_named_in_the_error_and_exits_64(
    tmp_path: Path, empty: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD.replace('import_student_id = "Student ID"', f"import_student_id = {empty}"))
    named = r"columns\.import_student_id: (the list of export columns is empty|an export column name is empty)"
    with pytest.raises(MappingError, match=named):
        load_mapping(path)
    export = tmp_path / "export.csv"
    export.write_text("Student ID,Last,First,Birthdate,Program,Start,End\n4521,Lee,Ann,3/4/2012,144,15/8/2025,\n")
    assert main(["validate", str(export), "--mapping", str(path)]) == 64  # a configuration error, not a bad file
    assert "columns.import_student_id:" in capsys.readouterr().err


def test_seven_digits_in_a_program_column_are_described_not_quoted(tmp_path: Path) -> None:
    """The school-code exception (a CDS code may be quoted) is for the school column alone: seven digits in a
    shifted row's program column are as likely a student's ID as anything."""
    mapping = write(
        tmp_path,
        """
name = "coded"
required_values = ["site_id", "program_id"]
[columns]
import_student_id = "Perm ID"
last_name = "Surname"
first_name = "Given"
birth_date = "Born"
program_id = "Program Code"
program_start_date = "From"
site_id = "School"
[values.site_id]
"6000101" = "12"
[values.program_id]
"SPED" = "144"
""",
    )
    export = tmp_path / "pasted.csv"
    export.write_text(
        "Perm ID,Surname,Given,Born,Program Code,From,School\n"
        "5510001,Okafor,Ada,3/9/2013,SPED,8/1/2024,6000101\n"
        "5510002,Okafor,Ada,3/9/2013,9876502,8/1/2024,6000101\n"
        "5510003,Okafor,Ada,3/9/2013,SPED,8/1/2024,6009999\n",
        encoding="utf-8",
    )
    report = tmp_path / "report.json"
    args = ["convert", str(export), "--mapping", str(mapping), "-o", str(tmp_path / "p.txt"), "--report", str(report)]
    assert main([*args, "--max-reject-share", "1"]) == 1
    messages = {f["code"]: f["message"] for f in json.loads(report.read_text())["issues"]}
    assert "9876502" not in messages["unmapped_program_id"] and "a 7-digit number" in messages["unmapped_program_id"]
    assert "'6009999'" in messages["unmapped_site_id"]  # a school code, named so the table can be completed


def test_labels_in_any_script_are_matched_as_written_not_stripped_to_nothing() -> None:
    from programs_bridge.convert.mapping import parse_mapping

    header = ["学号", "姓", "名", "生日", "项目", "开始", "", "Notas"]
    columns = {"import_student_id": "学号", "last_name": "姓", "first_name": "名", "birth_date": "生日",
               "program_id": "项目", "program_start_date": "开始"}  # fmt: skip
    match = match_columns(parse_mapping({"columns": columns}), header)
    assert match.usable, match
    assert match.positions[Field.LAST_NAME] == 1 and match.positions[Field.FIRST_NAME] == 2
    # A label of letters the old ASCII-only rule erased no longer matches a blank header cell.
    odd = parse_mapping({"columns": {**columns, "eligibility_code": "Ñ"}})
    assert Field.ELIGIBILITY_CODE not in match_columns(odd, header).positions
    # A label of punctuation alone is matched as written.
    hashed = parse_mapping({"columns": {**columns, "import_student_id": "#"}})
    assert match_columns(hashed, ["#", *header[1:]]).positions[Field.IMPORT_STUDENT_ID] == 0
    # An accent is part of the label: date_withdrawn_é is not date_withdrawn.
    accented = parse_mapping({"columns": {**columns, "program_end_date": "date_withdrawn_é"}})
    assert Field.PROGRAM_END_DATE not in match_columns(accented, [*header, "date_withdrawn"]).positions


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"values": {"program_id": {"sped": "144", "SPED": "101"}}}, "'sped' and 'SPED' are one SIS value"),
        ({"name": "district\n  rows: 0 read"}, "one line of printable text"),
        ({"name": "x\x1b[2J"}, "one line of printable text"),
        ({"extends": "calpads-sprg", "header": True}, "calpads-sprg reads a file without a header row"),
        ({"constants": {"eligibility_code": "A\x00"}}, "constants.eligibility_code hold"),
        ({"values": {"program_id": {"SPED": "14\u200b4"}}}, "values.program_id.SPED hold"),
    ],
)
def test_a_mapping_that_would_mislead_is_refused(settings: dict[str, object], problem: str) -> None:
    from programs_bridge.convert.mapping import parse_mapping
    from programs_bridge.convert.profiles import PROFILES

    with pytest.raises(MappingError, match=problem):
        parse_mapping({"extends": "synergy", **settings}, profiles=PROFILES)


def test_one_sis_value_in_two_spellings_mapped_alike_is_accepted() -> None:
    from programs_bridge.convert.mapping import parse_mapping
    from programs_bridge.convert.profiles import PROFILES

    mapping = parse_mapping(
        {"extends": "synergy", "values": {"program_id": {"sped": "144", "SPED": "144"}}}, profiles=PROFILES
    )
    assert mapping.values


def test_a_header_that_does_not_fit_gets_advice_that_fits_the_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = Path(__file__).resolve().parents[2] / "samples"
    assert main(["validate", str(samples / "synergy.csv"), "--profile", "powerschool"]) == 2
    err = capsys.readouterr().err
    assert "is it a powerschool export? Leave the profile out to have the shape detected" in err
    assert "fix the mapping's column names" not in err  # a built-in profile is not the user's to fix
    piped = write(tmp_path, 'extends = "powerschool"\ndelimiter = "|"\n')
    assert main(["validate", str(samples / "powerschool.csv"), "--mapping", str(piped)]) == 2
    assert "The header reads as one column: is the delimiter right?" in capsys.readouterr().err
