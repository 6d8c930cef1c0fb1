"""A new key beside an open record of the same student and program: a concurrent enrolment or a duplicate risk.

A full export that lists the open record itself, still open, says the SIS holds both records: the new row is
sent as ``new`` with a warning.  Anything less (the open record left out, exited by the same file, or a
delta export, which proves nothing by leaving a record out) keeps the rule as it was.
"""

from __future__ import annotations

from typing import Any

import pytest

from programs_bridge.ledger.model import Decision, ExportKind, Policy

from .harness import Ledger, enrolment

KEY_NAMES = ("import_student_id", "program_id", "program_start_date", "site_id")

#: Student 004521 in program 144 since 08/15/2025, at site 101; a second site 102 and a third 103.
AT_101 = ("004521", "144", "08/15/2025", "101")
AT_102 = ("004521", "144", "08/15/2025", "102")
AT_103 = ("004521", "144", "08/15/2025", "103")


def key(parts: tuple[str, str, str, str]) -> dict[str, str]:
    return dict(zip(KEY_NAMES, parts, strict=True))


def row(parts: tuple[str, str, str, str], **extra: str) -> list[str]:
    student, program, start, site = parts
    return enrolment(student, program, start, site, **extra)


def attr(item: dict[str, Any] | None, name: str) -> str:
    assert item is not None
    value: str = item[name]["S"]
    return value


def no_warnings(report: dict[str, Any]) -> None:
    assert report["concurrent_enrolments"] == []
    assert report["concurrent_enrolment_count"] == 0


@pytest.mark.parametrize(
    ("listed", "new_first"),
    [
        pytest.param({}, False, id="listed-unchanged"),
        pytest.param({"year": "2026-2027"}, False, id="listed-updated"),
        pytest.param({}, True, id="new-key-first-in-the-file"),
    ],
)
def test_a_full_export_listing_both_records_sends_both_with_a_warning(
    ledger: Ledger, listed: dict[str, str], new_first: bool
) -> None:
    ledger.run([row(AT_101)])
    rows = [row(AT_101, **listed), row(AT_102)]
    if new_first:
        rows.reverse()
    night = ledger.run(rows)

    assert night.counts["duplicate_risk"] == 0
    assert night.counts["new"] == 1
    assert night.counts["missing"] == 0
    assert night.report["duplicate_risks"] == []
    new_row = 0 if new_first else 1
    assert night.plan.classification.decision(new_row) is Decision.NEW
    # both sent, as they are
    assert [fields for _, fields in night.sent] == rows
    # the warning names the row's line and the other record by key and the key parts that differ
    assert night.report["concurrent_enrolment_count"] == 1
    assert night.report["concurrent_enrolments"] == [
        {"line": 2 + new_row, "key": key(AT_102), "open_records": [{"key": key(AT_101), "differs": ["site_id"]}]}
    ]
    assert night.report["truncated"]["concurrent_enrolments"] is False
    # the ledger now holds both, open
    assert attr(ledger.record(AT_101), "state") == "open"
    assert attr(ledger.record(AT_102), "state") == "open"
    # and the next night both keys are known: nothing to warn about
    after = ledger.run([row(AT_101, **listed), row(AT_102)])
    assert after.counts["unchanged"] == 2
    no_warnings(after.report)


def test_a_full_export_without_the_open_record_is_a_duplicate_risk_as_before(ledger: Ledger) -> None:
    ledger.run([row(AT_101)])
    night = ledger.run([row(AT_102)])

    assert night.counts["duplicate_risk"] == 1
    (risk,) = night.report["duplicate_risks"]
    assert risk["key"] == key(AT_102)
    assert risk["open_records"] == [{"key": key(AT_101), "differs": ["site_id"]}]
    assert risk["action"] == "held"
    assert night.sent == []
    assert night.counts["missing"] == 0  # reported with the risk, not again as missing
    no_warnings(night.report)


def test_a_delta_export_listing_both_records_keeps_the_current_rule(ledger: Ledger) -> None:
    ledger.run([row(AT_101)])
    night = ledger.run([row(AT_101), row(AT_102)], kind=ExportKind.DELTA)

    assert night.counts["duplicate_risk"] == 1
    (risk,) = night.report["duplicate_risks"]
    assert (risk["line"], risk["key"], risk["action"]) == (3, key(AT_102), "held")
    assert risk["open_records"] == [{"key": key(AT_101), "differs": ["site_id"]}]
    assert [fields for _, fields in night.sent] == [row(AT_101)]
    no_warnings(night.report)


def test_the_other_record_exited_by_the_same_file_is_a_transfer_without_a_warning(ledger: Ledger) -> None:
    ledger.run([row(AT_101)])
    night = ledger.run([row(AT_101, end="01/09/2026", exit_code="230"), row(AT_102)])

    decisions = [night.plan.classification.decision(position) for position in range(2)]
    assert decisions == [Decision.EXIT, Decision.NEW]
    assert night.counts["duplicate_risk"] == 0
    assert len(night.sent) == 2
    no_warnings(night.report)
    assert attr(ledger.record(AT_101), "state") == "closed"
    assert attr(ledger.record(AT_102), "state") == "open"


def test_an_open_record_left_out_still_makes_it_a_risk_naming_only_that_record(ledger: Ledger) -> None:
    """Site 101 is listed open (a real record beside the row), site 103 is open but not listed: the new key
    at 102 may be 103 re-keyed, so it is a risk, and repair aims at 103, never at the record the file sends
    with its own row."""
    ledger.run([row(AT_101), row(AT_103)])
    night = ledger.run([row(AT_101), row(AT_102)], policy=Policy.REPAIR)

    (risk,) = night.report["duplicate_risks"]
    assert risk["open_records"] == [{"key": key(AT_103), "differs": ["site_id"]}]
    assert risk["action"] == "repaired"
    assert risk["repaired_to"] == key(AT_103)
    assert [fields for _, fields in night.sent] == [row(AT_101), row(AT_103)]
    no_warnings(night.report)


def test_a_new_key_with_an_end_date_beside_a_listed_open_record_is_still_a_risk(ledger: Ledger) -> None:
    """A concurrent enrolment is two records open at once; an unknown key that arrives closed is the
    mis-keyed exit the duplicate check exists for, listed open record or not."""
    ledger.run([row(AT_101)])
    night = ledger.run([row(AT_101), row(AT_102, end="01/09/2026", exit_code="230")])

    (risk,) = night.report["duplicate_risks"]
    assert (risk["line"], risk["key"], risk["action"]) == (3, key(AT_102), "held")
    assert risk["open_records"] == [{"key": key(AT_101), "differs": ["site_id"]}]
    no_warnings(night.report)


def test_concurrent_enrolments_are_listed_up_to_the_limit_and_counted_exactly(ledger: Ledger) -> None:
    students = [f"{n:06d}" for n in range(4521, 4524)]
    ledger.run([enrolment(student, "144", "08/15/2025", "101") for student in students])
    night = ledger.run(
        [enrolment(student, "144", "08/15/2025", site) for student in students for site in ("101", "102")],
        deliver=False,
    )
    report = night.plan.report(limit=2)

    assert report["concurrent_enrolment_count"] == 3
    assert [entry["line"] for entry in report["concurrent_enrolments"]] == [3, 5]
    assert report["truncated"]["concurrent_enrolments"] is True
    assert len(night.sent) == 6
