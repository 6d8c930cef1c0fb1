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


@pytest.fixture
def table(aws: MotoServer, tmp_path: Path) -> str:
    """A ledger holding Monday's file, committed as the pipeline would after delivery."""
    create_table("programs-ledger")
    store = LedgerStore("programs-ledger")
    conversion = convert_export(
        export(tmp_path, "monday.csv", MONDAY), tmp_path / "monday.txt", ConvertOptions(keep_source_lines=True)
    )
    plan = make_plan(store, converted_rows(conversion), STANDARD, feed="district")
    run = RunRecord("monday", "incoming/district/monday.csv", "v1", "0" * 64, "reports/district/monday.json", {})
    commit_plan(store, plan, run, converted_rows(conversion))
    return "programs-ledger"


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
    args = ["plan", str(export(tmp_path, "x.csv", MONDAY)), "--table", "no-such-table"]
    assert main(args) == 3
    assert "cannot read the ledger table 'no-such-table'" in capsys.readouterr().err
