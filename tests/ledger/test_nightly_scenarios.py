"""Nightly files against a real ledger table on the moto server: what the district would see happen."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from programs_bridge.ledger.commit import commit, commit_plan
from programs_bridge.ledger.model import Decision, ExportKind, Policy
from programs_bridge.ledger.plan import make_plan
from programs_bridge.ledger.store import StaleLedgerError
from programs_bridge.programs_txt.layout import STANDARD, Field

from .harness import Ledger, enrolment, numbered

KEY_NAMES = ("import_student_id", "program_id", "program_start_date", "site_id")


def key(*parts: str) -> dict[str, str]:
    return dict(zip(KEY_NAMES, parts, strict=True))


def attr(item: dict[str, Any] | None, name: str) -> str:
    assert item is not None
    value: str = item[name]["S"]
    return value


def test_enrolment_is_new_sent_and_recorded_open(ledger: Ledger) -> None:
    night = ledger.run([enrolment("004521", "144", "08/15/2025"), enrolment("004522", "127", "08/15/2025")])
    assert night.counts["new"] == 2
    assert len(night.sent) == 2
    record = ledger.record(("004521", "144", "08/15/2025", "12"))
    assert attr(record, "state") == "open"
    assert attr(record, "first_run") == attr(record, "last_run") == "run-001"


def test_exit_with_the_matching_key_closes_the_record(ledger: Ledger) -> None:
    ledger.run([enrolment("004521", "144", "08/15/2025")])
    night = ledger.run([enrolment("004521", "144", "08/15/2025", end="01/09/2026", exit_code="230")])
    assert night.counts["exit"] == 1
    assert night.counts["duplicate_risk"] == 0
    record = ledger.record(("004521", "144", "08/15/2025", "12"))
    assert attr(record, "state") == "closed"
    assert attr(record, "end_date") == "01/09/2026"
    assert (attr(record, "first_run"), attr(record, "last_run")) == ("run-001", "run-002")


def test_changed_other_fields_are_an_update_and_identical_rows_unchanged(ledger: Ledger) -> None:
    ledger.run([enrolment("1", "144", "08/15/2025"), enrolment("2", "144", "08/15/2025")])
    night = ledger.run([enrolment("1", "144", "08/15/2025", year="2026-2027"), enrolment("2", "144", "08/15/2025")])
    assert (night.counts["updated"], night.counts["unchanged"]) == (1, 1)
    assert night.committed is not None and night.committed.records_written == 1


@pytest.mark.parametrize(
    ("first", "second", "differs"),
    [
        pytest.param(
            ("004521", "08/15/2025", "12"), ("004521", "08/18/2025", "12"), ["program_start_date"], id="start-re-keyed"
        ),
        pytest.param(("004521", "08/15/2025", "12"), ("004521", "08/15/2025", "14"), ["site_id"], id="site-changed"),
        pytest.param(
            ("004521", "08/15/2025", "12"),
            ("4521", "08/15/2025", "12"),
            ["import_student_id"],
            id="excel-stripped-zero",
        ),
    ],
)
def test_an_exit_that_misses_the_open_record_is_a_duplicate_risk_naming_that_record(
    ledger: Ledger, first: tuple[str, str, str], second: tuple[str, str, str], differs: list[str]
) -> None:
    ledger.run([enrolment(first[0], "144", first[1], first[2])])
    night = ledger.run([enrolment(second[0], "144", second[1], second[2], end="01/09/2026")])

    assert night.counts["duplicate_risk"] == 1
    (risk,) = night.report["duplicate_risks"]
    assert risk["line"] == 2
    assert risk["key"] == key(second[0], "144", second[1], second[2])
    assert risk["open_records"] == [{"key": key(first[0], "144", first[1], first[2]), "differs": differs}]
    # held by default: not sent, not recorded, and the open record is reported as the risk, not as missing
    assert risk["action"] == "held"
    assert night.sent == []
    assert night.counts["missing"] == 0
    assert ledger.record((second[0], "144", second[1], second[2])) is None
    assert attr(ledger.record((first[0], "144", first[1], first[2])), "state") == "open"


def test_a_transfer_done_right_is_an_exit_and_a_new_record_not_a_duplicate_risk(ledger: Ledger) -> None:
    ledger.run([enrolment("7", "144", "08/15/2025", "12")])
    # the new key comes first in the file: the exit further down must still count
    night = ledger.run(
        [enrolment("7", "144", "01/12/2026", "14"), enrolment("7", "144", "08/15/2025", "12", end="01/09/2026")]
    )
    assert (night.counts["new"], night.counts["exit"], night.counts["duplicate_risk"]) == (1, 1, 0)
    decisions = [night.plan.classification.decision(row) for row in range(2)]
    assert decisions == [Decision.NEW, Decision.EXIT]
    assert len(night.sent) == 2
    assert attr(ledger.record(("7", "144", "01/12/2026", "14")), "state") == "open"
    assert attr(ledger.record(("7", "144", "08/15/2025", "12")), "state") == "closed"


def test_reentry_after_exit_reopens_the_record(ledger: Ledger) -> None:
    ledger.run([enrolment("9", "101", "08/15/2025")])
    ledger.run([enrolment("9", "101", "08/15/2025", end="10/01/2025")])
    night = ledger.run([enrolment("9", "101", "08/15/2025")])
    assert night.counts["reopen"] == 1
    record = ledger.record(("9", "101", "08/15/2025", "12"))
    assert attr(record, "state") == "open"
    assert attr(record, "end_date") == ""


def test_a_record_that_vanishes_from_a_full_export_is_reported_missing_but_not_from_a_delta(
    ledger: Ledger,
) -> None:
    ledger.run([enrolment("1", "144", "08/15/2025"), enrolment("2", "144", "08/15/2025")])
    delta = ledger.run([enrolment("1", "144", "08/15/2025")], kind=ExportKind.DELTA, deliver=False)
    full = ledger.run([enrolment("1", "144", "08/15/2025")])

    assert delta.counts["missing"] == 0
    assert full.counts["missing"] == 1
    assert full.report["missing"] == [{"key": key("2", "144", "08/15/2025", "12")}]
    # reported, never invented: no exit row is sent and the record stays open
    assert len(full.sent) == 1
    assert attr(ledger.record(("2", "144", "08/15/2025", "12")), "state") == "open"


def test_an_exited_record_that_vanishes_is_not_missing(ledger: Ledger) -> None:
    ledger.run([enrolment("1", "144", "08/15/2025", end="09/01/2025")])
    assert ledger.run([]).counts["missing"] == 0


def test_the_same_file_twice_writes_no_record_the_second_time(ledger: Ledger) -> None:
    rows = [enrolment(str(n), "144", "08/15/2025") for n in range(40)]
    first = ledger.run(rows)
    second = ledger.run(rows)
    assert first.committed is not None and first.committed.records_written == 40
    assert second.counts["unchanged"] == 40
    assert second.committed is not None and second.committed.records_written == 0
    assert second.committed.usage.requests == 0


def test_committing_the_same_run_twice_changes_nothing(ledger: Ledger) -> None:
    rows = numbered([enrolment(str(n), "144", "08/15/2025") for n in range(30)])
    plan = make_plan(ledger.store, iter(rows), STANDARD, feed=ledger.feed)
    run = ledger.run_record("run-x", plan)
    commit_plan(ledger.store, plan, run, iter(rows))
    after_first = ledger.items()
    again = commit_plan(ledger.store, plan, run, iter(rows))
    assert again.already_committed
    assert again.records_written == 0
    assert ledger.items() == after_first


def test_a_crash_half_way_through_a_commit_then_a_retry_ends_like_one_clean_commit(ledger: Ledger) -> None:
    ledger.run([enrolment(str(n), "144", "08/15/2025") for n in range(20)])
    tonight = numbered(
        [enrolment(str(n), "144", "08/15/2025", end="01/09/2026") for n in range(10)]
        + [enrolment(str(n), "144", "08/15/2025") for n in range(10, 20)]
        + [enrolment(str(n), "127", "08/15/2025") for n in range(40)]
    )
    plan = make_plan(ledger.store, iter(tonight), STANDARD, feed=ledger.feed)
    run = ledger.run_record("run-crash", plan)
    # one clean commit, on a copy of the ledger, for comparison
    clean_feed = Ledger(ledger.store, feed="district-a-clean")
    clean_feed.run([enrolment(str(n), "144", "08/15/2025") for n in range(20)], run_id="run-001")
    clean_plan = make_plan(ledger.store, iter(tonight), STANDARD, feed=clean_feed.feed)
    commit_plan(ledger.store, clean_plan, run, iter(tonight))

    class Crash(Exception):
        pass

    real_write = ledger.store.write_items

    def crash_after_first_request(items: Any, stop: Any = None) -> Any:
        iterator = iter(items)
        real_write([next(iterator) for _ in range(25)])
        raise Crash

    ledger.store.write_items = crash_after_first_request  # type: ignore[method-assign]
    with pytest.raises(Crash):
        commit_plan(ledger.store, plan, run, iter(tonight))
    ledger.store.write_items = real_write  # type: ignore[method-assign]
    assert ledger.store.run_status(ledger.feed, "run-crash") == "committing"

    # the retry starts from the delivered rows and a fresh read of the half-written ledger
    retry = commit(ledger.store, run, plan.rows_to_send(iter(tonight)), STANDARD, feed=ledger.feed)
    assert retry.usage.items == 50 - 25
    assert retry.records_written == 50  # the first attempt's 25 are counted from the ledger itself

    def without_feed(feed_ledger: Ledger) -> list[dict[str, Any]]:
        prefix = f"{feed_ledger.feed}#"
        return [
            {**item, "pk": {"S": item["pk"]["S"].removeprefix(prefix)}}
            for item in feed_ledger.items()
            if item["pk"]["S"].startswith(prefix)
        ]

    assert without_feed(ledger) == without_feed(clean_feed)
    assert ledger.store.run_status(ledger.feed, "run-crash") == "committed"


def test_policy_send_delivers_the_risky_row_and_records_it(ledger: Ledger) -> None:
    ledger.run([enrolment("5", "144", "08/15/2025")])
    night = ledger.run([enrolment("5", "144", "08/18/2025", end="01/09/2026")], policy=Policy.SEND)
    assert night.report["duplicate_risks"][0]["action"] == "sent"
    assert [fields for _, fields in night.sent] == [enrolment("5", "144", "08/18/2025", end="01/09/2026")]
    assert attr(ledger.record(("5", "144", "08/18/2025", "12")), "state") == "closed"
    assert attr(ledger.record(("5", "144", "08/15/2025", "12")), "state") == "open"


def test_policy_repair_rekeys_the_exit_onto_the_open_record(ledger: Ledger) -> None:
    ledger.run([enrolment("004521", "144", "08/15/2025", "12")])
    night = ledger.run([enrolment("4521", "144", "08/18/2025", "14", end="01/09/2026")], policy=Policy.REPAIR)

    (risk,) = night.report["duplicate_risks"]
    assert risk["action"] == "repaired"
    assert risk["repaired_to"] == key("004521", "144", "08/15/2025", "12")
    assert risk["open_records"][0]["differs"] == ["import_student_id", "program_start_date", "site_id"]
    ((line, fields),) = night.sent
    assert line == 2
    assert fields == enrolment("004521", "144", "08/15/2025", "12", end="01/09/2026")
    record = ledger.record(("004521", "144", "08/15/2025", "12"))
    assert (attr(record, "state"), attr(record, "end_date")) == ("closed", "01/09/2026")
    assert ledger.record(("4521", "144", "08/18/2025", "14")) is None


def test_policy_repair_holds_a_row_that_two_open_records_could_mean(ledger: Ledger) -> None:
    ledger.run([enrolment("3", "144", "08/15/2025", "12"), enrolment("3", "144", "08/15/2025", "14")])
    night = ledger.run(
        [
            enrolment("3", "144", "08/15/2025", "12"),
            enrolment("3", "144", "08/15/2025", "14"),
            enrolment("3", "144", "08/20/2025", "16", end="01/09/2026"),
        ],
        policy=Policy.REPAIR,
    )
    (risk,) = night.report["duplicate_risks"]
    assert risk["action"] == "held"
    assert "2 open records match" in risk["reason"]
    assert len(risk["open_records"]) == 2
    assert len(night.sent) == 2


def test_repair_writes_the_start_date_where_the_layout_keeps_it() -> None:
    from programs_bridge.ledger.model import rekey
    from programs_bridge.programs_txt.layout import custom_layout, record_key

    eligibility_only = custom_layout(
        [f.value for f in STANDARD.fields if f not in (Field.PROGRAM_START_DATE, Field.PROGRAM_END_DATE)]
    )
    row = ["1"] * len(eligibility_only.fields)
    target = ("004521", "144", "08/15/2025", "12")
    assert record_key(rekey(row, eligibility_only, target), eligibility_only) == target


def test_a_plan_made_before_another_run_committed_is_refused(ledger: Ledger) -> None:
    ledger.run([enrolment("1", "144", "08/15/2025")])
    rows = numbered([enrolment("1", "144", "08/15/2025", end="01/09/2026")])
    stale = make_plan(ledger.store, iter(rows), STANDARD, feed=ledger.feed)
    ledger.run([enrolment("1", "144", "08/15/2025", year="2026-2027")])
    with pytest.raises(StaleLedgerError):
        commit_plan(ledger.store, stale, ledger.run_record("run-stale"), iter(rows))
    assert attr(ledger.record(("1", "144", "08/15/2025", "12")), "state") == "open"


def test_applying_a_plan_to_other_rows_is_refused(ledger: Ledger) -> None:
    from programs_bridge.ledger.store import LedgerError

    plan = make_plan(ledger.store, iter(numbered([enrolment("1", "144", "08/15/2025")])), STANDARD, feed=ledger.feed)
    with pytest.raises(LedgerError):
        list(plan.rows_to_send(iter(numbered([enrolment("1", "144", "08/15/2025")] * 2))))


def test_feeds_keep_separate_ledgers(ledger: Ledger) -> None:
    ledger.run([enrolment("1", "144", "08/15/2025")])
    other = Ledger(ledger.store, feed="district-b")
    assert other.run([enrolment("1", "144", "08/15/2025")]).counts["new"] == 1


def test_the_report_is_json_and_counts_every_class_and_the_reads(ledger: Ledger) -> None:
    ledger.run([enrolment(str(n), "144", "08/15/2025") for n in range(50)])
    report = ledger.run([enrolment(str(n), "144", "08/15/2025") for n in range(50)]).report
    assert json.loads(json.dumps(report)) == report
    assert set(report["counts"]) == {"new", "unchanged", "updated", "exit", "duplicate_risk", "reopen", "missing"}
    read = report["ledger_read"]
    assert read["items"] == 50
    assert read["requests"] >= 17  # the feed head, then at least one page per shard
    assert 0 < read["estimated_units"] < read["per_row_read_units"]
    assert report["ledger_records"] == 50
    assert report["ledger_head_run"] == "run-001"


def test_logs_carry_counts_but_never_student_ids(ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="programs_bridge")
    ledger.run([enrolment("98765432", "144", "08/15/2025")])
    ledger.run([enrolment("98765432", "144", "08/19/2025", end="01/09/2026")])
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("programs_bridge"))
    assert "duplicate_risk=1" in ours
    assert "98765432" not in ours
