"""The run report's Markdown summary, as a clerk reads it next to the JSON."""

from programs_bridge.report.run import markdown_summary


def head(skipped: int = 2, **ledger: object) -> dict[str, object]:
    counts = {"rows_read": 5, "rows_skipped": skipped}
    return {"run_id": "r1", "feed": "district", "status": "delivered", "counts": counts, "ledger": ledger}


def test_skipped_rows_and_concurrent_enrolments_are_said_and_a_held_row_gets_its_resolution_line() -> None:
    risk = {"line": 7, "action": "held", "id": "k3vq7x2m", "open_records": [{"differs": ["program_start_date"]}]}
    text = markdown_summary(head(concurrent_enrolment_count=2, duplicate_risks=[risk]), [])
    assert "5 read, 0 sent, 0 rejected, 0 held, 2 skipped" in text
    assert "- concurrent enrolments: 2 new record(s)" in text
    assert "| 7 | held | program_start_date | `k3vq7x2m` |" in text
    assert "programs-bridge ledger resolve --table <LedgerTable> --feed district k3vq7x2m --as same|new|never" in text


def test_nothing_to_say_says_nothing_extra() -> None:
    text = markdown_summary(head(skipped=0), [])
    assert "skipped" not in text and "concurrent" not in text and "resolve" not in text


def test_risks_against_records_that_lost_their_zeros_say_what_to_do() -> None:
    text = markdown_summary(head(zeros_lost_in_ledger=3), [])
    assert "- leading zeros: 3 duplicate risk(s)" in text and "import_student_id_width" in text


def test_two_open_records_differing_in_the_same_part_are_told_apart_by_value() -> None:
    records = [{"key": {"import_student_id": "004521", "site_id": s}, "differs": ["site_id"]} for s in ("12", "16")]
    text = markdown_summary(head(duplicate_risks=[{"line": 4, "action": "held", "id": "k3vq7x2m",
                                                   "open_records": records}]), [])  # fmt: skip
    assert "| 4 | held | site_id 12; site_id 16 |" in text and "004521" not in text


def test_rows_a_resolution_left_out_are_accounted_for() -> None:
    """Nothing is dropped silently: a row left out by 'never', or a 'same' row whose target the file lists
    itself, is said in the summary, not only in the JSON."""
    text = markdown_summary(head(resolved={"same": 0, "never": 2, "new": 0},
                                 resolutions_not_applied=[{"line": 7, "reason": "..."}]), [])  # fmt: skip
    assert "- resolutions: 2 row(s) left out as a clerk decided (never)" in text
    assert "1 row(s) resolved 'same' left out, because this file also lists the open record" in text
    assert "(lines 7)" in text
    assert "resolutions:" not in markdown_summary(head(resolved={"same": 1, "never": 0, "new": 0}), [])
