"""A clerk's resolutions dropped under resolutions/<feed>/: validated, recorded, filed and reported like an export."""

from __future__ import annotations

import json
from typing import Any

import pytest

from programs_bridge.ledger.resolutions import Choice, Held, resolution_id
from programs_bridge.ledger.store import LedgerStore
from programs_bridge.local.demo import s3_event_via_sqs
from support.log_leaks import leaked

from .conftest import BUCKET, FEED, LEDGER, Stack

ANN, ANN_OPEN = "004521\t144\t08/15/2025\t101", "004521\t144\t08/15/2024\t101"
BO, BO_OPEN = "004522\t181\t08/15/2025\t101", ("004522\t181\t08/15/2024\t101", "004522\t181\t08/16/2024\t101")
SAME = Held(resolution_id(ANN), ANN, (ANN_OPEN,), 7, "20260901T021504Z-1f2e3d4c")
TWICE = Held(resolution_id(BO), BO, BO_OPEN, 8, "20260901T021504Z-1f2e3d4c")
UNKNOWN = resolution_id("nobody\t1\t01/01/2020\t1")


def drop_resolutions(stack: Stack, text: str | bytes, name: str = "decisions.csv") -> dict[str, Any]:
    key = f"resolutions/{FEED}/{name}"
    body = text.encode() if isinstance(text, str) else text
    response = stack.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return s3_event_via_sqs(BUCKET, key, dict(response), len(body))


@pytest.fixture
def held(stack: Stack) -> LedgerStore:
    """The rows held, and the open records they match in the ledger (a ``same`` must find its own there)."""
    from programs_bridge.ledger.commit import record_item
    from programs_bridge.ledger.model import decode_key, row_facts
    from programs_bridge.programs_txt.layout import STANDARD

    store = LedgerStore(LEDGER)
    for key in (ANN_OPEN, *BO_OPEN):
        student, program, start, site = decode_key(key)
        fields = [student, "", "Q", "Y", "", "03/04/2012", program, "", "", start, "", "", "", "", site]
        store.write_items([record_item(FEED, row_facts(fields, STANDARD), SAME.run_id, SAME.run_id)])
    store.put_held(FEED, [SAME, TWICE])
    stack.notices()
    return store


def test_valid_lines_are_recorded_and_every_bad_line_is_a_finding_with_its_line(
    stack: Stack, held: LedgerStore, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    csv = (
        "id,decision,note\n"
        f"{SAME.id},same,Ann Lee re-keyed in August\n"
        f"{UNKNOWN},new,\n"
        f"{TWICE.id},maybe,Bo Kim 2011-05-06\n"
        "004521,never,\n"
        f"{TWICE.id},same,\n"
    )
    event = drop_resolutions(stack, csv)
    stack.invoke(event)

    [report] = stack.reports()
    assert report["kind"] == "resolutions" and report["status"] == "resolutions_applied"
    assert report["resolutions"]["applied"] == 1 and report["resolutions"]["refused"] == 4
    assert report["resolutions"]["ids"] == [SAME.id]
    assert [(f["line"], f["code"]) for f in report["issues"]] == [
        (3, "unknown_id"), (4, "bad_decision"), (5, "bad_id"), (6, "ambiguous_same"),
    ]  # fmt: skip
    assert UNKNOWN not in report["issues"][0]["message"]  # an id's shape does not rule out a name: not quoted
    assert "was held with the id on this line" in report["issues"][0]["message"]
    [resolution] = held.resolutions(FEED)
    assert (resolution.id, resolution.choice, resolution.target_key) == (SAME.id, Choice.SAME, SAME.matches[0])
    assert resolution.by == "bucket:decisions.csv" and resolution.at == report["source"]["last_modified"]
    assert resolution.note == "Ann Lee re-keyed in August"

    # Filed like an export, reported next to the exports' reports, and nothing left in resolutions/.
    assert stack.keys(f"resolutions/{FEED}/") == []
    assert stack.keys(f"processed/{FEED}/") == [f"processed/{FEED}/{report['run_id']}-decisions.csv"]
    assert report["filed_as"] == f"processed/{FEED}/{report['run_id']}-decisions.csv"
    summary = stack.s3.get_object(Bucket=BUCKET, Key=f"reports/{FEED}/{report['run_id']}.md")["Body"].read().decode()
    assert "RESOLUTIONS_APPLIED" in summary and "| 4 | bad_decision |" in summary
    assert stack.notices() == [f"programs-bridge {FEED}: resolutions file applied, 4 line(s) refused"]
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [m["ResolutionsApplied"] for m in emf if "ResolutionsApplied" in m] == [[1.0]]
    assert [m["ResolutionLinesRefused"] for m in emf if "ResolutionLinesRefused" in m] == [[4.0]]

    # Nothing unchecked is quoted: not a note, not the decision as written, not a student ID in the id column.
    written = json.dumps(report) + summary
    for value in ("Ann Lee", "Bo Kim", "2011-05-06", "maybe", "004521"):
        assert value not in written, value
    assert leaked(stack.logs.texts, ["Ann", "Lee", "Bo", "Kim", "004521", "maybe", SAME.id]) == []

    # The same event again (a redelivery) is a no-op.
    stack.invoke(event)
    assert len(stack.reports()) == 1 and stack.notices() == []


def test_a_file_without_the_header_is_rejected_and_nothing_is_recorded(stack: Stack, held: LedgerStore) -> None:
    stack.invoke(drop_resolutions(stack, f"row,choice\n{SAME.id},new\n", name="oops.csv"))
    [report] = stack.reports()
    assert report["status"] == "rejected" and report["reason_code"] == "header"
    assert "id,decision,note" in report["reason"]
    assert held.resolutions(FEED) == []
    assert stack.keys(f"rejected/{FEED}/") == [f"rejected/{FEED}/{report['run_id']}-oops.csv"]
    assert stack.keys(f"resolutions/{FEED}/") == []
    assert stack.notices() == [f"programs-bridge {FEED}: resolutions rejected"]


def test_a_file_of_only_bad_lines_is_rejected(stack: Stack, held: LedgerStore) -> None:
    stack.invoke(drop_resolutions(stack, f"id,decision\n{UNKNOWN},new\n"))
    [report] = stack.reports()
    assert report["status"] == "rejected" and report["reason_code"] == "no_valid_line"
    assert [f["code"] for f in report["issues"]] == ["unknown_id"]
    assert held.resolutions(FEED) == []


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (f'id,decision,note\n{SAME.id},new,"she said so\n{TWICE.id},never,\n', "unreadable"),  # never closed
        (f'id,decision,note\n{SAME.id},new,"she said\nso"\n', "note_spans_lines"),  # closed a line later
        (f"id,decision,note\n{SAME.id},new,all good\x1b[2J\n", "note_unprintable"),  # clears a terminal
    ],
)
def test_an_unclosed_quote_in_a_note_never_swallows_the_lines_after_it_silently(
    stack: Stack, held: LedgerStore, text: str, code: str
) -> None:
    stack.invoke(drop_resolutions(stack, text))
    [report] = stack.reports()
    assert report["status"] == "rejected" and [f["code"] for f in report["issues"]] == [code]
    assert [f["line"] for f in report["issues"]] == [2] and held.resolutions(FEED) == []


