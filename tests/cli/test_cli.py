"""The command as a data clerk runs it: exit codes, one-line reasons, a report, never a traceback."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from programs_bridge.cli.main import main

HEADER = "Student_Number,Last_Name,First_Name,DOB,ProgramID,Enter_Date,Exit_Date,SchoolID"
GOOD = "004521,Lee,Ann,3/4/2012,144,8/15/2025,,101"


def export(tmp_path: Path, *rows: str, name: str = "export.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def test_convert_writes_programs_txt_and_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "programs.txt"
    code = main(["convert", str(export(tmp_path, GOOD)), "-o", str(out), "--as-of", "2026-09-01"])
    assert code == 0
    assert out.read_text().splitlines()[1].startswith("004521\t\tLee\tAnn\t\t03/04/2012\t144")
    err = capsys.readouterr().err
    assert "all rows valid" in err and "powerschool (detected from the header)" in err


def test_some_bad_rows_exit_1_and_the_rest_are_written(tmp_path: Path) -> None:
    rows = [GOOD.replace("004521", f"{n:06d}") for n in range(30)] + ["9,Lee,,3/4/2012,144,8/15/2025,,101"]
    out = tmp_path / "programs.txt"
    assert main(["convert", str(export(tmp_path, *rows)), "-o", str(out)]) == 1
    assert len(out.read_text().splitlines()) == 31


def test_validate_writes_nothing_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    report = tmp_path / "report.json"
    assert main(["validate", str(export(tmp_path, GOOD, "1,2")), "--report", str(report)]) == 2
    assert not (tmp_path / "programs.txt").exists()
    data = json.loads(report.read_text())
    assert data["status"] == "rejected" and data["issues"][0]["code"] == "field_count"


def test_a_wrong_file_exits_2_with_a_one_line_reason_and_no_traceback(tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text("Student_Number,Course_Number,Section,Teacher,Period\n004521,ENG101,2,Smith,3\n")
    done = subprocess.run(
        [sys.executable, "-m", "programs_bridge", "convert", str(roster), "-o", str(tmp_path / "p.txt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "REJECTED, nothing written" in done.stderr
    assert "reason: the header matches no known program export" in done.stderr
    assert not (tmp_path / "p.txt").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["convert", "missing.csv"],
        ["convert", "{export}", "--profile", "sims"],
        ["convert", "{export}", "--mapping", "{bad_mapping}"],
        ["convert", "{export}", "--max-reject-share", "5"],
        ["convert", "{export}", "--columns", "import_student_id,program"],
        ["convert", "{export}", "-o", "{tmp}/no/such/dir/programs.txt"],
        ["frobnicate"],
    ],
)
def test_usage_and_configuration_errors_exit_64(
    tmp_path: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    bad_mapping = tmp_path / "m.toml"
    bad_mapping.write_text("[columns]\nstudent = 'x'\n")
    values = {"export": str(export(tmp_path, GOOD)), "bad_mapping": str(bad_mapping), "tmp": str(tmp_path)}
    assert main([a.format(**values) for a in args]) == 64
    assert "Traceback" not in capsys.readouterr().err


def test_a_custom_mapping_drives_the_conversion(tmp_path: Path) -> None:
    source = tmp_path / "synergy.csv"
    source.write_text("Perm ID;Surname;Given;Born;Program;From;To\n4521;Lee;Ann;04/03/2012;SPED;15/08/2025;\n")
    mapping = tmp_path / "synergy.toml"
    mapping.write_text(
        "[columns]\nimport_student_id='Perm ID'\nlast_name='Surname'\nfirst_name='Given'\nbirth_date='Born'\n"
        "program_id='Program'\nprogram_start_date='From'\nprogram_end_date='To'\n"
        "[constants]\nsite_id='12'\n[values.program_id]\nSPED='144'\n[dates]\norder='DMY'\n"
        "[ids]\nimport_student_id_width=6\n"
    )
    out = tmp_path / "programs.txt"
    assert main(["convert", str(source), "--mapping", str(mapping), "-o", str(out), "--as-of", "2026-09-01"]) == 0
    assert (
        out.read_text().splitlines()[1] == "004521\t\tLee\tAnn\t\t03/04/2012\t144\t\t\t08/15/2025\t\t2025-2026\t\t\t12"
    )


def test_validate_says_which_rows_would_be_left_out_not_that_it_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [GOOD.replace("004521", f"{n:06d}") for n in range(30)] + ["9,Lee,,3/4/2012,144,8/15/2025,,101"]
    assert main(["validate", str(export(tmp_path, *rows))]) == 1
    err = capsys.readouterr().err
    assert "1 row(s) have errors and would be left out" in err
    assert "written" not in err.splitlines()[0]


@pytest.mark.parametrize("option", ["-o", "--report"])
def test_an_output_named_like_the_export_is_refused_and_the_export_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    source = export(tmp_path, GOOD, name="programs.txt")
    before = source.read_bytes()
    elsewhere = ["--report", str(tmp_path / "r.json")] if option == "-o" else ["-o", str(tmp_path / "out.txt")]
    assert main(["convert", str(source), *elsewhere, option, str(tmp_path / "." / "programs.txt")]) == 64
    assert "is the file being read" in capsys.readouterr().err
    assert source.read_bytes() == before
