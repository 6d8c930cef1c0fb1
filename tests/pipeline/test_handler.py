"""The product end to end: exports dropped in the bucket, the real handler, moto over HTTP, a real sshd."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from conftest import PERSONAL_VALUES
from programs_bridge.convert import staging_process
from programs_bridge.pipeline import run as run_module
from programs_bridge.pipeline.journal import Journal, Stage
from support.log_leaks import leaked

from .conftest import BUCKET, FEED, LEDGER, Stack

HEADER = "Student_Number,Last_Name,First_Name,DOB,ProgramID,Enter_Date,Exit_Date,SchoolID"
STUDENTS = [
    ("918273645", "Quillfeather", "Ysolde", "3/4/2012"),
    ("918273646", "Marchbanks", "Ottoline", "5/6/2011"),
    ("918273647", "Thistlewood", "Barnaby", "7/8/2013"),
]
ENROLLED = [f"{s},{last},{first},{dob},144,8/15/2025,,101" for s, last, first, dob in STUDENTS]
EXITED = [ENROLLED[0].replace(",8/15/2025,,", ",8/15/2025,6/5/2026,"), *ENROLLED[1:]]
PERSONAL = [value for student in STUDENTS for value in student] + ["03/04/2012", "05/06/2011", "07/08/2013"]
PERSONAL_VALUES.update(PERSONAL)  # the suite-wide log check (tests/conftest.py) looks for these too


def export(rows: list[str]) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def ledger_records() -> int:
    items = boto3.client("dynamodb").scan(TableName=LEDGER)["Items"]
    return sum(1 for item in items if item["pk"]["S"].startswith(f"{FEED}#records#"))


def test_a_drop_is_converted_delivered_committed_filed_and_reported(stack: Stack) -> None:
    result = stack.invoke(stack.drop(export(ENROLLED), name="Nightly Export + 504.csv"))
    assert result == {"batchItemFailures": []}
    delivered = stack.delivered()
    assert delivered is not None
    assert delivered.splitlines()[1].startswith("918273645\t\tQuillfeather\tYsolde\t\t03/04/2012\t144")
    assert stack.keys(f"incoming/{FEED}/") == []
    [filed] = [k for k in stack.keys(f"processed/{FEED}/") if k.endswith("Nightly Export + 504.csv")]
    assert filed.startswith(f"processed/{FEED}/")
    [report] = stack.reports()
    assert report["status"] == "delivered"
    assert report["counts"]["rows_read"] == 3 and report["counts"]["new"] == 3 and report["counts"]["rows_sent"] == 3
    assert report["delivery"]["remote_path"].endswith("programs.txt")
    assert ledger_records() == 3
    assert any(k.endswith(".md") for k in stack.keys(f"reports/{FEED}/"))


def test_an_export_converted_in_two_processes_is_delivered_and_committed_the_same(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a large export gets on a Lambda with a second CPU (``convert/staging_process.py``), forced on a
    small one: the rows, a repeated row merged, the ledger and the report as in one process."""
    monkeypatch.setenv(staging_process.SETTING, "on")
    started = staging_process.StagingProcess.__init__
    helpers: list[object] = []

    def counted(self: staging_process.StagingProcess, *args: Any) -> None:
        helpers.append(self)
        started(self, *args)

    monkeypatch.setattr(staging_process.StagingProcess, "__init__", counted)
    stack.invoke(stack.drop(export([*ENROLLED, ENROLLED[1]])))
    assert len(helpers) == 1
    delivered = (stack.delivered() or "").splitlines()
    assert len(delivered) == 4 and delivered[1].startswith("918273645\t\tQuillfeather\tYsolde\t\t03/04/2012\t144")
    [report] = stack.reports()
    assert report["status"] == "delivered"
    assert report["counts"]["rows_read"] == 4 and report["counts"]["rows_merged"] == 1
    assert report["counts"]["new"] == 3 and ledger_records() == 3


def test_the_same_event_twice_delivers_and_commits_once(stack: Stack) -> None:
    event = stack.drop(export(ENROLLED))
    stack.invoke(event)
    (stack.sshd.sftp_root / "programs.txt").unlink()
    assert stack.invoke(event) == {"batchItemFailures": []}
    assert stack.delivered() is None  # not sent again
    assert len(stack.reports()) == 1