def test_excels_empty_trailing_columns_are_no_reason_to_refuse_a_file(stack: Stack, held: LedgerStore) -> None:
    stack.invoke(drop_resolutions(stack, f"id,decision,note,,\n{SAME.id},new,checked,,\n"))
    [report] = stack.reports()
    assert report["status"] == "resolutions_applied" and [r.id for r in held.resolutions(FEED)] == [SAME.id]


def test_a_file_over_one_mib_is_refused_unread(stack: Stack, held: LedgerStore) -> None:
    big = "id,decision,note\n" + f"{SAME.id},new,{'x' * 400}\n" * 3000
    stack.invoke(drop_resolutions(stack, big, name="big.csv"))
    [report] = stack.reports()
    assert report["status"] == "rejected" and report["reason_code"] == "too_large"
    assert "1 MiB" in report["reason"] and held.resolutions(FEED) == []


def test_resolutions_are_recorded_before_the_exports_waiting_with_them(stack: Stack, held: LedgerStore) -> None:
    stack.drop("Student_Number,Last_Name,First_Name,DOB,ProgramID,Enter_Date,Exit_Date,SchoolID\n"
               "004522,Kim,Bo,5/6/2011,181,8/15/2025,,101\n", name="tonight.csv")  # fmt: skip
    result = stack.invoke(drop_resolutions(stack, f"id,decision,note\n{SAME.id},never,\n"))
    assert result == {"batchItemFailures": []}
    finished = [json.loads(t.split("\n", 1)[1]) for t in stack.logs.texts if t.startswith("run finished\n")]
    # (each log record reaches the watch once per logger it is attached to)
    assert list(dict.fromkeys(f.get("kind", "export") for f in finished)) == ["resolutions", "export"]
    assert {r["status"] for r in stack.reports()} == {"resolutions_applied", "delivered"}
    assert [r.choice for r in held.resolutions(FEED)] == [Choice.NEVER]


def test_an_id_decided_twice_differently_is_decided_by_neither_and_a_changed_decision_is_warned_of(
    stack: Stack, held: LedgerStore
) -> None:
    stack.invoke(drop_resolutions(stack, f"id,decision,note\n{SAME.id},same,\n", name="first.csv"))
    two_minds = f"id,decision,note\n{SAME.id},new,\n{TWICE.id},never,\n{SAME.id},never,\n{TWICE.id},never,\n"
    stack.invoke(drop_resolutions(stack, two_minds, name="second.csv"))
    report = stack.report_of("second.csv")
    assert [(f["line"], f["code"]) for f in report["issues"]] == [
        (2, "contradicting_id"), (4, "contradicting_id"), (5, "repeated_id"),
    ]  # fmt: skip
    assert report["resolutions"]["applied"] == 1 and report["resolutions"]["refused"] == 3
    assert {r.id: r.choice for r in held.resolutions(FEED)} == {SAME.id: Choice.SAME, TWICE.id: Choice.NEVER}

    stack.notices()
    stack.invoke(drop_resolutions(stack, f"id,decision,note\n{SAME.id},new,\n", name="third.csv"))
    assert stack.notices() == [f"programs-bridge {FEED}: resolutions file applied, 1 earlier decision(s) replaced"]
    report = stack.report_of("third.csv")
    assert report["status"] == "resolutions_applied" and report["resolutions"]["replaced"] == 1
    [issue] = report["issues"]
    assert issue["code"] == "decision_replaced" and issue["severity"] == "warning"
    assert f"row {SAME.id} was resolved 'same' before" in issue["message"]
    assert "1 of them replace a different decision" in report["reason"]
