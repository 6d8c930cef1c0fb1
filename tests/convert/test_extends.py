"""``extends = "<profile>"``: a district's mapping starts from a built-in profile and adds or overrides its tables,
in a --mapping file and in a feed configuration's [mapping] table alike."""

from datetime import date
from pathlib import Path

import pytest

from programs_bridge.convert.engine import ConvertOptions, Status, convert_export
from programs_bridge.convert.mapping import MappingError, load_mapping, parse_mapping
from programs_bridge.convert.profiles import PROFILES, SPRG_FIELDS
from programs_bridge.pipeline.config import ConfigError, parse_feed_config
from programs_bridge.programs_txt.layout import Field
from programs_bridge.programs_txt.render import OutputFormat

SFTP = """
[sftp]
host = "sftp.illuminate.example"
secret = "programs-bridge/district/sftp"
known_hosts = ["sftp.illuminate.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample"]
"""


def sprg(school: str, program: str, student: str = "006371") -> str:
    record = dict.fromkeys(SPRG_FIELDS, "")
    record.update(
        RecordTypeCode="SPRG", TransactionTypeCode="A", SchoolOfAttendance=school, AcademicYearID="2025-2026",
        SSID="2963394839", LocalStudentID=student, StudentLegalFirstName="Ana", StudentLegalLastName="Lee",
        StudentBirthDate="20160531", EducationProgramCode=program, EducationProgramMembershipStartDate="20250815",
    )  # fmt: skip
    return "^".join(record.values())


def test_a_mapping_file_keeps_the_profiles_layout_and_adds_its_own_tables(tmp_path: Path) -> None:
    codes = tmp_path / "codes.toml"
    codes.write_text('extends = "calpads-sprg"\n[values.site_id]\n"6000101" = "12"\n', encoding="utf-8")
    mapping = load_mapping(codes, PROFILES)
    base = PROFILES["calpads-sprg"]
    assert (mapping.name, mapping.extends) == ("codes", "calpads-sprg")
    assert (mapping.header, mapping.delimiter, mapping.field_counts) == (False, "^", base.field_counts)
    assert mapping.columns == base.columns and mapping.skip == base.skip and mapping.records == base.records
    assert dict(mapping.values)["site_id"] == {"6000101": "12"}


def test_a_value_table_merges_entry_by_entry_and_an_entry_given_again_wins() -> None:
    base = parse_mapping(
        {
            "columns": {
                "import_student_id": "ID",
                "last_name": "Last",
                "first_name": "First",
                "birth_date": "DOB",
                "program_id": "Program",
                "program_start_date": "Start",
            },
            "values": {"program_id": {"A": "1", "B": "2"}},
        }
    )
    profiles = {"house": base.model_copy(update={"name": "house"})}
    mapping = parse_mapping({"extends": "house", "values": {"program_id": {"B": "20", "C": "3"}}}, "m", profiles)
    assert dict(mapping.values)["program_id"] == {"A": "1", "B": "20", "C": "3"}


def test_a_column_given_again_replaces_the_profiles_and_a_constant_replaces_a_column() -> None:
    mapping = parse_mapping(
        {"extends": "powerschool", "columns": {"import_student_id": "Students.ID"}, "constants": {"site_id": "9"}},
        "m",
        PROFILES,
    )
    assert mapping.sources(Field.IMPORT_STUDENT_ID) == ("Students.ID",)
    assert Field.SITE_ID not in mapping.columns and mapping.constants[Field.SITE_ID] == "9"
    assert mapping.sources(Field.LAST_NAME) == PROFILES["powerschool"].sources(Field.LAST_NAME)


@pytest.mark.parametrize("order", ["columns first", "constants first"])
def test_a_field_the_file_itself_gives_both_ways_is_refused_as_without_extends(order: str) -> None:
    tables = {"columns": {"site_id": "SchoolID"}, "constants": {"site_id": "12"}}
    if order == "constants first":
        tables = dict(reversed(tables.items()))
    with pytest.raises(MappingError, match="site_id is given both as a column and as a constant; keep one"):
        parse_mapping({"extends": "powerschool", **tables}, "m", PROFILES)


