"""Academic Year: one spelling for programs.txt, and whether a date belongs to the year it is filed under."""

from __future__ import annotations

from datetime import date

import pytest

from programs_bridge.convert.academic_year import academic_year_for, academic_year_mismatch, normalise_academic_year


@pytest.mark.parametrize(
    "raw",
    [
        "2025-2026",
        "2025-26",
        "2025/2026",
        "2025/26",
        "2025 - 2026",
        "SY2025-26",
        "sy 2025-2026",
        "2025\u201326",
        " 2025-26 ",
    ],
)
def test_every_spelling_of_one_school_year_becomes_yyyy_yyyy(raw: str) -> None:
    assert normalise_academic_year(raw) == ("2025-2026", None, None)


def test_a_century_boundary_short_form_is_read_correctly() -> None:
    assert normalise_academic_year("2099-00") == ("2099-2100", None, None)


def test_empty_is_empty() -> None:
    assert normalise_academic_year("  ") == ("", None, None)


def test_a_bare_year_is_rejected_saying_why_and_what_to_send_without_quoting_it() -> None:
    """Four digits may be part of a student ID, so the year is not repeated back."""
    text, code, message = normalise_academic_year("2025")
    assert (text, code) == ("", "academic_year_format")
    assert message is not None
    assert "Illuminate rejects" in message and "YYYY-YYYY" in message and "2025-" not in message.split("example")[0]


@pytest.mark.parametrize(
    ("raw", "meant"),
    [
        ("2025-2027", "2025-2026"),
        ("2025-27", "2025-2026"),
        ("2025-2025", "2025-2026"),
        ("2026-2025", "2026-2027"),
    ],
)
def test_the_second_year_must_follow_the_first(raw: str, meant: str) -> None:
    text, code, message = normalise_academic_year(raw)
    assert (text, code) == ("", "academic_year_format")
    assert message is not None and f"'{raw}'" in message and meant in message


@pytest.mark.parametrize(
    ("raw", "described"),
    [("N/A", "text"), ("25-26", "a 5-character value"), ("2025-2026-2027", "a 14-character value")],
)
def test_other_values_are_format_problems_described_not_quoted(raw: str, described: str) -> None:
    text, code, message = normalise_academic_year(raw)
    assert (text, code) == ("", "academic_year_format")
    assert message is not None and raw not in message and f"Academic Year is {described}," in message
    assert "YYYY-YYYY" in message


def test_a_code_like_value_is_quoted() -> None:
    message = normalise_academic_year("SY25")[2]
    assert message is not None and "'SY25' is not a school year" in message


def test_a_bare_year_with_a_prefix_is_described_as_a_value() -> None:
    message = normalise_academic_year("SY2025")[2]
    assert message == "Academic Year is text, not a school year: send it as YYYY-YYYY, for example 2025-2026"


def test_a_year_and_month_is_not_quoted_as_a_school_year() -> None:
    """``2010-05`` looks like a school year with a bad second part, but may be a birth date's year and month."""
    message = normalise_academic_year("2010-05")[2]
    assert message is not None and "2010" not in message


def test_a_name_in_the_year_column_is_not_quoted() -> None:
    message = normalise_academic_year("Hernandez")[2]
    assert message is not None and "Hernandez" not in message


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2025, 8, 15), "2025-2026"),
        (date(2026, 3, 1), "2025-2026"),
        (date(2025, 6, 30), "2024-2025"),
        (date(2025, 7, 1), "2025-2026"),
        (date(2025, 12, 31), "2025-2026"),
        (date(2026, 1, 1), "2025-2026"),
    ],
)
def test_school_years_start_on_1_july_by_default(day: date, expected: str) -> None:
    assert academic_year_for(day) == expected


@pytest.mark.parametrize(
    ("day", "expected"),
    [(date(2025, 7, 31), "2024-2025"), (date(2025, 8, 1), "2025-2026"), (date(2026, 7, 31), "2025-2026")],
)
def test_school_years_can_start_in_august(day: date, expected: str) -> None:
    assert academic_year_for(day, first_month=8) == expected


def test_a_january_start_gives_the_calendar_year() -> None:
    assert academic_year_for(date(2025, 1, 1), first_month=1) == "2025-2026"
    assert academic_year_for(date(2025, 12, 31), first_month=1) == "2025-2026"


@pytest.mark.parametrize("first_month", [0, 13])
def test_an_impossible_first_month_is_refused(first_month: int) -> None:
    with pytest.raises(ValueError, match="first_month"):
        academic_year_for(date(2025, 1, 1), first_month)


def test_a_date_inside_the_year_is_no_mismatch() -> None:
    assert academic_year_mismatch("2025-2026", date(2025, 7, 1)) is None
    assert academic_year_mismatch("2025-26", date(2026, 6, 30)) is None


def test_a_date_outside_the_year_is_reported_with_year_date_and_the_right_year() -> None:
    message = academic_year_mismatch("2024-2025", date(2025, 8, 15))
    assert message is not None
    assert "'2024-2025'" in message and "08/15/2025" in message and "2025-2026" in message


def test_the_mismatch_follows_the_first_month() -> None:
    assert academic_year_mismatch("2024-2025", date(2025, 7, 15), first_month=8) is None
    assert academic_year_mismatch("2024-2025", date(2025, 7, 15)) is not None


def test_an_unreadable_year_is_a_format_problem_not_a_mismatch() -> None:
    assert academic_year_mismatch("2025", date(2020, 1, 1)) is None
    assert academic_year_mismatch("", date(2020, 1, 1)) is None
