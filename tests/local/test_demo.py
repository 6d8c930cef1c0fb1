"""`programs-bridge demo`: the bundled story and the user's own files, on the embedded local stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import PERSONAL_VALUES
from programs_bridge.cli.main import main
from programs_bridge.local.demo import _nested, _without_table

SAMPLES = Path(__file__).resolve().parents[2] / "samples"

PERSONAL_VALUES.update({"555001", "Fenwick", "Odile", "03/04/2012"})


def test_the_bundled_story_seeds_exits_holds_resolves_reconciles_and_rejects_a_roster(
    tmp_path: Path, clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "09-programs.txt").write_text("an earlier, longer story's\n")
    assert main(["demo", "--out", str(tmp_path)]) == 0
    assert not (tmp_path / "09-programs.txt").exists()  # not taken for this story's ninth night
    reports = [json.loads((tmp_path / f"0{n}-report.json").read_text()) for n in range(1, 8)]
    statuses = [r["status"] for r in reports]
    assert statuses == [
        "seeded",
        "delivered",
        "delivered",
        "resolutions_applied",
        "delivered",
        "reconciled",
        "rejected",
    ]
    assert reports[1]["counts"]["exits"] == 3 and reports[1]["counts"]["new"] == 0  # seeded records, exited
    [risk] = reports[2]["ledger"]["duplicate_risks"]
    assert risk["action"] == "held" and risk["open_records"][0]["differs"] == ["program_start_date"]
    assert reports[4]["counts"]["exits"] == 1 and reports[4]["ledger"]["resolved"]["same"] == 1
    assert risk["key"]["program_start_date"] not in (tmp_path / "05-programs.txt").read_text()  # the seeded key
    # Illuminate holds one enrolment twice: keep the record every night sends, delete the stale seeded one.
    [twice] = reports[5]["reconcile"]["duplicates"]
    [deleted] = twice["delete"]
    rows = [line.split("\t") for line in (tmp_path / "05-programs.txt").read_text().splitlines()[1:]]
    sent_keys = {(f[0], f[6], f[9], f[14]) for f in rows}
    assert tuple(twice["keep"]["key"].values()) in sent_keys and tuple(deleted["key"].values()) not in sent_keys
    fix = (tmp_path / "06-fix.txt").read_text().splitlines()
    assert len(fix) == 2 and "06/05/2026" in fix[1]  # the one exit that never landed, ready to upload by hand
    assert not (tmp_path / "07-programs.txt").exists()
    out = capsys.readouterr().out
    assert "RECONCILED" in out and f"ledger resolve --table <LedgerTable> --feed district {risk['id']}" in out
    # The stack is gone when the demo ends: the held row's night says how to decide inside the demo.
    assert "decide with an item, resolutions:FILE (id,decision,note)" in out
    assert "under resolutions/district/ in the bucket" in out


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


def test_an_out_folder_that_is_a_file_is_a_usage_error_not_a_traceback(
    tmp_path: Path, clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("not a folder")
    assert main(["demo", "--out", str(blocker / "demo")]) == 64
    assert "cannot use" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--config", "--mapping"])
def test_a_config_or_mapping_that_cannot_be_read_is_a_usage_error_not_a_traceback(
    tmp_path: Path, clean_env: None, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    export = SAMPLES / "powerschool.csv"
    utf16 = tmp_path / "utf16.toml"
    utf16.write_text('profile = "powerschool"\n', encoding="utf-16")
    for bad, said in ((tmp_path / "nope.toml", "cannot read the"), (tmp_path, "cannot read the"), (utf16, "not UTF-8")):
        assert main(["demo", str(export), flag, str(bad), "--out", str(tmp_path / "out")]) == 64
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err


def test_a_config_beside_a_profile_is_a_usage_error_since_the_config_names_its_own(
    tmp_path: Path, clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "district.toml"
    config.write_text('profile = "synergy"\n')
    args = ["demo", str(SAMPLES / "powerschool.csv"), "--config", str(config), "--profile", "powerschool"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 64
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_mapping_saved_with_a_byte_order_mark_runs_in_the_demo_as_it_does_in_validate(
    tmp_path: Path, clean_env: None
) -> None:
    (mapping := tmp_path / "synergy.toml").write_text('extends = "synergy"\n', encoding="utf-8-sig")
    export, out = str(SAMPLES / "synergy.csv"), tmp_path / "out"
    assert [main([command, export, "--mapping", str(mapping), *more]) for command, more in
            (("validate", []), ("demo", ["--out", str(out)]))] == [0, 0]  # fmt: skip
    assert json.loads((out / "01-report.json").read_text())["status"] == "delivered"
