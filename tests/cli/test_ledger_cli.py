"""`programs-bridge ledger seed` as a district runs it: a programs.txt it once uploaded by hand, on moto."""

import json
from pathlib import Path

import pytest

from programs_bridge.cli.main import main
from programs_bridge.local.moto_server import MotoServer
from programs_bridge.programs_txt.layout import STANDARD

UPLOADED = [  # what the district uploaded to Illuminate by hand last year (synthetic people)
    "004521\t\tLee\tAnn\t\t03/04/2012\t144\t\t\t08/15/2024\t\t2024-2025\t\t\t101",
    "004522\t\tKim\tBo\t\t05/06/2011\t181\t\t\t08/15/2024\t\t2024-2025\t\t\t101",
]
TONIGHT = "Student_Number,Last_Name,First_Name,DOB,ProgramID,Enter_Date,Exit_Date,SchoolID"


def write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def table(empty_table: str) -> str:
    return empty_table


def test_a_hand_uploaded_programs_txt_seeds_the_feed_and_a_re_keyed_exit_is_then_caught(
    table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uploaded = write(tmp_path / "programs-2024.txt", "\t".join(STANDARD.header), UPLOADED)
    report = tmp_path / "seed.json"
    seed = ["ledger", "seed", str(uploaded), "--table", table, "--feed", "district", "--taken", "2025-06-30"]
    assert main([*seed, "--report", str(report)]) == 0
    err = capsys.readouterr().err
    assert "seeded as run 20250630T000000Z-seed-" in err and "2 records read, 2 new" in err
    assert "all rows valid" in err and "written to" not in err  # the scratch programs.txt is not the user's
    section = json.loads(report.read_text())["seed"]
    assert section["counts"]["new"] == 2 and section["already_seeded"] is False

    assert main(seed) == 0  # the same report again: nothing written
    assert "was seeded from this report before" in capsys.readouterr().err

    # Tonight the SIS exits Ann under a start date it re-keyed to 8/18: the seeded record is named.
    tonight = write(tmp_path / "tonight.csv", TONIGHT, ["004521,Lee,Ann,3/4/2012,144,8/18/2024,6/5/2025,101"])
    assert main(["plan", str(tonight), "--table", table, "--feed", "district", "--export", "delta"]) == 1
    err = capsys.readouterr().err
    assert "line 2: duplicate risk, held: open record with start 08/15/2024, site 101" in err
    assert "004521" not in err and "Lee" not in err


def test_a_rejected_report_seeds_nothing_and_exits_2(table: str, tmp_path: Path) -> None:
    roster = write(tmp_path / "roster.csv", "Student_Number,Course_Number,Section", ["004521,ENG101,2"])
    assert main(["ledger", "seed", str(roster), "--table", table, "--feed", "district"]) == 2


def test_a_missing_table_is_exit_3_not_a_traceback(
    aws: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uploaded = write(tmp_path / "programs.txt", "\t".join(STANDARD.header), UPLOADED)
    assert main(["ledger", "seed", str(uploaded), "--table", "no-such-table", "--feed", "district"]) == 3
    err = capsys.readouterr().err
    assert "cannot seed the ledger table 'no-such-table': no such table in this account and region" in err


def test_a_table_that_is_not_a_ledger_is_exit_3_with_what_a_ledger_table_looks_like(
    aws: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import boto3

    boto3.client("dynamodb").create_table(
        TableName="idempotency", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )  # fmt: skip
    uploaded = write(tmp_path / "programs.txt", "\t".join(STANDARD.header), UPLOADED)
    assert main(["ledger", "seed", str(uploaded), "--table", "idempotency", "--feed", "district"]) == 3
    err = capsys.readouterr().err
    assert "cannot seed the ledger table 'idempotency': is it a programs-bridge ledger table?" in err
    assert "Traceback" not in err


def test_a_report_of_illuminates_records_without_names_or_birth_dates_seeds_the_feed(
    table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Custom Reporting often gives only the key columns: they are all a seed needs."""
    header = "Local Student ID,Program Code,Start Date,End Date,School ID"
    report = write(
        tmp_path / "illuminate.csv", header, ["4521,144,2024-08-15,,101", "4522,181,2024-08-15,2025-06-01,101"]
    )
    args = ["ledger", "seed", str(report), "--table", table, "--feed", "district", "--taken", "2025-06-30"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "read as illuminate-report (detected from the header)" in err and "2 records read, 2 new" in err
    # The same report as a nightly export is refused: a programs.txt for Illuminate needs the names.
    assert main(["convert", str(report), "-o", str(tmp_path / "programs.txt")]) == 2
    assert "Student Last Name" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (["--feed", "f 1/x#"], "--feed:"),
        (["--feed", "district", "--taken", "2999-01-01"], "--taken is in the future"),
        (["--feed", "district", "--report", "SELF"], "is the file being read"),
        (["--feed", "district", "--report", "NOWHERE"], "does not exist"),
    ],
)
def test_a_bad_feed_a_future_taken_time_or_a_report_over_the_input_are_usage_errors_before_any_work(
    table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], problem: str
) -> None:
    uploaded = write(tmp_path / "programs.txt", "\t".join(STANDARD.header), UPLOADED)
    before = uploaded.read_bytes()
    where = {"SELF": str(uploaded), "NOWHERE": str(tmp_path / "no" / "seed.json")}
    args = ["ledger", "seed", str(uploaded), "--table", table, *[where.get(a, a) for a in extra]]
    assert main(args) == 64
    assert problem in capsys.readouterr().err
    assert uploaded.read_bytes() == before
    assert main(["ledger", "resolve", "k3vq7x2m", "--as", "new", "--table", table, "--feed", "f 1/x#"]) == 64


def test_the_same_report_read_another_way_is_seeded_again_not_skipped(
    table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Excel stripped the zeros: seeded as it is first, then again with a mapping that pads them back."""
    report = write(tmp_path / "illuminate.csv", "Local Student ID,Program Code,Start Date,End Date,School ID",
                   ["4521,144,2024-08-15,,101"])  # fmt: skip
    seed = ["ledger", "seed", str(report), "--table", table, "--feed", "district", "--taken", "2025-06-30"]
    assert main(seed) == 0
    padding = tmp_path / "pad.toml"
    padding.write_text('extends = "illuminate-report"\n[ids]\nimport_student_id_width = 6\n', encoding="utf-8")
    capsys.readouterr()
    assert main([*seed, "--mapping", str(padding)]) == 0
    assert "1 records read, 1 new" in capsys.readouterr().err  # 004521: a new key, not "seeded before"
