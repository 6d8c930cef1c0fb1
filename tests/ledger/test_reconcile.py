"""Reconciling Illuminate's own records with the ledger: the four kinds of finding, and the fix file's round trip."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conftest import PERSONAL_VALUES
from programs_bridge.convert.engine import ConvertOptions, Status, convert_export, converted_rows
from programs_bridge.ledger.model import Decision, ExportKind, Row, encode_key, row_facts
from programs_bridge.ledger.plan import make_plan
from programs_bridge.ledger.reconcile import FixCounts, Reconciliation, exit_row, fix_rows, reconcile
from programs_bridge.ledger.seed import seed, seed_run_id
from programs_bridge.ledger.snapshot import LedgerSnapshot
from programs_bridge.ledger.store import LedgerStore, RunRecord, create_table
from programs_bridge.programs_txt.layout import STANDARD, Field
from programs_bridge.programs_txt.render import OutputFormat, render_header

from .harness import FEED, Ledger, enrolment, numbered

PERSONAL_VALUES.update({"004521", "004522", "004523", "004524", "004525", "Testperson"})

SEED_RUN = "20260801T000000Z-seed-aaaaaaaa"
NIGHT = "20260905T020000Z-night001"
LATER = "20260910T020000Z-night002"


def snapshot_of(*records: tuple[list[str], str]) -> LedgerSnapshot:
    """A snapshot holding each row's record as ``run`` last left it (open or closed by the row's end date)."""
    snapshot = LedgerSnapshot(head_run=records[-1][1] if records else None)
    for fields, run in records:
        facts = row_facts(fields, STANDARD)
        snapshot.add(facts.key_text, facts.fields_hash, facts.is_open, run, run)
    return snapshot


def check(rows: list[list[str]], snapshot: LedgerSnapshot, **kwargs: Any) -> Reconciliation:
    return reconcile(iter(numbered(rows)), STANDARD, snapshot, **kwargs)


def lines_of(finding: dict[str, Any]) -> list[int]:
    return [record["line"] for record in finding["records"]]


# -- (a) duplicates ----------------------------------------------------------------------------------------


def test_a_student_open_twice_in_one_program_is_a_duplicate_keeping_the_record_the_bridge_sent_last() -> None:
    sent = enrolment("004521", "144", "08/15/2025", "101")
    by_hand = enrolment("004521", "144", "08/15/2025", "102")  # a second site, entered in Illuminate
    other = enrolment("004521", "181", "08/15/2025", "101")  # another program: not a duplicate
    result = check([by_hand, other, sent], snapshot_of((other, NIGHT), (sent, LATER)))
    assert result.counts["duplicates"] == 1 and result.counts["duplicate_records"] == 2
    [finding] = result.to_json()["duplicates"]
    assert finding["kind"] == "open_twice"
    assert lines_of(finding) == [2, 4]
    assert finding["keep"]["line"] == 4 and finding["keep"]["key"]["site_id"] == "101"
    assert [d["line"] for d in finding["delete"]] == [2]
    assert "check_sis_first" not in finding
    assert result.findings == 1 + result.counts["exits_not_landed"] + result.counts["dropped_by_import"]


def test_excel_stripped_zeros_and_overlapping_closed_ranges_are_duplicates_but_a_re_entry_is_not() -> None:
    first = enrolment("004522", "144", "08/15/2024", "12", end="06/01/2025")
    overlapping = enrolment("4522", "144", "05/01/2025", "12", end="06/10/2025")  # zeros stripped, dates overlap
    re_entry = enrolment("004522", "144", "08/20/2025", "12")  # after the exit: a new enrolment, fine
    result = check([first, overlapping, re_entry], snapshot_of((first, NIGHT), (re_entry, NIGHT)))
    [finding] = result.to_json()["duplicates"]
    assert finding["kind"] == "overlapping" and lines_of(finding) == [2, 3]
    # The one the ledger knows is kept; the one nobody sent (the zero-stripped ID) is the one to delete.
    assert finding["keep"]["line"] == 2 and finding["delete"][0]["key"]["import_student_id"] == "4522"


def test_two_records_the_sis_itself_sends_open_are_flagged_to_check_the_sis_first() -> None:
    a = enrolment("004523", "144", "08/15/2025", "101")
    b = enrolment("004523", "144", "08/15/2025", "102")
    result = check([a, b], snapshot_of((a, NIGHT), (b, LATER)))
    [finding] = result.to_json()["duplicates"]
    assert "check there before deleting" in finding["check_sis_first"]
    assert finding["keep"]["line"] == 3  # the record a bridge run changed last


def test_of_two_seeded_records_the_one_the_latest_full_export_still_lists_is_kept() -> None:
    """Both learnt from the seed, neither written since (a row sent unchanged writes nothing): the one a full
    export left out (``missing``) is the stale one, whatever its start date."""
    stale = enrolment("004521", "144", "08/01/2023", "101")
    current = enrolment("004521", "144", "04/04/2026", "101")
    ledger = LedgerSnapshot(head_run=NIGHT)
    for fields, missing in ((stale, True), (current, False)):
        facts = row_facts(fields, STANDARD)
        ledger.add(facts.key_text, facts.fields_hash, facts.is_open, SEED_RUN, SEED_RUN, missing=missing)
    [finding] = check([current, stale], ledger).to_json()["duplicates"]
    assert finding["keep"]["line"] == 2 and [d["line"] for d in finding["delete"]] == [3]


def test_of_records_entered_by_hand_an_open_one_is_kept_before_an_earlier_closed_one() -> None:
    closed = enrolment("004521", "144", "08/01/2025", "101", end="09/30/2025")
    open_a = enrolment("004521", "144", "08/15/2025", "102")
    open_b = enrolment("004521", "144", "09/01/2025", "103")
    [finding] = check([closed, open_a, open_b], LedgerSnapshot()).to_json()["duplicates"]
    assert finding["kind"] == "open_twice" and finding["keep"]["line"] == 3
    assert sorted(d["line"] for d in finding["delete"]) == [2, 4]


def test_an_open_record_entered_by_hand_is_kept_before_a_closed_one_learnt_from_a_seed() -> None:
    """Deleting the only open record would end the student's enrolment."""
    seeded_closed = enrolment("555002", "144", "08/01/2023", "101", end="06/30/2025")
    by_hand_open = enrolment("555002", "144", "09/01/2024", "101")
    ledger = snapshot_of((seeded_closed, SEED_RUN))
    [finding] = check([seeded_closed, by_hand_open], ledger).to_json()["duplicates"]
    assert finding["keep"]["line"] == 3 and [d["line"] for d in finding["delete"]] == [2]


