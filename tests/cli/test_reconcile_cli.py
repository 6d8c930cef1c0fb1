"""`programs-bridge ledger reconcile` as a district runs it, on moto: exit codes, the summary, the fix file."""

import json
from pathlib import Path

import pytest

from conftest import PERSONAL_VALUES
from programs_bridge.cli.main import main
from programs_bridge.ledger.commit import commit_plan
from programs_bridge.ledger.model import ExportKind
from programs_bridge.ledger.plan import make_plan
from programs_bridge.ledger.store import LedgerStore, RunRecord
from programs_bridge.local.moto_server import MotoServer
from programs_bridge.programs_txt.layout import STANDARD, Field

#: Illuminate's report of its records (synthetic people), with names and birth dates.
HEADER = "Local Student ID,Last Name,First Name,Birthdate,Program Code,Start Date,End Date,School ID"
REPORT = [
    "004521,Quennell,Ysolde,2012-03-04,144,2025-08-15,,101",
    "004522,Marchetti,Oriel,2011-05-06,181,2025-08-15,,101",
]
PERSONAL_VALUES.update({"004521", "004522", "004523", "Quennell", "Ysolde", "Marchetti", "Oriel", "03/04/2012"})
STUDENT_DATA = ("004521", "004522", "004523", "4521", "Quennell", "Ysolde", "Marchetti", "Oriel", "2012", "2011")


