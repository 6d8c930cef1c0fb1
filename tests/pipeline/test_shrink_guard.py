"""The shrink guard in the pipeline: a full export that stopped half-way is held whole, and the next complete
one goes through as if nothing had happened."""

from __future__ import annotations

import json

import boto3
import pytest

from .conftest import FEED, LEDGER, Stack

HEADER = "Student_Number,Last_Name,First_Name,DOB,ProgramID,Enter_Date,Exit_Date,SchoolID"


def rows(count: int, start: int = 0) -> list[str]:
    """``count`` open 504 enrolments of synthetic students, numbered from ``start``."""
    return [f"{970000000 + n},Family{n},Given{n},3/4/2012,144,8/15/2025,,101" for n in range(start, start + count)]


def export(lines: list[str]) -> str:
    return "\n".join([HEADER, *lines]) + "\n"


def ledger_items() -> list[dict[str, object]]:
    """The ledger's records, head and runs (not the pipeline's journal, which shares the table)."""
    items = boto3.client("dynamodb").scan(TableName=LEDGER, ConsistentRead=True)["Items"]
    return [item for item in items if not item["pk"]["S"].endswith("#pipeline")]


def newest(stack: Stack) -> dict[str, object]:
    return max(stack.reports(), key=lambda r: r["source"]["key"])


def emitted(out: str, metric: str) -> list[float]:
    """The values of one metric in the EMF lines a run printed (Powertools writes them to stdout)."""
    values = []
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            document = json.loads(line)
            if metric in document:
                values.append(document[metric][0] if isinstance(document[metric], list) else document[metric])
    return values


def test_a_truncated_full_export_is_held_whole_and_the_next_complete_one_goes_through(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.put_config('export = "full"\n' + stack.config())
    stack.invoke(stack.drop(export(rows(300))))
    first_delivery, ledger_before = stack.delivered(), ledger_items()
    stack.notices()
    capsys.readouterr()

    # The SIS job stopped half-way: 140 valid rows and one real exit among them.
    truncated = rows(140)
    truncated[0] = truncated[0].replace(",8/15/2025,,", ",8/15/2025,6/5/2026,")
    stack.invoke(stack.drop(export(truncated), name="export 02 truncated.csv"))
    held = stack.report_of("export 02 truncated.csv")
    assert held["status"] == "held" and held["reason_code"] == "export_shrunken"
    assert "leaves out 160 of the 300 open records" in held["reason"]
    assert "drop a complete export" in held["reason"] and "config/district.toml" in held["reason"]
    guard = held["shrink_guard"]
    assert (guard["fires"], guard["open_records"], guard["missing"], guard["dropped"]) == (True, 300, 160, 160)
    assert held["counts"]["rows_sent"] == 0 and held["counts"]["missing"] == 160 and held["counts"]["exits"] == 1
    assert "delivery" not in held and "sent" not in held
    assert stack.delivered() == first_delivery  # nothing reached the server, not even the one real exit
    assert ledger_items() == ledger_before  # nothing committed: the next night is planned as before
    assert any(k.endswith("export 02 truncated.csv") for k in stack.keys(f"processed/{FEED}/"))
    assert stack.keys(f"incoming/{FEED}/") == []
    [notice] = stack.notices()
    assert notice == f"programs-bridge {FEED}: export held"
    assert emitted(capsys.readouterr().out, "ShrunkenExportsHeld") == [1]
    summary = stack.s3.get_object(Bucket="district-exports", Key=held_markdown(held))["Body"].read().decode()
    assert "HELD" in summary and "- shrink guard: this full export leaves out 160" in summary

    # The next night's export is complete again, with the exit: delivered, nothing held, the exit sent.
    complete = rows(300)
    complete[0] = truncated[0]
    stack.invoke(stack.drop(export(complete)))
    night3 = newest(stack)
    assert night3["status"] == "delivered" and not night3["shrink_guard"]["fires"]
    assert night3["counts"]["exits"] == 1 and night3["counts"]["missing"] == 0
    assert "06/05/2026" in (stack.delivered() or "")


def held_markdown(report: dict[str, object]) -> str:
    return f"reports/{FEED}/{report['run_id']}.md"


@pytest.mark.parametrize(
    ("settings", "why"),
    [
        ('export = "delta"\n', "delta export"),
        ("[shrink_guard]\nmax_missing_share = 0.6\n", "within the guard's limits"),
        ("[shrink_guard]\nenabled = false\n", "turned off"),
    ],
)
def test_a_delta_export_a_lenient_share_or_a_disabled_guard_delivers_the_short_export(
    stack: Stack, settings: str, why: str
) -> None:
    top, _, table = settings.partition("[")
    stack.put_config(top + stack.config() + ("[" + table if table else ""))
    stack.invoke(stack.drop(export(rows(300))))
    stack.invoke(stack.drop(export(rows(150))))
    report = newest(stack)
    assert report["status"] == "delivered" and report["counts"]["rows_sent"] == 150
    assert not report["shrink_guard"]["fires"] and why in report["shrink_guard"]["summary"]


def test_a_small_feed_is_never_held(stack: Stack) -> None:
    """40 of 60 records gone is two thirds, but 50 or fewer missing records never hold a feed."""
    stack.put_config(stack.config())
    stack.invoke(stack.drop(export(rows(60))))
    stack.invoke(stack.drop(export(rows(20))))
    report = newest(stack)
    assert report["status"] == "delivered" and report["counts"]["missing"] == 40


def test_after_a_shrink_let_through_once_the_same_short_export_is_normal(stack: Stack) -> None:
    """A school closed: the clerk turns the guard off for one night.  The 150 records stay open in the
    ledger (missing is never an exit), and the guard does not count them again on the nights after."""
    config = stack.config()
    stack.put_config(config)
    stack.invoke(stack.drop(export(rows(300))))
    stack.put_config(config + "[shrink_guard]\nenabled = false\n")
    stack.invoke(stack.drop(export(rows(150))))
    stack.put_config(config)
    stack.invoke(stack.drop(export(rows(150) + rows(1, start=500))))
    report = newest(stack)
    assert report["status"] == "delivered"
    guard = report["shrink_guard"]
    assert (guard["open_records"], guard["previously_missing"], guard["dropped"]) == (300, 150, 0)
    assert report["counts"]["new"] == 1
