"""A held row resolved by a clerk with `programs-bridge ledger resolve`, across nights, through the real stack."""

from __future__ import annotations

import json
from typing import Any

import pytest

from programs_bridge.cli.main import main

from .conftest import FEED, LEDGER, Stack

HEADER = "Student_Number,Last_Name,First_Name,DOB,ProgramID,Enter_Date,Exit_Date,SchoolID"
ANN = "918273645,Quillfeather,Ysolde,3/4/2012,144,8/15/2025,,101"
BO = "918273646,Marchbanks,Ottoline,5/6/2011,181,8/15/2025,,101"
# The SIS re-keyed Ann's start date (8/15 -> 8/18) and then exited her: Illuminate would open a duplicate.
ANN_REKEYED_EXIT = "918273645,Quillfeather,Ysolde,3/4/2012,144,8/18/2025,6/5/2026,101"


def export(rows: list[str]) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def newest(stack: Stack) -> dict[str, Any]:
    return max(stack.reports(), key=lambda r: r["source"]["key"])


def held_night(stack: Stack) -> dict[str, Any]:
    """Night 1 enrols Ann and Bo; night 2 brings Ann's re-keyed exit, which is held."""
    stack.put_config(stack.config())
    stack.invoke(stack.drop(export([ANN, BO])))
    stack.notices()
    stack.invoke(stack.drop(export([ANN_REKEYED_EXIT, BO])))
    return newest(stack)


def resolve(rid: str, choice: str) -> int:
    return main(["ledger", "resolve", rid, "--as", choice, "--table", LEDGER, "--feed", FEED, "--note", "checked"])


def test_the_notice_of_a_held_row_says_how_to_resolve_it_without_any_student_data(stack: Stack) -> None:
    night = held_night(stack)
    [risk] = night["ledger"]["duplicate_risks"]
    assert risk["action"] == "held" and len(risk["id"]) == 8
    subjects = []
    # The stack's SNS queue keeps bodies too: read them directly.
    messages = stack.sqs.receive_message(QueueUrl=stack.notices_url, MaxNumberOfMessages=10)["Messages"]
    bodies = [json.loads(m["Body"]) for m in messages]
    subjects = [b["Subject"] for b in bodies]
    assert subjects == [f"programs-bridge {FEED}: 1 row(s) held as duplicate risks"]
    body = bodies[0]["Message"]
    assert "line 2: differs from an open record in program_start_date 08/18/2025 here, 08/15/2025 open" in body
    assert f"ledger resolve --table <LedgerTable> --feed {FEED} {risk['id']} --as same|new|never" in body
    for personal in ("918273645", "Quillfeather", "Ysolde", "03/04/2012"):
        assert personal not in body


def test_a_student_id_shifted_into_the_site_column_is_not_shown_by_the_notice(stack: Stack) -> None:
    """A Site ID is checked only as a whole number, which a student's ID is too: a notice, which leaves the
    district's account, shows a site only when it is short, like a district's site numbers."""
    stack.put_config(stack.config())
    stack.invoke(stack.drop(export([ANN])))
    stack.notices()
    shifted = ANN_REKEYED_EXIT.replace("8/18/2025", "8/15/2025").rsplit(",", 1)[0] + ",918273645"
    stack.invoke(stack.drop(export([shifted])))
    messages = stack.sqs.receive_message(QueueUrl=stack.notices_url, MaxNumberOfMessages=10)["Messages"]
    [body] = [json.loads(m["Body"])["Message"] for m in messages]
    assert "line 2: differs from an open record in site_id (not shown) here, 101 open" in body
    assert "918273645" not in body