def test_many_distinct_families_give_no_duplicate() -> None:
    rows = [enrolment(f"{n:06d}", "144", "08/15/2025", "12") for n in range(5000)]
    rows += [enrolment(f"{n:06d}", "181", "08/15/2025", "12") for n in range(5000)]
    result = check(rows, LedgerSnapshot())
    assert result.counts["duplicates"] == 0 and result.duplicates == []
    assert result.counts["entered_by_hand"] == 10_000 and len(result.entered_by_hand) == 1000
    assert result.to_json()["truncated"]["entered_by_hand"] is True


# -- (b) exits that never landed ---------------------------------------------------------------------------


def test_a_record_open_in_illuminate_that_a_bridge_run_exited_is_handed_out_for_a_fix_row() -> None:
    exited = enrolment("004524", "144", "08/15/2025", "12", end="06/05/2026")
    still_open = enrolment("004524", "144", "08/15/2025", "12")  # what Illuminate holds
    reopened = enrolment("004525", "181", "08/15/2024", "12", end="06/01/2025")  # closed by a seed, open now
    closed_both = enrolment("004525", "144", "08/15/2024", "12", end="06/01/2025")
    ledger = snapshot_of((exited, NIGHT), (reopened, SEED_RUN), (closed_both, NIGHT))
    handed: list[Row] = []
    report = [still_open, enrolment("004525", "181", "08/15/2024", "12"), closed_both]
    result = check(report, ledger, on_exit_not_landed=handed.append)
    assert result.counts["exits_not_landed"] == 2 and result.counts["exits_fixable"] == 1
    assert handed == [(2, still_open)]
    listed = result.to_json()["exits_not_landed"]
    assert [(e["line"], e["fixable"], e["exited_by_run"]) for e in listed] == [(2, True, NIGHT), (3, False, SEED_RUN)]
    assert "reopened in Illuminate" in listed[1]["reason"]


