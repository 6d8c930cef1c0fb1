"""The first night interlock: a feed whose ledger knows nothing does not deliver its first export blindly."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from programs_bridge.cli.main import main
from programs_bridge.programs_txt.layout import STANDARD

from .conftest import FEED, LEDGER, Stack

HEADER = "Student_Number,Last_Name,First_Name,DOB,ProgramID,Enter_Date,Exit_Date,SchoolID"
# What Illuminate already holds (uploaded by hand): Ann's 504 plan since 8/15/2024, at site 101.
HELD_BY_ILLUMINATE = "004521\t\tLee\tAnn\t\t03/04/2012\t144\t\t\t08/15/2024\t\t2024-2025\t\t\t101"
# Tonight the SIS exits her under the same key, and lists Bo's new enrolment.
TONIGHT = ["004521,Lee,Ann,3/4/2012,144,8/15/2024,6/5/2026,101", "004522,Kim,Bo,5/6/2011,181,8/15/2025,,101"]


def export(rows: list[str]) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def hold_unseeded(stack: Stack) -> None:
    stack.put_config(stack.config().replace('unseeded = "send"\n', ""))


def test_an_unseeded_feeds_first_export_waits_for_a_seed_and_goes_through_after_it(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hold_unseeded(stack)
    stack.notices()
    capsys.readouterr()
    stack.invoke(stack.drop(export(TONIGHT), name="first.csv"))
    report = stack.report_of("first.csv")
    assert report["status"] == "needs_seed" and report["reason_code"] == "needs_seed"
    assert "programs-bridge ledger seed" in report["reason"] and 'unseeded = "send"' in report["reason"]
    assert stack.delivered() is None
    assert report["counts"]["rows_read"] == 2 and report["counts"]["rows_sent"] == 0
    assert stack.notices() == [f"programs-bridge {FEED}: export needs_seed"]
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [m["ExportsAwaitingSeed"] for m in emf if "ExportsAwaitingSeed" in m] == [[1.0]]
    assert any(k.endswith("first.csv") for k in stack.keys(f"processed/{FEED}/"))
    records = [i for i in boto3.client("dynamodb").scan(TableName=LEDGER)["Items"] if "#records#" in i["pk"]["S"]]
    assert records == []  # nothing committed

    # The clerk seeds the feed from what Illuminate holds, then drops the export again.
    uploaded = tmp_path / "programs-2024.txt"
    uploaded.write_text("\t".join(STANDARD.header) + "\n" + HELD_BY_ILLUMINATE + "\n", encoding="utf-8")
    seed = ["ledger", "seed", str(uploaded), "--table", LEDGER, "--feed", FEED, "--taken", "2025-06-30"]
    assert main(seed) == 0
    stack.invoke(stack.drop(export(TONIGHT), name="again.csv"))
    again = stack.report_of("again.csv")
    assert again["status"] == "delivered"
    assert again["counts"]["exits"] == 1 and again["counts"]["new"] == 1  # the seeded record is exited
    assert "06/05/2026" in (stack.delivered() or "")


def test_a_feed_new_to_illuminate_says_so_and_its_first_night_is_sent(stack: Stack) -> None:
    stack.put_config(stack.config())  # unseeded = "send"
    stack.invoke(stack.drop(export(TONIGHT)))
    [report] = stack.reports()
    assert report["status"] == "delivered" and report["counts"]["new"] == 2


def test_a_feed_with_records_in_its_ledger_is_not_held_as_unseeded(stack: Stack) -> None:
    stack.put_config(stack.config())
    stack.invoke(stack.drop(export(TONIGHT[1:])))
    hold_unseeded(stack)
    stack.invoke(stack.drop(export(TONIGHT)))
    assert [r["status"] for r in sorted(stack.reports(), key=lambda r: r["source"]["key"])] == ["delivered"] * 2


def test_a_seed_taken_back_leaves_the_feed_waiting_for_a_seed_again(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A seed from the wrong report, undone with ``ledger unseed``: the next export is held as on the first
    night, not checked against nothing and sent."""
    hold_unseeded(stack)
    wrong = tmp_path / "other-feed.txt"
    wrong.write_text("\t".join(STANDARD.header) + "\n" + HELD_BY_ILLUMINATE.replace("004521", "009999") + "\n",
                     encoding="utf-8")  # fmt: skip
    capsys.readouterr()
    assert main(["ledger", "seed", str(wrong), "--table", LEDGER, "--feed", FEED, "--taken", "2025-06-30"]) == 0
    run_id = capsys.readouterr().err.split("seeded as run ")[1].split(":")[0]
    assert main(["ledger", "unseed", run_id, "--table", LEDGER, "--feed", FEED]) == 0
    stack.invoke(stack.drop(export(TONIGHT), name="after-undo.csv"))
    report = stack.report_of("after-undo.csv")
    assert report["status"] == "needs_seed" and stack.delivered() is None