def test_an_identical_file_dropped_again_is_reported_as_a_repeat(stack: Stack) -> None:
    stack.invoke(stack.drop(export(ENROLLED)))
    (stack.sshd.sftp_root / "programs.txt").unlink()
    stack.invoke(stack.drop(export(ENROLLED)))
    assert stack.delivered() is None
    statuses = sorted(r["status"] for r in stack.reports())
    assert statuses == ["delivered", "repeat"]
    assert stack.keys(f"incoming/{FEED}/") == []


def test_an_exit_reaches_the_server_and_the_ledger(stack: Stack) -> None:
    stack.invoke(stack.drop(export(ENROLLED)))
    stack.invoke(stack.drop(export(EXITED)))
    newest = max(stack.reports(), key=lambda r: r["source"]["key"])
    assert newest["counts"]["exits"] == 1 and newest["counts"]["unchanged"] == 2
    assert "06/05/2026" in (stack.delivered() or "")


def test_a_re_keyed_exit_is_held_and_reported_as_a_duplicate_risk(stack: Stack) -> None:
    stack.invoke(stack.drop(export(ENROLLED)))
    rekeyed = [ENROLLED[0].replace(",8/15/2025,,", ",8/18/2025,6/5/2026,"), *ENROLLED[1:]]
    stack.invoke(stack.drop(export(rekeyed)))
    newest = max(stack.reports(), key=lambda r: r["source"]["key"])
    assert newest["status"] == "delivered"
    assert newest["counts"]["duplicate_risks"] == 1 and newest["counts"]["held"] == 1
    assert "918273645" not in (stack.delivered() or "")  # held: not sent to Illuminate


def test_a_rejected_file_is_filed_under_rejected_and_never_delivered(stack: Stack) -> None:
    stack.invoke(stack.drop("Student_Number,Course_Number,Section\n918273645,ENG101,2\n", name="roster.csv"))
    assert stack.delivered() is None
    [report] = stack.reports()
    assert report["status"] == "rejected" and "does not fit this file" in report["reason"]
    assert [k.rsplit("-", 1)[-1] for k in stack.keys(f"rejected/{FEED}/")] == ["roster.csv"]


def test_two_files_at_once_are_sent_oldest_first_and_the_newer_one_stays_on_the_server(stack: Stack) -> None:
    older = stack.drop(export(ENROLLED))
    newer = stack.drop(export(EXITED))
    both = {"Records": newer["Records"] + older["Records"]}  # the queue may hand them over in any order
    assert stack.invoke(both) == {"batchItemFailures": []}
    assert "06/05/2026" in (stack.delivered() or "")
    reports = sorted(stack.reports(), key=lambda r: r["source"]["key"])
    assert [r["status"] for r in reports] == ["delivered", "delivered"]
    assert reports[1]["counts"]["exits"] == 1


def test_sftp_down_fails_the_run_keeps_the_export_and_a_retry_delivers(stack: Stack) -> None:
    stack.sshd.kill()
    event = stack.drop(export(ENROLLED))
    result = stack.invoke(event)
    assert len(result["batchItemFailures"]) == 1
    [report] = stack.reports()
    assert report["status"] == "failed" and report["failure"] == "delivery"
    assert len(stack.keys(f"incoming/{FEED}/")) == 1  # left in place for the retry
    stack.sshd.start()
    assert stack.invoke(event) == {"batchItemFailures": []}
    assert stack.delivered() is not None
    [report] = stack.reports()
    assert report["status"] == "delivered"
    assert ledger_records() == 3


def test_an_invalid_config_fails_with_its_reason_and_leaves_the_export(stack: Stack) -> None:
    stack.put_config(stack.config().replace("[sftp]", "[sftp]\nhots = 'typo'"))
    event = stack.drop(export(ENROLLED))
    assert len(stack.invoke(event)["batchItemFailures"]) == 1
    [report] = stack.reports()
    assert report["status"] == "failed" and report["failure"] == "config"
    assert "sftp.hots: unknown setting" in report["reason"]
    assert len(stack.keys(f"incoming/{FEED}/")) == 1
    stack.put_config()
    assert stack.invoke(event) == {"batchItemFailures": []}
    assert [r["status"] for r in stack.reports()] == ["delivered"]


