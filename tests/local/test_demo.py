"""`programs-bridge demo`: the bundled story and the user's own files, on the embedded local stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import PERSONAL_VALUES
from programs_bridge.cli.main import main
from programs_bridge.local.demo import _nested, _without_table

PERSONAL_VALUES.update({"555001", "Fenwick", "Odile", "03/04/2012"})


def test_the_bundled_story_delivers_exits_holds_a_re_keyed_exit_and_rejects_a_roster(
    tmp_path: Path, clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--out", str(tmp_path)]) == 0
    reports = [json.loads((tmp_path / f"0{n}-report.json").read_text()) for n in range(1, 5)]
    assert [r["status"] for r in reports] == ["delivered", "delivered", "delivered", "rejected"]
    assert reports[1]["counts"]["exits"] == 3
    assert reports[2]["counts"]["duplicate_risks"] == 1 and reports[2]["counts"]["held"] == 1
    assert (tmp_path / "03-programs.txt").exists() and not (tmp_path / "04-programs.txt").exists()
    out = capsys.readouterr().out
    assert "night 3" in out and "| held | program_start_date |" in out


def test_a_users_mapping_is_nested_into_the_feed_config() -> None:
    mapping = "name = 'synergy'\n[columns]\nlast_name = 'Last'\n[[skip]]\ncolumn = 'Deleted'\nvalues = ['Y']\n"
    assert _nested(mapping, "mapping") == (
        "name = 'synergy'\n[mapping.columns]\nlast_name = 'Last'\n[[mapping.skip]]\ncolumn = 'Deleted'\n"
        "values = ['Y']\n"
    )


def test_a_users_config_loses_only_its_sftp_tables() -> None:
    config = 'profile = "aeries"\n[sftp]\nhost = "x"\n[sftp.extra]\na = 1\n[mapping]\nname = "m"\n'
    assert _without_table(config, "sftp") == 'profile = "aeries"\n[mapping]\nname = "m"\n'


def test_a_missing_export_is_a_usage_error(tmp_path: Path, clean_env: None) -> None:
    assert main(["demo", str(tmp_path / "nope.csv"), "--out", str(tmp_path)]) == 64


def test_your_own_exports_run_as_consecutive_nights_through_the_cli(tmp_path: Path, clean_env: None) -> None:
    header = "Student_Number,Last_Name,First_Name,DOB,ProgramID,Enter_Date,Exit_Date,SchoolID\n"
    night1 = tmp_path / "mon.csv"
    night1.write_text(header + "555001,Fenwick,Odile,3/4/2012,144,8/15/2025,,101\n")
    night2 = tmp_path / "tue.csv"
    night2.write_text(header + "555001,Fenwick,Odile,3/4/2012,144,8/15/2025,6/1/2026,101\n")
    out = tmp_path / "out"
    assert main(["demo", str(night1), str(night2), "--profile", "powerschool", "--out", str(out)]) == 0
    assert json.loads((out / "02-report.json").read_text())["counts"]["exits"] == 1
    assert "06/01/2026" in (out / "02-programs.txt").read_text()
