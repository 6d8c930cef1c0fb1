"""Record keys that look the same are the same: a Site ID with leading zeros, characters nobody can see.

Illuminate keys a program record on student, program, start date and site, and compares the site as an
integer.  A key that differs from last night's in a way Illuminate ignores (``0101`` for ``101``) or in a
way no one can see (a byte-order mark from a concatenated export, a zero-width space from copy and paste)
makes the ledger think the real record went missing and a new one appeared.  The bridge writes such keys
the way Illuminate compares them and says where it did, without quoting the value.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from programs_bridge.convert.codetable import parse_code_table
from programs_bridge.convert.engine import Conversion, ConvertOptions, Status, convert_export

HEADER = (
    "Student_Number,State_StudentNumber,Last_Name,First_Name,Middle_Name,DOB,ProgramID,"
    "Enter_Date,Exit_Date,ExitCode,SchoolID"
)
TODAY = date(2026, 9, 1)
CODES = parse_code_table("Code Key,Description,System Key\n144,Special Education,\n101,504 Plan,504_plan\n")


def row(student: str = "004521", *, last: str = "Doe", first: str = "Sam", program: str = "144",
        start: str = "8/15/2025", site: str = "101") -> str:  # fmt: skip
    return f"{student},,{last},{first},,1/1/2012,{program},{start},,,{site}"


def run(tmp_path: Path, lines: list[str], header: str = HEADER, **options: Any) -> tuple[Conversion, list[list[str]]]:
    source = tmp_path / "export.csv"
    source.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    out = tmp_path / "programs.txt"
    conversion = convert_export(source, out, ConvertOptions(today=TODAY, max_reject_share=1.0, **options))
    written = [line.split("\t") for line in out.read_text(encoding="utf-8").splitlines()[1:]] if out.exists() else []
    return conversion, written


def findings(conversion: Conversion, code: str) -> list[dict[str, Any]]:
    return [f for f in conversion.findings.as_dicts() if f["code"] == code]


# --- Site ID, an integer key -------------------------------------------------------------------------------


def test_site_0101_and_site_101_are_one_record_written_as_101(tmp_path: Path) -> None:
    conversion, written = run(tmp_path, [row(site="101"), row(site="0101"), row("004522", site="00101")])
    assert conversion.status is Status.OK
    assert (conversion.rows_written, conversion.rows_merged) == (2, 1)  # not two records for one enrolment
    assert [line[14] for line in written] == ["101", "101"]
    said = findings(conversion, "site_id_normalised")
    assert [(f["line"], f["column"], f["severity"]) for f in said] == [
        (3, "SchoolID", "warning"),
        (4, "SchoolID", "warning"),
    ]
    assert all("0101" not in f["message"] and "00101" not in f["message"] for f in said)


def test_a_site_of_zeros_is_site_0_and_each_spelling_is_said_once(tmp_path: Path) -> None:
    lines = [row(f"00452{n}", site=site) for n, site in enumerate(["0", "000", "000", "007", "7"])]
    conversion, written = run(tmp_path, lines)
    assert [line[14] for line in written] == ["0", "0", "0", "7", "7"]
    assert [f["line"] for f in findings(conversion, "site_id_normalised")] == [3, 5]  # 000 once, 007 once


def test_a_configured_site_constant_with_zeros_is_quoted_because_it_is_not_student_data(tmp_path: Path) -> None:
    from programs_bridge.convert.mapping import parse_mapping
    from programs_bridge.convert.profiles import POWERSCHOOL

    columns = {k: v for k, v in POWERSCHOOL.columns.items() if k != "site_id"}
    mapping = parse_mapping({"columns": columns, "constants": {"site_id": "0012"}})
    conversion, written = run(tmp_path, [row(), row("004522")], mapping=mapping)
    assert [line[14] for line in written] == ["12", "12"]
    [said] = findings(conversion, "site_id_normalised")
    assert said["message"].startswith("Site ID '0012' is written as 12:")


# --- invisible characters ----------------------------------------------------------------------------------


def test_a_byte_order_mark_glued_to_a_student_id_by_concatenation_is_taken_out(tmp_path: Path) -> None:
    conversion, written = run(tmp_path, [row("004521"), "\ufeff" + row("004522")])
    assert conversion.status is Status.OK
    assert [line[0] for line in written] == ["004521", "004522"]
    [said] = findings(conversion, "invisible_character")
    assert (said["line"], said["column"], said["severity"]) == (3, "Student_Number", "warning")
    assert "U+FEFF (byte-order mark)" in said["message"]
    assert "004522" not in said["message"]


def test_zero_width_characters_inside_keys_and_codes_are_removed(tmp_path: Path) -> None:
    lines = [
        row("0045\u200b23"),  # a zero-width space inside the student ID
        row("004524", program="144\u2060"),  # a word joiner after the code
        row("004525", start="8/15/2025\u00a012:00 AM", site="1\u200d01"),  # a no-break space before the time
    ]
    conversion, written = run(tmp_path, lines, code_table=CODES)
    assert conversion.status is Status.OK
    assert [(line[0], line[6], line[9], line[14]) for line in written] == [
        ("004523", "144", "08/15/2025", "101"),
        ("004524", "144", "08/15/2025", "101"),
        ("004525", "144", "08/15/2025", "101"),
    ]
    said = [(f["line"], f["column"]) for f in findings(conversion, "invisible_character")]
    assert said == [(2, "Student_Number"), (3, "ProgramID"), (4, "Enter_Date"), (4, "SchoolID")]


def test_a_name_loses_invisible_characters_at_its_ends_but_keeps_a_joiner_inside(tmp_path: Path) -> None:
    conversion, written = run(tmp_path, [row(last="\u200bO'Brien\ufeff", first="Mehr\u200cnaz")])
    assert (written[0][2], written[0][3]) == ("O'Brien", "Mehr\u200cnaz")  # ZWNJ is part of a Persian name
    assert [(f["line"], f["column"]) for f in findings(conversion, "invisible_character")] == [(2, "Last_Name")]


def test_a_deleted_flag_with_an_invisible_character_still_skips_the_row(tmp_path: Path) -> None:
    header = "PID,CID,LN,FN,MN,BD,CD,ESD,EED,PSD,PED,SCL,DEL"
    lines = ["4521,,Doe,Sam,,1/1/2012,144,,,8/15/2025,,101,", "4522,,Doe,Ann,,1/1/2012,144,,,8/15/2025,,101,Y\u200b"]
    conversion, written = run(tmp_path, lines, header=header)
    assert (conversion.rows_written, conversion.rows_skipped) == (1, 1)
    assert [line[0] for line in written] == ["4521"]


def test_control_characters_never_reach_programs_txt_even_in_an_all_ascii_row(tmp_path: Path) -> None:
    # An escape sequence pasted into a name, a DEL and a vertical tab from an old terminal, a C1 NEXT LINE
    # and a LINE SEPARATOR inside a name: none is part of anyone's spelling; the last two break a line for
    # any reader that honours Unicode line boundaries, so inside a name they become a space.
    lines = [
        row("004521", last="Do\x1b[1me", first="Sam\x7f"),
        row("004522", last="Mary\x85Ann", first="Jo\u2028Ann"),
    ]
    conversion, written = run(tmp_path, lines)
    assert conversion.status is Status.OK
    assert [(line[0], line[2], line[3], line[14]) for line in written] == [
        ("004521", "Do[1me", "Sam", "101"),
        ("004522", "Mary Ann", "Jo Ann", "101"),
    ]
    text = (tmp_path / "programs.txt").read_text(encoding="utf-8")
    assert not any(c in text for c in "\x1b\x7f\x85\u2028")
    said = [(f["line"], f["column"], f["severity"]) for f in findings(conversion, "invisible_character")]
    assert said == [
        (2, "Last_Name", "warning"),
        (2, "First_Name", "warning"),
        (3, "Last_Name", "warning"),
        (3, "First_Name", "warning"),
    ]
    messages = " ".join(f["message"] for f in findings(conversion, "invisible_character"))
    assert "U+001B (a control character)" in messages and "U+2028 LINE SEPARATOR a plain space" in messages
    assert "made U+0085 (a control character) a plain space" in messages  # NEXT LINE parted two words
    assert "004522" not in messages and "Mary" not in messages


def test_a_line_break_or_control_code_inside_a_key_refuses_the_row_instead_of_making_another_key(
    tmp_path: Path,
) -> None:
    lines = [
        row("004521"),
        row("196865\x0b654321"),  # FileMaker's return inside the cell: two IDs, not 196865654321
        '"092466\n654321",,Doe,Sam,,1/1/2012,144,8/15/2025,,,101',  # a quoted line feed
        row("004524", program="144\x0b101"),
        row("004525", site="1\x0101"),
    ]
    conversion, written = run(tmp_path, lines)
    assert [line[0] for line in written] == ["004521"]
    said = findings(conversion, "key_broken")
    assert [(f["line"], f["column"]) for f in said] == [
        (3, "Student_Number"), (4, "Student_Number"), (6, "ProgramID"), (7, "SchoolID")
    ]  # fmt: skip
    assert all("196865" not in f["message"] and "654321" not in f["message"] for f in said)


def test_a_site_id_longer_than_illuminates_limit_is_refused_even_when_it_is_all_digits(tmp_path: Path) -> None:
    conversion, written = run(tmp_path, [row("004521"), row("004522", site="1" * 31)])
    assert [line[0] for line in written] == ["004521"]
    [said] = findings(conversion, "too_long")
    assert (said["line"], said["column"]) == (3, "SchoolID")
    assert said["message"] == "Site ID is longer than Illuminate's limit of 30 characters"


def test_a_start_date_before_the_birth_date_is_refused_so_a_birth_date_never_enters_a_key(tmp_path: Path) -> None:
    swapped = "004522,,Doe,Ann,,8/15/2025,144,1/1/2012,,,101"  # DOB and Enter_Date swapped by the export
    conversion, written = run(tmp_path, [row("004521"), swapped])
    assert [line[0] for line in written] == ["004521"]
    [said] = findings(conversion, "start_before_birth")
    assert (said["line"], said["column"], said["severity"]) == (3, "Enter_Date", "error")
    assert "2012" not in said["message"] and "2025" not in said["message"]


def test_an_import_student_id_of_fullwidth_digits_or_look_alike_letters_is_refused(tmp_path: Path) -> None:
    # 004522 in fullwidth digits; an ID with a Cyrillic VE that looks like a Latin B.
    lines = [row("004521"), row("\uff10\uff10\uff14\uff15\uff12\uff12"), row("A\u0412123")]
    conversion, written = run(tmp_path, lines)
    assert [line[0] for line in written] == ["004521"]
    said = findings(conversion, "id_not_ascii")
    assert [(f["line"], f["column"], f["severity"]) for f in said] == [
        (3, "Student_Number", "error"),
        (4, "Student_Number", "error"),
    ]
    assert "\uff10" not in said[0]["message"]
    # A Program ID is a key too: fullwidth 101, and a Cyrillic DZE before 504.  Without a code table it may
    # be the district's own code key, so it is sent with a warning; with one, it must be found there.
    lines = [row("004521"), row("004522", program="\uff11\uff10\uff11"), row("004523", program="\u0405504")]
    conversion, written = run(tmp_path, lines)
    assert len(written) == 3
    shown = [(f["line"], f["column"], f["severity"]) for f in findings(conversion, "id_not_ascii")]
    assert shown == [(3, "ProgramID", "warning"), (4, "ProgramID", "warning")]
    conversion, written = run(tmp_path, lines, code_table=CODES)
    assert [line[0] for line in written] == ["004521"] and len(findings(conversion, "unknown_program")) == 2


def test_a_date_outside_1900_to_2099_never_enters_a_key_and_9999_is_open_only_when_the_mapping_says(
    tmp_path: Path,
) -> None:
    from programs_bridge.convert.mapping import parse_mapping
    from programs_bridge.convert.profiles import PROFILES

    lines = [
        row("004521"),
        row("004522", start="8/15/0025"),  # the year typed short: no school year 25-26 AD
        row("004523", start="12/31/9999"),
        "004524,,Doe,Sam,,1/1/2012,144,8/15/2025,9999-12-31,,101",  # "no end yet", spelled as a date
    ]
    conversion, written = run(tmp_path, lines)
    # An end date is no part of the key: 9999 there is how many systems, and past uploads, say "no end yet".
    assert [(line[0], line[10]) for line in written] == [("004521", ""), ("004524", "12/31/9999")]
    said = findings(conversion, "date_out_of_range")
    assert [(f["line"], f["column"]) for f in said] == [(3, "Enter_Date"), (4, "Enter_Date")]
    assert all("before 1900 or after 2099" in f["message"] for f in said)
    assert all("0025" not in f["message"] for f in said)

    open_end = parse_mapping({"extends": "powerschool", "dates": {"open_end_dates": ["12/31/9999"]}}, profiles=PROFILES)
    conversion, written = run(tmp_path, lines[3:], mapping=open_end)
    assert conversion.status is Status.OK and written[0][10] == ""  # open, in any spelling of the sentinel


def test_a_site_the_mapping_itself_gives_wrongly_is_to_be_corrected_in_the_mapping_not_the_sis(tmp_path: Path) -> None:
    from programs_bridge.convert.mapping import parse_mapping
    from programs_bridge.convert.profiles import PROFILES

    mapping = parse_mapping({"extends": "powerschool", "values": {"site_id": {"101": "LHS"}}}, profiles=PROFILES)
    conversion, _ = run(tmp_path, [row()], mapping=mapping)
    [said] = findings(conversion, "site_id_not_integer")
    assert said["message"].startswith("Site ID 'LHS' is not a whole number")
    assert said["message"].endswith("correct that value in the mapping")
    conversion, _ = run(tmp_path, [row(site="12A")])
    [said] = findings(conversion, "site_id_not_integer")
    assert "add a values.site_id entry to the mapping or fix the export" in said["message"]


def test_a_birth_date_already_refused_is_not_compared_with_the_start_date(tmp_path: Path) -> None:
    conversion, _ = run(tmp_path, ["004521,,Doe,Sam,,1/2/2030,144,8/15/2025,,,101"])  # born in the future
    assert [f["code"] for f in conversion.findings.as_dicts() if f["severity"] == "error"] == ["birth_date_future"]
