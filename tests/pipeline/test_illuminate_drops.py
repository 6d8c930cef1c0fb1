"""A report of Illuminate's own records dropped under illuminate/<feed>/: it seeds a feed never seeded, and is
reconciled against the ledger of any other."""

from __future__ import annotations

import json
from typing import Any

import pytest

from programs_bridge.ledger.store import LedgerStore
from programs_bridge.local.demo import s3_event_via_sqs
from programs_bridge.programs_txt.layout import STANDARD
from support.log_leaks import leaked

from .conftest import BUCKET, FEED, LEDGER, Stack
from .test_first_night import HELD_BY_ILLUMINATE, TONIGHT, export, hold_unseeded

PROGRAMS_TXT = "\t".join(STANDARD.header) + "\n" + HELD_BY_ILLUMINATE + "\n"


def drop_report(stack: Stack, text: str, name: str = "programs-2024.txt") -> dict[str, Any]:
    key = f"illuminate/{FEED}/{name}"
    response = stack.s3.put_object(Bucket=BUCKET, Key=key, Body=text.encode())
    return s3_event_via_sqs(BUCKET, key, dict(response), len(text.encode()))


def test_a_report_dropped_on_an_unseeded_feed_seeds_it_and_the_next_export_is_planned_against_it(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    hold_unseeded(stack)
    stack.notices()
    capsys.readouterr()
    stack.invoke(drop_report(stack, PROGRAMS_TXT))
    [report] = stack.reports()
    assert report["kind"] == "illuminate" and report["status"] == "seeded"
    assert report["seed"]["counts"]["new"] == 1 and report["seed"]["already_seeded"] is False
    assert report["seed"]["run_id"].endswith("-seed-" + report["source"]["sha256"][:8])
    assert report["profile"] == "illuminate" and report["rows_read"] == 1
    assert stack.keys(f"illuminate/{FEED}/") == []
    assert stack.keys(f"processed/{FEED}/") == [f"processed/{FEED}/{report['run_id']}-programs-2024.txt"]
    assert stack.notices() == [f"programs-bridge {FEED}: Illuminate report seeded"]
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [m["FeedsSeeded"] for m in emf if "FeedsSeeded" in m] == [[1.0]]
    assert stack.delivered() is None

    stack.invoke(stack.drop(export(TONIGHT), name="tonight.csv"))
    tonight = stack.report_of("tonight.csv")
    assert tonight["status"] == "delivered"
    assert tonight["counts"]["exits"] == 1 and tonight["counts"]["new"] == 1  # the seeded record is exited
    assert "06/05/2026" in (stack.delivered() or "")
    assert leaked(stack.logs.texts, ["004521", "Lee", "Ann", "03/04/2012"]) == []


def test_a_report_and_an_export_dropped_together_seed_first(stack: Stack) -> None:
    hold_unseeded(stack)
    stack.drop(export(TONIGHT), name="tonight.csv")  # waiting in incoming/ when the report's event comes
    stack.invoke(drop_report(stack, PROGRAMS_TXT))
    assert stack.report_of("programs-2024.txt")["status"] == "seeded"
    assert stack.report_of("tonight.csv")["status"] == "delivered"


def test_a_report_of_a_feed_with_a_ledger_is_reconciled_and_an_exit_that_never_landed_gets_a_fix_row(
    stack: Stack,
) -> None:
    hold_unseeded(stack)
    stack.invoke(drop_report(stack, PROGRAMS_TXT))
    stack.invoke(stack.drop(export(TONIGHT), name="tonight.csv"))
    stack.notices()
    # Illuminate still shows Ann's plan open: tonight's exit never landed.
    stack.invoke(drop_report(stack, PROGRAMS_TXT, name="programs-2026.txt"))
    report = stack.report_of("programs-2026.txt")
    assert report["status"] == "reconciled"
    assert report["reconcile"]["counts"]["exits_not_landed"] == 1
    fix_key = f"reports/{FEED}/{report['run_id']}.fix.programs.txt"
    assert report["fix"]["key"] == fix_key and report["fix"]["rows"] == 1
    fix = stack.s3.get_object(Bucket=BUCKET, Key=fix_key)["Body"].read().decode()
    assert fix.splitlines()[1].split("\t")[10] == "06/05/2026"  # the exit, on the key Illuminate holds
    assert stack.notices() == [f"programs-bridge {FEED}: Illuminate report reconciled"]


def test_a_report_of_key_columns_alone_says_why_its_exits_that_never_landed_have_no_fix_row(stack: Stack) -> None:
    hold_unseeded(stack)
    stack.invoke(drop_report(stack, PROGRAMS_TXT))
    stack.invoke(stack.drop(export(TONIGHT), name="tonight.csv"))
    keys_only = "Local Student ID,Program Code,Start Date,End Date,School ID\n004521,144,2024-08-15,,101\n"
    stack.invoke(drop_report(stack, keys_only, name="keys-only.csv"))
    report = stack.report_of("keys-only.csv")
    assert report["status"] == "reconciled" and report["reconcile"]["counts"]["exits_fixable"] == 1
    assert report["fix"]["key"] is None and report["fix"]["skipped_no_name_or_birth_date"] == 1
    assert not [k for k in stack.keys(f"reports/{FEED}/") if k.endswith(".fix.programs.txt")]  # no empty file
    assert "1 left out because the report has no names or birth date for them" in report["reason"]


def test_a_file_that_is_no_report_of_program_records_is_rejected(stack: Stack) -> None:
    stack.invoke(drop_report(stack, "Course,Section,Teacher\nMATH1,2,Smith\n", name="roster.csv"))
    report = stack.report_of("roster.csv")
    assert report["status"] == "rejected" and stack.keys(f"rejected/{FEED}/")
    assert stack.notices()[-1] == f"programs-bridge {FEED}: Illuminate report rejected"


def test_a_feed_whose_profile_is_illuminate_seeds_from_illuminates_report_shape_too(stack: Stack) -> None:
    """The feed's profile describes its exports; the report's own shape is detected."""
    stack.put_config(stack.config().replace('profile = "powerschool"', 'profile = "illuminate"'))
    report = "Local Student ID,Program Code,Start Date,End Date,School ID\n004521,144,2024-08-15,,101\n"
    stack.invoke(drop_report(stack, report, name="custom-report.csv"))
    seeded = stack.report_of("custom-report.csv")
    assert seeded["status"] == "seeded" and seeded["profile"] == "illuminate-report"


def test_a_report_that_cannot_be_processed_is_notified_as_a_report_not_an_export(stack: Stack) -> None:
    stack.s3.delete_object(Bucket=BUCKET, Key=f"config/{FEED}.toml")  # a configuration problem: the run fails
    stack.notices()
    result = stack.invoke(drop_report(stack, PROGRAMS_TXT))
    assert len(result["batchItemFailures"]) == 1
    assert stack.notices() == [f"programs-bridge {FEED}: Illuminate report failed"]


def test_a_report_too_big_for_one_invocation_seeds_in_two_and_counts_as_one_seed(stack: Stack) -> None:
    from programs_bridge.pipeline.handler import lambda_handler

    from .test_faults import DwindlingContext
    from .test_handler import ledger_records

    hold_unseeded(stack)
    rows = [f"{900000000 + n}\t\t\t\t\t\t144\t\t\t08/15/2024\t\t2024-2025\t\t\t101" for n in range(3000)]
    text = "\t".join(STANDARD.header) + "\n" + "\n".join(rows) + "\n"
    # About 80 write requests of 25 fit before the reserve: 3,000 records need a second invocation.
    assert lambda_handler(drop_report(stack, text), DwindlingContext()) == {"batchItemFailures": []}
    assert stack.reports() == []  # not finished: no report yet
    first_share = ledger_records()
    assert 0 < first_share < 3000
    assert stack.keys(f"illuminate/{FEED}/")  # not filed until seeded

    continuation = stack.queued()  # put back on the queue at once
    assert continuation is not None and stack.queued() is None
    assert stack.invoke(continuation) == {"batchItemFailures": []}
    [report] = stack.reports()
    assert report["status"] == "seeded" and report["seed"]["complete"] is True
    assert report["seed"]["counts"]["new"] == 3000 and report["seed"]["counts"]["unchanged"] == 0
    assert report["seed"]["ledger_write"]["items"] == 3000 - first_share
    assert ledger_records() == 3000
    assert stack.keys(f"illuminate/{FEED}/") == [] and stack.queued() is None
    store = LedgerStore(LEDGER)
    assert store.head(FEED) == report["seed"]["run_id"]
    assert store.run_status(FEED, report["seed"]["run_id"]) == "committed"
