"""The synthetic export generator: exact shapes, realistic content, honest damage, reproducible samples."""

from __future__ import annotations

import csv
import re
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import pytest

from programs_bridge.local import synthetic
from programs_bridge.local.synthetic import REFERENCE_DATE, DamageKind, generate, main, records

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "samples"

HEADERS = {
    "powerschool": "Students.Student_Number,Students.State_StudentNumber,Students.Last_Name,"
    "Students.First_Name,Students.Middle_Name,Students.DOB,SPEnrollments.ProgramID,GEN.Name,"
    "SPEnrollments.Enter_Date,SPEnrollments.Exit_Date,SPEnrollments.ExitCode,SPEnrollments.GradeLevel,"
    "SPEnrollments.SchoolID",
    "aeries": "PGM.PID,STU.CID,STU.LN,STU.FN,STU.MN,STU.BD,PGM.CD,PGM.ESD,PGM.EED,PGM.PSD,PGM.PED,PGM.SCL,PGM.DEL",
    "infinite-campus": "student.studentNumber\tstudent.stateID\tstudent.lastName\tstudent.firstName\t"
    "student.middleName\tstudent.birthdate\tspProgram.code\tspProgram.name\tspProgram.startDate\t"
    "spProgram.endDate\tschool.schoolNumber",
    "illuminate": "01 Import Student ID\t02 State Student ID\t03 Student Last Name\t04 Student First Name\t"
    "05 Student Middle Name\t06 Birth Date\t07 Program ID\t08 Eligibility Start Date\t"
    "09 Eligibility End Date\t10 Program Start Date\t11 Program End Date\t12 Academic Year\t"
    "13 Program Eligibility Code\t14 Program Exit Code\t15 Site ID",
}
DELIMITERS = {"powerschool": ",", "aeries": ",", "infinite-campus": "\t", "illuminate": "\t"}
CALPADS_CODES = {
    "101", "108", "113", "122", "127", "135", "144", "162", "174", "181", "182", "190", "191", "192",
    *(str(code) for code in range(300, 308)),
}  # fmt: skip
ELIGIBILITY_DATED = {"127", "135", "181", "182", "191"}
DATE_FORMATS = {
    "powerschool": "%m/%d/%Y",
    "aeries": "%Y-%m-%dT%H:%M:%S",
    "infinite-campus": "%m/%d/%Y",
    "illuminate": "%m/%d/%Y",
}


def read_rows(path: Path, delimiter: str, encoding: str = "utf-8") -> list[list[str]]:
    with path.open(encoding=encoding, newline="") as handle:
        return list(csv.reader(handle, delimiter=delimiter))


def parse(profile: str, text: str) -> date:
    return datetime.strptime(text, DATE_FORMATS[profile]).date()


def view(profile: str, row: list[str]) -> dict[str, str]:
    """The fields this test checks, by meaning, whichever export shape the row is in."""
    if profile in ("powerschool", "infinite-campus"):
        start, end = row[8], row[9]
        site = row[12] if profile == "powerschool" else row[10]
    elif profile == "aeries":
        start, end = (row[9], row[10]) if row[9] else (row[7], row[8])
        site = row[11]
    else:
        start, end = (row[9], row[10]) if row[9] else (row[7], row[8])
        site = row[14]
    if profile == "powerschool" and end == "1/1/1900":
        end = ""
    return {
        "id": row[0],
        "state_id": row[1],
        "last": row[2],
        "birth": row[5],
        "code": row[6],
        "start": start,
        "end": end,
        "site": site,
    }


def key(profile: str, row: list[str]) -> tuple[str, str, str, str]:
    v = view(profile, row)
    return (v["id"], v["code"], v["start"], v["site"])


@pytest.mark.parametrize("profile", sorted(HEADERS))
def test_header_is_exactly_the_profile_shape(tmp_path: Path, profile: str) -> None:
    out = tmp_path / "export"
    generate(out, profile, 5)
    assert out.read_text(encoding="utf-8").splitlines()[0] == HEADERS[profile]


@pytest.mark.parametrize("profile", sorted(HEADERS))
def test_a_seed_gives_the_same_bytes_and_another_seed_other_bytes(tmp_path: Path, profile: str) -> None:
    first, again, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(first, profile, 300, seed=5, damage=0.1)
    generate(again, profile, 300, seed=5, damage=0.1)
    generate(other, profile, 300, seed=6, damage=0.1)
    assert first.read_bytes() == again.read_bytes()
    assert first.read_bytes() != other.read_bytes()