@pytest.mark.parametrize("stage", [Stage.STARTED, Stage.PLANNED, Stage.DELIVERED, Stage.COMMITTED, Stage.FILED])
def test_a_crash_after_any_stage_then_a_retry_ends_as_one_clean_run(
    stack: Stack, stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_update = Journal._update
    crashed = []

    def record_then_crash(self: Journal, feed: str, ref_id: str, reached: Stage, *args: Any, **kwargs: Any) -> bool:
        done = real_update(self, feed, ref_id, reached, *args, **kwargs)
        if reached == max(stage, Stage.PLANNED) and not crashed:
            crashed.append(reached)
            raise RuntimeError("simulated crash (timeout, out of memory ...)")
        return done

    if stage is Stage.STARTED:  # crash before anything was stored: in the middle of converting
        real_convert = run_module.convert_export

        def convert_then_crash(*args: object, **kwargs: object) -> object:
            if not crashed:
                crashed.append(stage)
                raise RuntimeError("simulated crash")
            return real_convert(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(run_module, "convert_export", convert_then_crash)
    else:
        monkeypatch.setattr(Journal, "_update", record_then_crash)
    event = stack.drop(export(ENROLLED))
    assert len(stack.invoke(event)["batchItemFailures"]) == 1
    assert crashed
    assert stack.invoke(event) == {"batchItemFailures": []}
    # the same end state as a clean run
    assert stack.delivered() is not None and "918273647" in (stack.delivered() or "")
    [report] = stack.reports()
    assert report["status"] == "delivered" and report["counts"]["new"] == 3
    assert report["commit"]["records_written"] == 3  # over every attempt, not this attempt's share
    assert ledger_records() == 3
    assert stack.keys(f"incoming/{FEED}/") == []
    assert len([k for k in stack.keys(f"processed/{FEED}/") if k.endswith(".csv")]) == 1


def test_a_crash_between_the_ledgers_commit_and_the_journal_still_reports_what_the_commit_wrote(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from programs_bridge.ledger.store import LedgerStore

    real_mark = LedgerStore.mark_committed

    def mark_then_crash(self: LedgerStore, feed: str, run_id: str) -> None:
        real_mark(self, feed, run_id)
        monkeypatch.setattr(LedgerStore, "mark_committed", real_mark)
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(LedgerStore, "mark_committed", mark_then_crash)
    event = stack.drop(export(ENROLLED))
    assert len(stack.invoke(event)["batchItemFailures"]) == 1
    assert stack.invoke(event) == {"batchItemFailures": []}
    [report] = stack.reports()
    assert report["status"] == "delivered" and report["commit"]["already_committed"] is True
    assert report["commit"]["records_written"] == 3 and ledger_records() == 3


def test_no_student_name_birth_date_or_id_reaches_any_log_line(stack: Stack) -> None:
    stack.invoke(stack.drop(export(ENROLLED)))
    stack.invoke(stack.drop(export(EXITED)))
    stack.invoke(stack.drop(export([*ENROLLED, "918273648,Ravenscroft,,2/30/2012,144,8/15/2025,,101"])))
    stack.sshd.kill()
    stack.invoke(stack.drop(export([*EXITED, "918273649,Ashgrove,Wilhelmina,1/2/2014,181,8/20/2025,,101"])))
    text = "\n".join(stack.logs.texts)
    assert "run finished" in text and "delivered" in text  # we did capture the pipeline's logs
    assert (
        leaked(stack.logs.texts, [*PERSONAL, "918273648", "Ravenscroft", "918273649", "Ashgrove", "Wilhelmina"]) == []
    )


def test_a_report_always_carries_every_count(stack: Stack) -> None:
    stack.invoke(stack.drop(export(ENROLLED)))
    [report] = stack.reports()
    assert set(report["counts"]) >= {
        "rows_read", "rows_rejected", "rows_sent", "new", "unchanged", "updated", "exits", "duplicate_risks",
        "held", "reopened", "missing",
    }  # fmt: skip
    assert boto3.client("s3").head_object(Bucket=BUCKET, Key=f"config/{FEED}.toml")  # config untouched


@pytest.mark.parametrize("key", ["resolutions/decisions.csv", "incoming/district 2/export.csv"])
def test_a_file_in_no_feeds_folder_is_not_read_and_someone_is_told(
    stack: Stack, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whoever dropped it believes it was read: the notice says it was not, and where it belongs."""
    import json

    from programs_bridge.local.demo import s3_event_via_sqs

    stack.notices()
    capsys.readouterr()
    response = stack.s3.put_object(Bucket=BUCKET, Key=key, Body=b"id,decision,note\n")
    stack.invoke(s3_event_via_sqs(BUCKET, key, dict(response), 17))
    assert stack.notices() == ["programs-bridge: a file was dropped where nothing reads it"]
    assert stack.reports() == []
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [m["FilesMisplaced"] for m in emf if "FilesMisplaced" in m] == [[1.0]]