def test_a_short_export_after_a_seed_is_held_with_advice_for_a_seeded_feed(stack: Stack, tmp_path: Path) -> None:
    """Seeded with 120 open records, the first export lists 2: held, and the reason says why after a seed
    (Illuminate holds more than the export lists), not that an export job stopped half-way."""
    stack.put_config('export = "full"\n' + stack.config())
    held = [f"{5000 + n:06d}\t\tLee\tAnn\t\t03/04/2012\t144\t\t\t08/15/2024\t\t2024-2025\t\t\t101" for n in range(120)]
    uploaded = tmp_path / "programs-2024.txt"
    uploaded.write_text("\t".join(STANDARD.header) + "\n" + "\n".join(held) + "\n", encoding="utf-8")
    assert main(["ledger", "seed", str(uploaded), "--table", LEDGER, "--feed", FEED, "--taken", "2025-06-30"]) == 0
    stack.invoke(stack.drop(export(TONIGHT), name="short.csv"))
    report = stack.report_of("short.csv")
    assert report["status"] == "held" and report["reason_code"] == "export_shrunken"
    assert report["shrink_guard"]["compared_with"] == "seed" and report["shrink_guard"]["listed_before"] == 120
    assert "first full export since the feed was seeded" in report["reason"]
    assert "open_not_exported" in report["reason"] and "stopped half-way" not in report["reason"]
    assert stack.delivered() is None


def test_a_seed_cut_short_holds_the_feed_until_it_is_finished(stack: Stack) -> None:
    """Ctrl-C or a crash part-way through a seed leaves its run holding the feed head, uncommitted: an export
    checked against the half-taught ledger would miss the rest of Illuminate's records, so it is held
    (even for a feed that says Illuminate is empty) until the same seed is run to its end."""
    from programs_bridge.ledger.seed import seed
    from programs_bridge.ledger.store import LedgerStore, RunRecord

    stack.put_config(stack.config())  # unseeded = "send": the seed in progress says otherwise
    fields = HELD_BY_ILLUMINATE.split("\t")
    record = RunRecord("20250630T000000Z-seed-1a2b3c4d", "programs-2024.txt", "", "0" * 64, "", {})
    store = LedgerStore(LEDGER)
    cut = seed(store, iter([(2, fields)]), STANDARD, feed=FEED, run=record, stop=lambda: True)
    assert not cut.complete
    stack.invoke(stack.drop(export(TONIGHT), name="first.csv"))
    report = stack.report_of("first.csv")
    assert report["status"] == "needs_seed" and stack.delivered() is None
    assert f"the seed {record.run_id} of feed {FEED!r} did not finish" in report["reason"]
    assert "seed the same report again to finish it" in report["reason"]

    assert seed(store, iter([(2, fields)]), STANDARD, feed=FEED, run=record).complete
    stack.invoke(stack.drop(export(TONIGHT), name="again.csv"))
    again = stack.report_of("again.csv")
    assert again["status"] == "delivered" and again["counts"]["exits"] == 1


def test_after_an_undo_exports_wait_until_the_other_seeds_are_seeded_again(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two seeds both list Ann's record; the first wrote it, so undoing the first takes it out and the second
    is marked to be seeded again.  Until it is, the ledger lacks a record Illuminate holds: tonight's export
    (her exit) is held, naming that seed, not checked against the gap and sent; seeded again, it goes."""
    stack.put_config(stack.config())  # unseeded = "send": nor does that let it through
    header = "\t".join(STANDARD.header) + "\n"
    first, later = tmp_path / "programs-2024.txt", tmp_path / "programs-2025.txt"
    first.write_text(header + HELD_BY_ILLUMINATE + "\n", encoding="utf-8")
    other = HELD_BY_ILLUMINATE.replace("004521", "004530")
    later.write_text(header + HELD_BY_ILLUMINATE + "\n" + other + "\n", encoding="utf-8")
    capsys.readouterr()

    def seeded(report: Path, taken: str) -> str:
        assert main(["ledger", "seed", str(report), "--table", LEDGER, "--feed", FEED, "--taken", taken]) == 0
        return capsys.readouterr().err.split("seeded as run ")[1].split(":")[0]

    first_run, later_run = seeded(first, "2025-06-30"), seeded(later, "2025-09-30")
    assert main(["ledger", "unseed", first_run, "--table", LEDGER, "--feed", FEED]) == 0
    stack.invoke(stack.drop(export(TONIGHT), name="after-undo.csv"))
    report = stack.report_of("after-undo.csv")
    assert report["status"] == "needs_seed" and stack.delivered() is None
    assert report["ledger"]["ledger_seeds_to_repeat"] == [later_run]
    assert later_run in report["reason"] and "seed each of those reports again" in report["reason"]
    capsys.readouterr()
    tonight = tmp_path / "tonight.csv"
    tonight.write_text(export(TONIGHT), encoding="utf-8")
    assert main(["plan", str(tonight), "--table", LEDGER, "--feed", FEED, "--export", "delta"]) == 1
    assert f"seeds to repeat: a seed was undone and took out records that {later_run}" in capsys.readouterr().err

    assert seeded(later, "2025-09-30") == later_run  # seeded again: Ann's record is back
    stack.invoke(stack.drop(export(TONIGHT), name="again.csv"))
    again = stack.report_of("again.csv")
    assert again["status"] == "delivered" and again["counts"]["exits"] == 1