def test_skip_rules_add_to_the_profiles_rules() -> None:
    extra = {"column": "PGM.XX", "values": ["Y"]}
    mapping = parse_mapping({"extends": "aeries", "skip": [extra]}, "m", PROFILES)
    assert len(mapping.skip) == len(PROFILES["aeries"].skip) + 1
    assert mapping.skip[: len(PROFILES["aeries"].skip)] == PROFILES["aeries"].skip


def test_an_unknown_profile_is_named_with_the_ones_there_are(tmp_path: Path) -> None:
    codes = tmp_path / "codes.toml"
    codes.write_text('extends = "calpads"\n', encoding="utf-8")
    with pytest.raises(MappingError) as caught:
        load_mapping(codes, PROFILES)
    message = str(caught.value)
    assert "extends names no built-in profile" in message and "calpads-sprg" in message and "synergy" in message


def test_an_override_that_breaks_the_profile_is_reported_against_the_file() -> None:
    with pytest.raises(MappingError) as caught:
        parse_mapping({"extends": "calpads-sprg", "columns": {"site_id": 40}}, "codes.toml", PROFILES)
    assert str(caught.value) == ("codes.toml is not a valid mapping:\nposition(s) 40 lie past the 28 fields of a row")


def test_a_feed_configs_mapping_extends_a_profile_and_converts_a_headerless_file(tmp_path: Path) -> None:
    text = (
        '[mapping]\nextends = "calpads-sprg"\n[mapping.values.site_id]\n"6000101" = "12"\n'
        '[mapping.values.program_id]\n"101" = "504"\n' + SFTP
    )
    config = parse_feed_config(text, "config/district.toml")
    options = config.convert_options(None, date(2026, 9, 1))
    assert options.mapping is not None and options.mapping.extends == "calpads-sprg"
    source, out = tmp_path / "sprg.txt", tmp_path / "programs.txt"
    source.write_text(sprg("6000101", "101") + "\n" + sprg("6000101", "181", "006372") + "\n", encoding="utf-8")
    conversion = convert_export(source, out, options)
    assert conversion.status is Status.OK and conversion.rows_written == 2
    rows = [line.split("\t") for line in out.read_text(encoding="utf-8").splitlines()[1:]]
    assert [(row[0], row[6], row[-1]) for row in rows] == [("006371", "504", "12"), ("006372", "181", "12")]


def test_a_feed_naming_the_profile_without_its_tables_is_rejected_before_any_row(tmp_path: Path) -> None:
    config = parse_feed_config('profile = "calpads-sprg"\n' + SFTP, "config/district.toml")
    source = tmp_path / "sprg.txt"
    source.write_text(sprg("6000101", "101") + "\n", encoding="utf-8")
    options = config.convert_options(None, date(2026, 9, 1))
    conversion = convert_export(source, tmp_path / "programs.txt", options)
    assert conversion.status is Status.REJECTED and conversion.rows_written == 0
    assert "[values.site_id]" in conversion.reason and 'extends = "calpads-sprg"' in conversion.reason
    assert not (tmp_path / "programs.txt").exists()


def test_a_feed_configs_mapping_extending_an_unknown_profile_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="extends names no built-in profile"):
        parse_feed_config('[mapping]\nextends = "sprg"\n' + SFTP, "config/district.toml")


def test_the_profiles_own_output_options_stay_the_callers(tmp_path: Path) -> None:
    """Extending changes what is read, not how programs.txt is written."""
    options = ConvertOptions(
        mapping=parse_mapping({"extends": "calpads-sprg", "values": {"site_id": {"6000101": "12"}}}, "m", PROFILES),
        today=date(2026, 9, 1),
        output=OutputFormat(newline="\r\n"),
    )
    source, out = tmp_path / "sprg.txt", tmp_path / "programs.txt"
    source.write_text(sprg("6000101", "181") + "\n", encoding="utf-8")
    assert convert_export(source, out, options).status is Status.OK
    assert out.read_bytes().count(b"\r\n") == 2