@pytest.mark.parametrize("profile", sorted(HEADERS))
def test_clean_rows_look_like_a_real_district(tmp_path: Path, profile: str) -> None:
    out = tmp_path / "export"
    generate(out, profile, 3000, seed=11)
    header, *rows = read_rows(out, DELIMITERS[profile])
    assert len(rows) == 3000
    assert all(len(row) == len(header) for row in rows)
    views = [view(profile, row) for row in rows]

    ids = [v["id"] for v in views]
    assert all(i.isdigit() for i in ids)
    leading_zero_share = sum(i.startswith("0") for i in set(ids)) / len(set(ids))
    assert 0.2 < leading_zero_share < 0.6
    assert all(re.fullmatch(r"[1-9]\d{9}", v["state_id"]) for v in views)
    assert {v["code"] for v in views} == CALPADS_CODES
    assert {int(v["site"]) for v in views} <= set(range(101, 131))

    ages = {(REFERENCE_DATE - parse(profile, v["birth"])).days // 365 for v in views}
    assert min(ages) == 4
    assert max(ages) == 19
    for v in views:
        start = parse(profile, v["start"])
        assert date(2022, 8, 1) <= start < REFERENCE_DATE
        assert not v["end"] or parse(profile, v["end"]) > start
    open_share = sum(not v["end"] for v in views) / len(views)
    assert 0.4 < open_share < 0.9

    programs_per_student = Counter(ids)
    assert max(programs_per_student.values()) >= 3
    assert len({key(profile, row) for row in rows}) == len(rows), "a clean file has no duplicate keys"

    names = {v["last"] for v in views}
    assert {"O'Brien", "Nguyễn", "García-López", "D\u2019Angelo", "King, Jr."} <= names


def test_participation_and_eligibility_dates_go_in_their_own_aeries_columns(tmp_path: Path) -> None:
    out = tmp_path / "aeries.csv"
    generate(out, "aeries", 2000, seed=4)
    _, *rows = read_rows(out, ",")
    for row in rows:
        esd, psd = row[7], row[9]
        if row[6] in ELIGIBILITY_DATED:
            assert esd and not psd and not row[10]
        else:
            assert psd and not row[8]
    assert any(row[6] not in ELIGIBILITY_DATED and row[7] for row in rows), "ESD too where natural"
    flags = Counter(row[12] for row in rows)
    assert set(flags) == {"", "Y"}
    assert 0 < flags["Y"] < 0.1 * len(rows)


def test_powerschool_open_enrollments_use_both_empty_and_the_1900_sentinel(tmp_path: Path) -> None:
    out = tmp_path / "ps.csv"
    generate(out, "powerschool", 1000)
    exits = Counter(row[9] for row in read_rows(out, ",")[1:])
    assert exits[""] > 0
    assert exits["1/1/1900"] > 0


def test_illuminate_academic_year_follows_the_start_date(tmp_path: Path) -> None:
    out = tmp_path / "programs.txt"
    generate(out, "illuminate", 500, delimiter="|")
    _, *rows = read_rows(out, "|")
    for row in rows:
        start = parse("illuminate", row[9] or row[7])
        first = start.year if start.month >= 7 else start.year - 1
        assert row[11] == f"{first}-{first + 1}"


def test_the_damage_share_is_roughly_respected_and_every_kind_occurs() -> None:
    damaged = [r.damage for r in records("powerschool", 20_000, seed=3, damage=0.1) if r.damage]
    assert 1_700 < len(damaged) < 2_300
    assert {d.kind for d in damaged} == set(DamageKind)
    assert not list(filter(None, (r.damage for r in records("powerschool", 2_000, seed=3))))


@pytest.mark.parametrize("profile", sorted(HEADERS))
def test_damage_leaves_the_other_rows_as_they_were(profile: str) -> None:
    clean = list(records(profile, 2_000, seed=9))
    damaged = list(records(profile, 2_000, seed=9, damage=0.3))
    assert any(r.damage for r in damaged)
    for before, after in zip(clean, damaged, strict=True):
        if after.damage is None:
            assert after.fields == before.fields
        else:
            assert after.fields != before.fields
            assert after.damage.line == after.line


def test_each_damage_does_what_its_record_says() -> None:
    profile = "powerschool"
    width = len(HEADERS[profile].split(","))
    clean = list(records(profile, 5_000, seed=21))
    damaged = list(records(profile, 5_000, seed=21, damage=0.2))
    earlier: dict[int, list[str]] = {}
    seen = set()
    for before, after in zip(clean, damaged, strict=True):
        if after.damage is None:
            earlier[after.line] = after.fields
            continue
        kind, row, was = after.damage.kind, after.fields, before.fields
        seen.add(kind)
        if kind is DamageKind.RAGGED:
            assert len(row) == width - 1
            continue
        assert len(row) == width
        if kind is DamageKind.STRIPPED_ZEROS:
            assert was[0].startswith("0")
            assert row[0] == was[0].lstrip("0")
        elif kind is DamageKind.SCIENTIFIC_ID:
            assert re.fullmatch(r"\d(\.\d{1,5})?E\+09", row[1])
            assert float(row[1]) == pytest.approx(int(was[1]), rel=1e-5)
        elif kind is DamageKind.SERIAL_DATE:
            assert int(row[8]) == (parse(profile, was[8]) - date(1899, 12, 30)).days
        elif kind is DamageKind.END_BEFORE_START:
            assert parse(profile, row[9]) < parse(profile, row[8])
        elif kind is DamageKind.FUTURE_BIRTH:
            assert parse(profile, row[5]) > REFERENCE_DATE
        elif kind is DamageKind.MISSING_LAST_NAME:
            assert row[2] == ""
        elif kind is DamageKind.INVALID_DATE:
            with pytest.raises(ValueError):
                parse(profile, row[8])
        else:
            cited = re.search(r"line (\d+)", after.damage.detail)
            assert cited is not None
            source = int(cited.group(1))
            assert source < after.line
            if kind is DamageKind.DUPLICATE:
                assert row == earlier[source]
            else:
                assert key(profile, row) == key(profile, earlier[source])
                assert row != earlier[source]
    assert seen == set(DamageKind)


def test_damage_reports_name_no_student_data() -> None:
    clean = records("powerschool", 3_000, seed=2)
    for before, after in zip(clean, records("powerschool", 3_000, seed=2, damage=0.5), strict=True):
        if after.damage is not None:
            # Column names, line numbers and invalid date texts only: never an ID, a name or a birth date.
            personal = [value for value in before.fields[:6] if len(value) >= 3]
            assert not [value for value in personal if value in after.damage.detail]


def test_a_planned_damage_that_cannot_apply_is_refused() -> None:
    rows = list(records("powerschool", 50, seed=2))
    no_zero = next(i for i, r in enumerate(rows) if not r.fields[0].startswith("0"))
    with pytest.raises(ValueError, match="cannot apply"):
        list(records("powerschool", 50, seed=2, plan={no_zero: DamageKind.STRIPPED_ZEROS}))


def test_samples_flag_regenerates_the_committed_samples_byte_for_byte(tmp_path: Path) -> None:
    assert main(["--samples", str(tmp_path)]) == 0
    generated = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    committed = {p.name: p.read_bytes() for p in SAMPLES_DIR.iterdir()}
    assert sorted(generated) == sorted(committed)
    for name, content in generated.items():
        assert content == committed[name], f"samples/{name} drifted from the generator: run `make samples`"


def test_the_damaged_excel_sample_is_bom_crlf_with_trailing_blank_lines() -> None:
    raw = (SAMPLES_DIR / "damaged-excel.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfStudents.Student_Number,")
    assert raw.endswith(b"\r\n\r\n\r\n")
    assert raw.count(b"\n") == raw.count(b"\r\n")
    text = raw.decode("utf-8-sig")
    assert "García-López" in text
    assert re.search(r",\d\.\d+E\+09,", text), "a scientific-notation state ID"
    assert re.search(r",4\d{4},", text), "an Excel serial date"


def test_the_cp1252_sample_is_windows_1252_with_crlf_and_a_smart_apostrophe() -> None:
    raw = (SAMPLES_DIR / "damaged-cp1252.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert b"D\x92Angelo" in raw
    assert raw.count(b"\n") == raw.count(b"\r\n")
    assert not raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("cp1252")
    assert "José" in text
    assert "Siobhán" in text


@pytest.mark.parametrize(
    ("name", "delimiter"),
    [("powerschool.csv", ","), ("aeries.csv", ","), ("infinite-campus.tsv", "\t"), ("illuminate.txt", "|")],
)
def test_the_clean_samples_are_plain_utf8_lf_and_small(name: str, delimiter: str) -> None:
    raw = (SAMPLES_DIR / name).read_bytes()
    assert b"\r" not in raw
    assert not raw.startswith(b"\xef\xbb\xbf")
    header, *rows = read_rows(SAMPLES_DIR / name, delimiter)
    assert 30 <= len(rows) <= 60
    assert all(len(row) == len(header) for row in rows)


def test_the_readme_lists_exactly_the_damaged_lines_of_each_damaged_sample() -> None:
    readme = (SAMPLES_DIR / "README.md").read_text(encoding="utf-8")
    for sample in (s for s in synthetic.SAMPLES if s.plan):
        entry = next(line for line in readme.splitlines() if line.startswith(f"- `{sample.file}`"))
        listed = {int(n) for n in re.findall(r"line (\d+):", entry)}
        delimiter = sample.delimiter or DELIMITERS[sample.profile]
        _, *rows = read_rows(SAMPLES_DIR / sample.file, delimiter, sample.encoding)
        clean = records(sample.profile, sample.rows, seed=sample.seed, encoding=sample.encoding)
        differing = {r.line for r, row in zip(clean, rows, strict=False) if r.fields != row}
        assert listed == differing


def test_the_course_roster_is_not_a_program_export() -> None:
    header, *rows = read_rows(SAMPLES_DIR / "wrong-file-course-roster.csv", ",")
    assert header == ["Student_Number", "Course_Number", "Section", "Teacher", "Period"]
    assert rows


def test_the_command_line_writes_the_requested_export(tmp_path: Path) -> None:
    out = tmp_path / "ic.txt"
    assert main(["--profile", "infinite-campus", "--rows", "25", "--seed", "4", "--out", str(out)]) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == HEADERS["infinite-campus"]
    assert len(lines) == 26

    piped = tmp_path / "programs.txt"
    assert main(["--profile", "illuminate", "--rows", "3", "--delimiter", "|", "--out", str(piped)]) == 0
    assert piped.read_text(encoding="utf-8").splitlines()[0] == HEADERS["illuminate"].replace("\t", "|")
