"""`programs-bridge plan` as a new user runs it: against a ledger an earlier night committed, on moto over HTTP."""

import json
from pathlib import Path

import pytest

from programs_bridge.cli.main import main
from programs_bridge.convert.engine import ConvertOptions, convert_export, converted_rows
from programs_bridge.ledger.commit import commit_plan
from programs_bridge.ledger.plan import make_plan
from programs_bridge.ledger.store import LedgerStore, RunRecord, create_table
from programs_bridge.local.moto_server import MotoServer
from programs_bridge.programs_txt.layout import STANDARD

HEADER = "Student_Number,Last_Name,First_Name,DOB,ProgramID,Enter_Date,Exit_Date,SchoolID"
MONDAY = ["004521,Lee,Ann,3/4/2012,144,8/15/2025,,101", "004522,Kim,Bo,5/6/2011,181,8/15/2025,,101"]
# Tuesday the SIS re-keyed Ann's start date (8/15 -> 8/18) and exited her: Illuminate would open a duplicate.
TUESDAY = ["004521,Lee,Ann,3/4/2012,144,8/18/2025,10/1/2025,101", "004522,Kim,Bo,5/6/2011,181,8/15/2025,,101"]


def export(tmp_path: Path, name: str, rows: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def committed(tmp_path: Path, name: str, rows: list[str]) -> str:
    """A fresh ledger holding ``rows``, committed as the pipeline would after delivery."""
    create_table(name)
    store = LedgerStore(name)
    conversion = convert_export(
        export(tmp_path, f"{name}.csv", rows), tmp_path / f"{name}.txt", ConvertOptions(keep_source_lines=True)
    )
    plan = make_plan(store, converted_rows(conversion), STANDARD, feed="district")
    run = RunRecord("monday", "incoming/district/monday.csv", "v1", "0" * 64, "reports/district/monday.json", {})
    commit_plan(store, plan, run, converted_rows(conversion))
    return name


@pytest.fixture
def table(aws: MotoServer, tmp_path: Path) -> str:
    """A ledger holding Monday's file."""
    return committed(tmp_path, "programs-ledger", MONDAY)


def test_a_re_keyed_exit_is_listed_as_a_duplicate_risk_naming_the_open_record(
    table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "plan.json"
    args = ["plan", str(export(tmp_path, "tuesday.csv", TUESDAY)), "--table", table, "--feed", "district"]
    assert main([*args, "--report", str(report)]) == 1
    err = capsys.readouterr().err
    assert "line 2: duplicate risk, held: open record with start 08/15/2025, site 101" in err
    assert "differs in program_start_date" in err
    data = json.loads(report.read_text())
    assert data["status"] == "planned"
    assert data["counts"]["duplicate_risks"] == 1 and data["counts"]["held"] == 1
    assert data["counts"]["unchanged"] == 1 and data["counts"]["rows_sent"] == 1
    [risk] = data["ledger"]["duplicate_risks"]
    assert risk["open_records"][0]["key"]["program_start_date"] == "08/15/2025"
    assert "004521" not in err  # the terminal summary names lines, not students


def test_the_same_file_again_plans_as_unchanged(table: str, tmp_path: Path) -> None:
    args = ["plan", str(export(tmp_path, "again.csv", MONDAY)), "--table", table, "--feed", "district"]
    assert main(args) == 0


def test_a_missing_table_is_exit_3_not_a_traceback(
    aws: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["plan", str(export(tmp_path, "x.csv", MONDAY)), "--table", "no-such-table", "--feed", "district"]
    assert main(args) == 3
    assert "cannot read the ledger table 'no-such-table'" in capsys.readouterr().err


def test_the_feed_is_never_assumed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A default feed would plan a district's export against another feed's ledger, or none, in silence.
    assert main(["plan", str(export(tmp_path, "x.csv", MONDAY)), "--table", "t"]) == 64
    assert "--feed" in capsys.readouterr().err


MANY = [f"{5000 + n:06d},Family{n},Given{n},3/4/2012,144,8/15/2025,,101" for n in range(200)]


def test_a_truncated_full_export_shows_the_verdict_the_pipeline_would_hold_it_with(
    aws: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = committed(tmp_path, "many-ledger", MANY)
    report = tmp_path / "plan.json"
    args = ["plan", str(export(tmp_path, "half.csv", MANY[:80])), "--table", table, "--feed", "district"]
    assert main([*args, "--report", str(report)]) == 1
    err = capsys.readouterr().err
    assert "shrink guard: the pipeline would HOLD this export, nothing delivered: this full export leaves out" in err
    assert "120 of the 200 open records" in err
    guard = json.loads(report.read_text())["shrink_guard"]
    assert (guard["fires"], guard["dropped"], guard["max_missing_share"]) == (True, 120, 0.2)

    assert main([*args, "--max-missing-share", "0.7"]) == 1  # still 120 missing records to look at
    assert "within the guard's limits" in capsys.readouterr().err
    assert main([*args, "--no-shrink-guard"]) == 1
    assert "turned off" in capsys.readouterr().err
    assert main([*args, "--export", "delta"]) == 0  # a delta export is never short of anything
    assert "delta export lists only changes" in capsys.readouterr().err
    assert main([*args, "--max-missing-share", "0"]) == 64
    assert "--max-missing-share must be more than 0" in capsys.readouterr().err


def test_a_first_night_against_an_empty_ledger_says_the_pipeline_would_wait_for_a_seed(
    empty_table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["plan", str(export(tmp_path, "monday.csv", MONDAY)), "--table", empty_table, "--feed", "district"]
    assert main(args) == 1
    assert "first night: feed 'district' has no ledger yet" in capsys.readouterr().err
