"""Seeding a feed's ledger from Illuminate's own records, then planning nights against it (moto over HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from programs_bridge.ledger.model import SEED_ORIGIN as ORIGIN
from programs_bridge.ledger.model import Decision
from programs_bridge.ledger.seed import seed, seed_run_id
from programs_bridge.ledger.store import RunRecord
from programs_bridge.programs_txt.layout import STANDARD

from .harness import FEED, Ledger, enrolment, numbered

TAKEN = datetime(2026, 8, 1, tzinfo=UTC)
#: What Illuminate holds, loaded by hand over the years: two open records and a closed one.
HELD = [
    enrolment("004521", "144", "08/15/2023", "12"),
    enrolment("004522", "181", "09/01/2024", "14"),
    enrolment("004523", "144", "08/15/2022", "12", end="06/01/2023"),
]


def seeded(ledger: Ledger, rows: list[list[str]], *, taken: datetime = TAKEN, sha: str = "a" * 64) -> dict[str, Any]:
    run_id = seed_run_id(taken, sha)
    run = RunRecord(run_id, "illuminate/report.csv", sha[:16], sha, "reports/seed.json", {})
    result = seed(ledger.store, iter(numbered(rows)), STANDARD, feed=FEED, run=run)
    section: dict[str, Any] = result.to_json()
    return section


def test_a_seeded_record_is_exited_like_one_the_bridge_sent(ledger: Ledger) -> None:
    section = seeded(ledger, HELD)
    assert section["counts"] == {"records_read": 3, "new": 3, "updated": 0, "unchanged": 0, "conflicts": 0}
    exited = [enrolment("004521", "144", "08/15/2023", "12", end="06/05/2026"), HELD[1]]
    night = ledger.run(exited, run_id="20260905T020000Z-night001")
    assert night.plan.classification.decision(0) is Decision.EXIT
    assert night.counts["exit"] == 1 and night.counts["unchanged"] == 1 and night.counts["duplicate_risk"] == 0
    record = ledger.record(("004523", "144", "08/15/2022", "12"))
    assert record is not None and record["origin"]["S"] == ORIGIN and record["state"]["S"] == "closed"


def test_a_re_keyed_exit_of_a_seeded_record_is_a_duplicate_risk_naming_it(ledger: Ledger) -> None:
    seeded(ledger, HELD)
    rekeyed = [enrolment("004521", "144", "08/18/2023", "12", end="06/05/2026"), HELD[1]]
    night = ledger.run(rekeyed, run_id="20260905T020000Z-night001")
    [risk] = night.report["duplicate_risks"]
    [match] = risk["open_records"]
    assert match["key"]["program_start_date"] == "08/15/2023" and match["differs"] == ["program_start_date"]
    assert night.sent == [(3, HELD[1])]  # held, not sent: Illuminate would have opened a second record


def test_seeding_the_same_report_twice_writes_nothing_the_second_time(ledger: Ledger) -> None:
    seeded(ledger, HELD)
    before = ledger.items()
    again = seeded(ledger, HELD)
    assert again["already_seeded"] is True and again["ledger_write"]["items"] == 0
    assert ledger.items() == before
    # A new download of the same records (another file, another hash) finds them all known.
    copy = seeded(ledger, HELD, sha="b" * 64, taken=datetime(2026, 8, 2, tzinfo=UTC))
    assert copy["counts"]["unchanged"] == 3 and copy["ledger_write"]["items"] == 0


def test_a_record_the_bridge_changed_after_the_report_was_taken_is_kept_and_listed(ledger: Ledger) -> None:
    ledger.run([HELD[0], enrolment("004522", "181", "09/01/2024", "14", end="06/05/2026")],
               run_id="20260901T020000Z-night001")  # fmt: skip
    # A report taken a month before that night still shows 004522 open: the bridge's exit is newer.
    section = seeded(ledger, HELD, taken=datetime(2026, 8, 1, tzinfo=UTC))
    assert section["counts"]["conflicts"] == 1
    [conflict] = section["conflicts"]
    assert conflict["line"] == 3 and conflict["last_run"] == "20260901T020000Z-night001"
    assert ledger.record(("004522", "181", "09/01/2024", "14"))["state"]["S"] == "closed"
    assert ledger.record(("004523", "144", "08/15/2022", "12")) is not None  # the rest was seeded
    again = seeded(ledger, HELD, taken=datetime(2026, 8, 1, tzinfo=UTC))  # nothing written, conflict still said
    assert again["already_seeded"] is True and again["counts"]["conflicts"] == 1


def test_a_report_taken_after_the_bridge_sent_a_record_says_what_illuminate_holds(ledger: Ledger) -> None:
    """The bridge sent 004522 open; a later report shows it closed (a clerk exited it in Illuminate)."""
    ledger.run([HELD[1]], run_id="20260601T020000Z-night001")
    closed = enrolment("004522", "181", "09/01/2024", "14", end="05/30/2026")
    section = seeded(ledger, [closed], taken=datetime(2026, 7, 1, tzinfo=UTC))
    assert section["counts"]["updated"] == 1 and section["counts"]["conflicts"] == 0
    record = ledger.record(("004522", "181", "09/01/2024", "14"))
    assert record is not None and record["state"]["S"] == "closed"
    assert record["first_run"]["S"] == "20260601T020000Z-night001"  # first sent by the bridge, still


def test_a_seed_after_nights_keeps_the_shrink_guards_baseline(ledger: Ledger) -> None:
    """Seeding between two nights must not make the next normal export look shrunken."""
    from programs_bridge.ledger.shrink import judge_plan

    rows = [enrolment(f"{n:06d}", "144", "08/15/2023", "12") for n in range(120)]
    seeded(ledger, rows)
    ledger.run(rows[:60], run_id="20260905T020000Z-night001")  # the district let a genuine drop through
    seeded(ledger, rows[:1], taken=datetime(2026, 9, 6, tzinfo=UTC), sha="c" * 64)
    night = ledger.run(rows[:60], run_id="20260907T020000Z-night002", deliver=False)
    verdict = judge_plan(night.plan)
    assert (verdict.previously_missing, verdict.dropped, verdict.fires) == (60, 0, False)


def test_a_short_first_export_after_a_seed_is_held_and_the_verdict_names_the_seed(ledger: Ledger) -> None:
    """After a seed no export was delivered: the guard compares with what Illuminate holds open, and says so."""
    from programs_bridge.ledger.shrink import judge_plan

    rows = [enrolment(f"{n:06d}", "144", "08/15/2023", "12") for n in range(120)]
    seeded(ledger, rows)
    first = judge_plan(ledger.run(rows[:2], run_id="20260905T020000Z-night001", deliver=False).plan)
    assert (first.fires, first.after_seed, first.listed_before) == (True, True, 120)
    assert "seeded from Illuminate's report" in first.describe() and "last delivered" not in first.describe()
    assert first.to_json()["compared_with"] == "seed"
    ledger.run(rows, run_id="20260906T020000Z-night002")  # the complete export goes through
    later = judge_plan(ledger.run(rows[:2], run_id="20260907T020000Z-night003", deliver=False).plan)
    assert (later.fires, later.after_seed) == (True, False)
    assert "last delivered export listed" in later.describe()


def test_a_seeded_record_keeps_its_origin_when_a_night_rewrites_it(ledger: Ledger) -> None:
    seeded(ledger, HELD)
    ledger.run([HELD[0]], run_id="20260905T020000Z-night001")  # 004522 left out: marked missing
    rekeyed = ledger.record(("004522", "181", "09/01/2024", "14"))
    assert rekeyed is not None and rekeyed["origin"]["S"] == ORIGIN and "missing_run" in rekeyed
    ledger.run([HELD[0], enrolment("004522", "181", "09/01/2024", "14", end="06/05/2026")],
               run_id="20260906T020000Z-night002")  # fmt: skip
    exited = ledger.record(("004522", "181", "09/01/2024", "14"))
    assert exited is not None and exited["origin"]["S"] == ORIGIN and "missing_run" not in exited