def test_a_record_open_in_illuminate_that_the_latest_full_export_left_out_is_found(ledger: Ledger) -> None:
    """The SIS dropped Bo's enrolment without an exit: Illuminate keeps it open, and nothing will close it."""
    ann, bo = enrolment("004521", "144", "08/15/2025", "12"), enrolment("004522", "181", "08/15/2025", "12")
    ledger.run([ann, bo], run_id="20260901T020000Z-night001")
    night2 = ledger.run([ann], run_id="20260902T020000Z-night002")
    assert night2.counts["missing"] == 1 and night2.committed is not None and night2.committed.records_written == 1
    snapshot, _ = ledger.store.read_snapshot(FEED)
    found = reconcile(iter(numbered([ann, bo])), STANDARD, snapshot)
    assert found.counts["open_not_exported"] == 1 and found.findings == 1
    assert [(f["line"], f["key"]["import_student_id"]) for f in found.to_json()["open_not_exported"]] == [(3, "004522")]
    # Left out again: the mark is written once, not every night.
    night3 = ledger.run([ann], run_id="20260903T020000Z-night003")
    assert night3.committed is not None and night3.committed.records_written == 0
    # Listed again: the mark is cleared, and Illuminate and the ledger agree.
    ledger.run([ann, bo], run_id="20260904T020000Z-night004")
    snapshot, _ = ledger.store.read_snapshot(FEED)
    assert reconcile(iter(numbered([ann, bo])), STANDARD, snapshot).findings == 0


# -- (c) records the import dropped ------------------------------------------------------------------------


def test_a_record_the_bridge_sent_that_illuminate_lacks_is_found_within_the_reports_programs_and_sites() -> None:
    listed = enrolment("004521", "144", "08/15/2025", "12")
    dropped = enrolment("004522", "144", "08/15/2025", "12", end="06/05/2026")  # closed counts too
    other_program = enrolment("004523", "999", "08/15/2025", "12")  # the report does not cover 999
    other_site = enrolment("004523", "144", "08/15/2025", "77")  # ... nor site 77
    seeded_only = enrolment("004524", "144", "08/15/2025", "12")  # learned from a report, never sent
    ledger = snapshot_of(
        (listed, NIGHT), (dropped, NIGHT), (other_program, NIGHT), (other_site, NIGHT), (seeded_only, SEED_RUN)
    )
    result = check([listed], ledger)
    assert result.counts["dropped_by_import"] == 1
    [finding] = result.to_json()["dropped_by_import"]
    assert finding["key"]["import_student_id"] == "004522" and finding["state"] == "closed"
    assert finding["last_run"] == NIGHT
    scope = result.to_json()["dropped_by_import_scope"]
    assert scope["program_ids"] == ["144"] and scope["site_ids"] == ["12"]


# -- (d) entered by hand, and a clean report -------------------------------------------------------------


def test_a_record_no_export_sent_is_information_only_and_a_matching_report_finds_nothing() -> None:
    known = enrolment("004521", "144", "08/15/2025", "12")
    by_hand = enrolment("004529", "181", "08/15/2025", "12")
    result = check([known, by_hand], snapshot_of((known, NIGHT)))
    assert result.counts["entered_by_hand"] == 1 and result.findings == 0
    [info] = result.to_json()["entered_by_hand"]
    assert info["line"] == 3 and info["key"]["import_student_id"] == "004529"

    clean = check([known], snapshot_of((known, NIGHT)))
    assert clean.findings == 0 and clean.rows == 1
    assert all(n == 0 for n in clean.to_json()["counts"].values())


def test_lists_are_capped_but_counts_stay_complete() -> None:
    sent = [enrolment(f"{n:06d}", "144", "08/15/2025", "12") for n in range(5)]
    result = check([], snapshot_of(*((row, NIGHT) for row in sent)), limit=2)
    assert result.counts["dropped_by_import"] == 0  # an empty report covers no program: nothing compared
    result = check(sent[:1], snapshot_of(*((row, NIGHT) for row in sent)), limit=2)
    assert result.counts["dropped_by_import"] == 4 and len(result.to_json()["dropped_by_import"]) == 2
    assert result.to_json()["truncated"]["dropped_by_import"] is True