def test_same_sends_the_exit_under_the_open_records_key_from_the_next_night_on(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    rid = held_night(stack)["ledger"]["duplicate_risks"][0]["id"]
    assert resolve(rid, "same") == 0
    assert f"resolved row {rid}" in capsys.readouterr().err
    stack.notices()
    stack.invoke(stack.drop(export([ANN_REKEYED_EXIT, BO])))
    night3 = newest(stack)
    assert night3["counts"]["exits"] == 1 and night3["counts"]["duplicate_risks"] == 0
    assert night3["ledger"]["resolved"]["same"] == 1
    sent = stack.delivered() or ""
    assert "\t144\t\t\t08/15/2025\t06/05/2026\t" in sent  # the exit, under the key Illuminate holds
    assert "08/18/2025" not in sent
    assert stack.notices() == []  # resolved: no more notice
    # The record is closed now; the SIS keeps sending its re-keyed row: still sent under the closed key.
    stack.invoke(stack.drop(export([ANN_REKEYED_EXIT, BO, BO.replace("181", "300")])))
    night4 = newest(stack)
    assert night4["counts"]["new"] == 1 and night4["counts"]["unchanged"] == 2
    assert "08/18/2025" not in (stack.delivered() or "")


def test_new_sends_the_row_as_a_second_record_and_never_leaves_it_out(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    rid = held_night(stack)["ledger"]["duplicate_risks"][0]["id"]
    assert resolve(rid, "new") == 0
    stack.invoke(stack.drop(export([ANN_REKEYED_EXIT, BO])))
    night3 = newest(stack)
    [risk] = night3["ledger"]["duplicate_risks"]
    assert risk["action"] == "sent" and risk["resolved_by"] == rid
    assert "08/18/2025" in (stack.delivered() or "")
    capsys.readouterr()
    assert resolve(rid, "never") == 0  # changed her mind: a later decision replaces the earlier one
    assert "this replaces the earlier decision new" in capsys.readouterr().err
    stack.invoke(stack.drop(export([ANN_REKEYED_EXIT, BO, BO.replace("181", "300")])))
    night4 = newest(stack)
    assert night4["ledger"]["resolved"]["never"] == 1 and night4["counts"]["rows_read"] == 3
    assert night4["counts"]["rows_sent"] == 2


def test_an_unknown_id_or_a_malformed_one_is_refused(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    held_night(stack)
    assert resolve("zqxwlast", "same") == 2  # a surname has an id's shape: not echoed
    err = capsys.readouterr().err
    assert "was held with that id" in err and "zqxwlast" not in err
    assert resolve("918273645", "same") == 64  # a student ID is not an id, and is not echoed
    assert "918273645" not in capsys.readouterr().err
    long_note = [
        "ledger",
        "resolve",
        "zzzzzzzz",
        "--as",
        "SAME",
        "--table",
        LEDGER,
        "--feed",
        FEED,
        "--note",
        "x" * 501,
    ]
    assert main(long_note) == 64 and "at most 500 characters" in capsys.readouterr().err


@pytest.mark.parametrize(("choice", "sent"), [("new", True), ("never", False)])
def test_a_decision_dropped_in_the_bucket_applies_from_the_next_night(stack: Stack, choice: str, sent: bool) -> None:
    from programs_bridge.local.demo import s3_event_via_sqs

    from .conftest import BUCKET

    rid = held_night(stack)["ledger"]["duplicate_risks"][0]["id"]
    key, body = f"resolutions/{FEED}/decisions.csv", f"id,decision,note\n{rid},{choice},checked with the school\n"
    response = stack.s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode())
    stack.invoke(s3_event_via_sqs(BUCKET, key, dict(response), len(body)))
    stack.invoke(stack.drop(export([ANN_REKEYED_EXIT, BO]), name="night 3.csv"))
    night3 = stack.report_of("night 3.csv")
    assert night3["status"] == "delivered" and night3["counts"]["held"] == 0
    assert ("08/18/2025" in (stack.delivered() or "")) is sent


def test_same_is_refused_once_the_open_record_has_left_the_ledger(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """An undone seed took the record out after the row was held: neither the command line nor the bucket
    records a ``same`` that would send the row under a key the ledger no longer holds."""
    from programs_bridge.ledger.model import encode_key
    from programs_bridge.ledger.store import LedgerStore
    from programs_bridge.local.demo import s3_event_via_sqs

    from .conftest import BUCKET

    rid = held_night(stack)["ledger"]["duplicate_risks"][0]["id"]
    store = LedgerStore(LEDGER)
    store.delete_records(FEED, [encode_key(("918273645", "144", "08/15/2025", "101"))])
    capsys.readouterr()
    assert resolve(rid, "same") == 2
    assert "open record is no longer open in the ledger" in capsys.readouterr().err
    key, body = f"resolutions/{FEED}/decisions.csv", f"id,decision,note\n{rid},same,checked\n"
    response = stack.s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode())
    stack.invoke(s3_event_via_sqs(BUCKET, key, dict(response), len(body)))
    refused = newest_of(stack, "resolutions")
    assert refused["status"] == "rejected" and [i["code"] for i in refused["issues"]] == ["same_target_gone"]
    assert store.resolutions(FEED) == []


def newest_of(stack: Stack, kind: str) -> dict[str, Any]:
    return max((r for r in stack.reports() if r["source"]["key"].startswith(f"{kind}/")), key=lambda r: r["run_id"])


def test_same_is_refused_once_the_open_record_was_exited(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """The SIS sent the original key's exit after the re-keyed row was held: 'same' would now send the held
    row's own end date over the one Illuminate was sent."""
    rid = held_night(stack)["ledger"]["duplicate_risks"][0]["id"]
    stack.invoke(stack.drop(export([ANN.replace(",,101", ",6/12/2026,101"), BO]), name="night 3.csv"))
    assert stack.report_of("night 3.csv")["counts"]["exits"] == 1
    capsys.readouterr()
    assert resolve(rid, "same") == 2
    assert "no longer open in the ledger (exited since the row was held" in capsys.readouterr().err
    assert resolve(rid, "never") == 0