def write(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def table(empty_table: str) -> str:
    return empty_table


def seed(table: str, report: Path) -> None:
    assert main(["ledger", "seed", str(report), "--table", table, "--feed", "district", "--taken", "2025-09-01"]) == 0


def reconcile(table: str, report: Path, *extra: str) -> list[str]:
    return ["ledger", "reconcile", str(report), "--table", table, "--feed", "district", *extra]


def no_student_data(text: str) -> None:
    leaked = [value for value in STUDENT_DATA if value in text]
    assert not leaked, f"student data on stderr: {leaked}"


def test_a_report_the_ledger_agrees_with_finds_nothing_and_exits_0(
    table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = write(tmp_path / "illuminate.csv", REPORT)
    seed(table, report)
    capsys.readouterr()
    assert main(reconcile(table, report)) == 0
    err = capsys.readouterr().err
    assert "(a) 0 duplicate(s)" in err and "(b) 0 record(s)" in err and "(c) 0 record(s)" in err
    assert "(b) 0 record(s) open in Illuminate that the latest full export no longer lists" in err
    no_student_data(err)


def test_findings_exit_1_with_a_fix_file_a_report_naming_keys_and_a_summary_without_student_data(
    table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = write(tmp_path / "illuminate.csv", REPORT)
    seed(table, report)
    # The bridge then exits 004521 (its exit never reaches Illuminate) and sends 004523, which Illuminate drops.
    store = LedgerStore(table)
    tonight = [
        ["004521", "", "Quennell", "Ysolde", "", "03/04/2012", "144", "", "", "08/15/2025", "06/05/2026", "", "", "",
         "101"],
        ["004523", "", "Marchetti", "Oriel", "", "05/06/2011", "144", "", "", "08/20/2025", "", "", "", "", "101"],
    ]  # fmt: skip
    rows = list(enumerate(tonight, start=2))
    plan = make_plan(store, iter(rows), STANDARD, feed="district", kind=ExportKind.DELTA)
    run = RunRecord("20260606T020000Z-night001", "x.csv", "v1", "0" * 64, "r.json", {})
    commit_plan(store, plan, run, iter(rows))
    # Illuminate also holds a second open record of 004522 in program 181, entered by hand at another site.
    report = write(tmp_path / "illuminate.csv", [*REPORT, "004522,Marchetti,Oriel,2011-05-06,181,2025-08-15,,102"])
    capsys.readouterr()

    fix_file, json_report = tmp_path / "fix.txt", tmp_path / "reconcile.json"
    assert main(reconcile(table, report, "--fix-file", str(fix_file), "--report", str(json_report))) == 1
    err = capsys.readouterr().err
    no_student_data(err)
    assert "(a) 1 duplicate(s) in Illuminate (2 records)" in err
    assert "program 181, open more than once: keep line 3 (start 08/15/2025, site 101, open), delete line 4" in err
    assert "(b) 1 record(s) open in Illuminate that the ledger says were exited: 1 exit row(s) written" in err
    assert "line 2: program 144, start 08/15/2025, site 101: exit never landed (run 20260606T020000Z-night001)" in err
    assert "(c) 1 record(s) the bridge sent that Illuminate does not have" in err
    assert "program 144, start 08/20/2025, site 101, open, sent by run 20260606T020000Z-night001" in err
    assert "(d) 1 record(s) in Illuminate that no export sent" in err

    lines = fix_file.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "\t".join(STANDARD.header) and len(lines) == 2
    exit_row = lines[1].split("\t")
    assert exit_row[0] == "004521" and exit_row[STANDARD.fields.index(Field.PROGRAM_END_DATE)] == "06/05/2026"
    assert exit_row[STANDARD.fields.index(Field.PROGRAM_START_DATE)] == "08/15/2025"

    section = json.loads(json_report.read_text(encoding="utf-8"))["reconcile"]
    assert section["counts"] == {
        "duplicates": 1, "duplicate_records": 2, "exits_not_landed": 1, "exits_fixable": 1, "open_not_exported": 0,
        "dropped_by_import": 1, "entered_by_hand": 1,
    }  # fmt: skip
    assert section["dropped_by_import"][0]["key"]["import_student_id"] == "004523"
    assert section["fix_file"]["rows"] == 1


def test_a_report_without_names_gives_no_fix_rows_and_says_why(
    table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header = "Local Student ID,Program Code,Start Date,End Date,School ID"
    seed(table, write(tmp_path / "earlier.csv", ["004521,144,2025-08-15,,101", "004522,144,2025-08-15,2026-01-05,101"],
                      header))  # fmt: skip
    store = LedgerStore(table)
    exit_row = ["004521", "", "Quennell", "Ysolde", "", "03/04/2012", "144", "", "", "08/15/2025", "06/05/2026", "",
                "", "", "101"]  # fmt: skip
    plan = make_plan(store, iter([(2, exit_row)]), STANDARD, feed="district", kind=ExportKind.DELTA)
    commit_plan(store, plan, RunRecord("20260606T020000Z-night001", "x", "v", "0" * 64, "r", {}), iter([(2, exit_row)]))
    # Illuminate still holds 004521 open (the exit never landed) and shows 004522, closed by a seed, open again.
    still_open = write(tmp_path / "open.csv", ["004521,144,2025-08-15,,101", "004522,144,2025-08-15,,101"], header)
    fix_file = tmp_path / "fix.txt"
    capsys.readouterr()
    assert main(reconcile(table, still_open, "--fix-file", str(fix_file))) == 1
    err = capsys.readouterr().err
    assert "(b) 2 record(s) open in Illuminate that the ledger says were exited: 0 exit row(s) written" in err
    assert "1 left out because the report has no names or birth date for them" in err
    assert "line 3: program 144, start 08/15/2025, site 101: closed in an earlier Illuminate report" in err
    assert fix_file.read_text(encoding="utf-8").splitlines() == ["\t".join(STANDARD.header)]
    no_student_data(err)


def test_a_rejected_report_exits_2(table: str, tmp_path: Path) -> None:
    roster = write(tmp_path / "roster.csv", ["004521,ENG101,2"], "Student_Number,Course_Number,Section")
    assert main(reconcile(table, roster)) == 2


def test_an_unreadable_ledger_exits_3(aws: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = write(tmp_path / "illuminate.csv", REPORT)
    assert main(reconcile("no-such-table", report)) == 3
    err = capsys.readouterr().err
    assert "cannot read the ledger table 'no-such-table': no such table in this account and region" in err
    no_student_data(err)


def test_a_bad_feed_name_or_a_missing_option_is_usage(table: str, tmp_path: Path) -> None:
    report = write(tmp_path / "illuminate.csv", REPORT)
    assert main(["ledger", "reconcile", str(report), "--table", table, "--feed", "no spaces"]) == 64
    assert main(["ledger", "reconcile", str(report), "--table", table]) == 64


def test_a_feed_with_no_ledger_is_named_as_such_not_reported_as_all_entered_by_hand(
    table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = write(tmp_path / "illuminate.csv", REPORT)
    assert main(["ledger", "reconcile", str(report), "--table", table, "--feed", "distirct"]) == 64
    assert "feed 'distirct' has no ledger" in capsys.readouterr().err