# -- the fix file ------------------------------------------------------------------------------------------


def test_fix_rows_carry_the_ledgers_end_date_on_the_exact_key_and_skip_rows_without_names() -> None:
    open_row = enrolment("004521", "144", "08/15/2025", "12")
    nameless = enrolment("004522", "144", "08/15/2025", "12")
    nameless[STANDARD.fields.index(Field.LAST_NAME)] = ""
    unknown_end = enrolment("004523", "144", "08/15/2025", "12")
    asked: list[list[str]] = []

    def end_dates(keys: list[str]) -> Mapping[str, str]:
        asked.append(keys)
        return {encode_key(("004521", "144", "08/15/2025", "12")): "06/05/2026"}

    counts = FixCounts()
    rows = list(fix_rows(numbered([open_row, nameless, unknown_end]), STANDARD, end_dates, counts, batch=2))
    assert rows == [(2, exit_row(open_row, STANDARD, "06/05/2026"))]
    assert rows[0][1][STANDARD.fields.index(Field.PROGRAM_END_DATE)] == "06/05/2026"
    assert counts.rows == 1 and counts.no_person == [3] and counts.no_end_date == [4]
    assert len(asked) == 2 and all(len(keys) <= 2 for keys in asked)  # the nameless row is never asked for


def test_the_fix_file_converts_and_plans_as_exits_against_a_ledger_holding_the_records_open(
    ledger: Ledger, tmp_path: Path
) -> None:
    """End to end: the bridge exited two records, Illuminate still holds them open; the fix rows, fed back
    through the converter and planned against a ledger seeded with what Illuminate holds, are exits."""
    held = [enrolment("004521", "144", "08/15/2025", "12"), enrolment("004522", "181", "09/01/2025", "14")]
    ledger.run(held, run_id="20260901T020000Z-night001")
    exits = [
        enrolment("004521", "144", "08/15/2025", "12", end="06/05/2026", exit_code="E1"),
        enrolment("004522", "181", "09/01/2025", "14", end="06/06/2026"),
    ]
    ledger.run(exits, kind=ExportKind.DELTA, run_id=NIGHT)

    snapshot, _ = ledger.store.read_snapshot(FEED)
    spooled: list[Row] = []
    result = reconcile(iter(numbered(held)), STANDARD, snapshot, on_exit_not_landed=spooled.append)
    assert result.counts["exits_fixable"] == 2
    counts = FixCounts()
    fixes = list(fix_rows(spooled, STANDARD, lambda keys: ledger.store.record_end_dates(FEED, keys), counts))
    fix_file = tmp_path / "fix-programs.txt"
    output = OutputFormat()
    fix_file.write_text(render_header(output) + "".join("\t".join(f) + "\n" for _, f in fixes), encoding="utf-8")

    conversion = convert_export(fix_file, tmp_path / "converted.txt", ConvertOptions(keep_source_lines=True))
    assert conversion.status is Status.OK and conversion.rows_written == 2
    converted = list(converted_rows(conversion))
    end_at = STANDARD.fields.index(Field.PROGRAM_END_DATE)
    assert [fields[end_at] for _, fields in converted] == ["06/05/2026", "06/06/2026"]

    # A ledger that holds the records open, as after a seed from Illuminate's report.
    create_table("seeded-ledger")
    seeded = LedgerStore("seeded-ledger")
    taken = datetime(2026, 9, 20, tzinfo=UTC)
    run = RunRecord(seed_run_id(taken, "c" * 64), "report.csv", "c" * 16, "c" * 64, "", {})
    seed(seeded, iter(numbered(held)), STANDARD, feed=FEED, run=run)
    plan = make_plan(seeded, iter(converted), STANDARD, feed=FEED, kind=ExportKind.DELTA)
    assert [plan.classification.decision(i) for i in range(2)] == [Decision.EXIT, Decision.EXIT]
