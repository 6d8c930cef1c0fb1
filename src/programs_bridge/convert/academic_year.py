"""Academic Year (programs.txt column 12): one spelling, ``YYYY-YYYY``, and a check that dates agree with it.

Illuminate rejected a bare ``2025`` in this field in practice, and a bare year is ambiguous anyway (does a
district mean 2024-2025 or 2025-2026?), so it is reported rather than expanded.  The spellings SIS exports
and spreadsheets produce for one school year (``2025-26``, ``2025/2026``, ``SY2025-26``, an en dash from a
word processor) are normalised, because the year is shown to teachers and compared from run to run.
"""

from __future__ import annotations

import re
from datetime import date

from programs_bridge.convert.dates import format_date
from programs_bridge.convert.findings import describe, quotable

ACADEMIC_YEAR_FORMAT = "academic_year_format"

_SCHOOL_YEAR = re.compile(r"(?:SY\s*)?(\d{4})\s*[-/\u2013\u2014]\s*(\d{4}|\d{2})", re.ASCII | re.IGNORECASE)


def normalise_academic_year(raw: str) -> tuple[str, str | None, str | None]:
    """``(text, code, message)``: text ``YYYY-YYYY`` or ``""``; code ``academic_year_format`` or ``None``.

    The message quotes the value only when :func:`~programs_bridge.convert.findings.quotable` allows (a
    shifted row can put a birth date's ``2010-05`` or an ID's digits here), and describes it otherwise.
    """
    value = raw.strip()
    if not value:
        return "", None, None
    if match := _SCHOOL_YEAR.fullmatch(value):
        first, second = int(match[1]), match[2]
        expected = f"{first}-{first + 1}"
        if second in (str(first + 1), f"{(first + 1) % 100:02d}"):
            return expected, None, None
        if quotable(value):
            return _problem(
                f"'{value}' is not one school year: the second year must be the first plus one, as in {expected}"
            )
    elif value.isdigit() and len(value) == 4:
        return _problem(
            "Academic Year is a single number, which Illuminate rejects: a bare year could mean either of two "
            "school years; send the school year as YYYY-YYYY, for example 2025-2026"
        )
    subject = f"'{value}' is" if quotable(value) else f"Academic Year is {describe(value)},"
    return _problem(f"{subject} not a school year: send it as YYYY-YYYY, for example 2025-2026")


def _problem(message: str) -> tuple[str, str | None, str | None]:
    return "", ACADEMIC_YEAR_FORMAT, message


def academic_year_for(day: date, first_month: int = 7) -> str:
    """The school year ``YYYY-YYYY`` holding ``day``, when school years begin on the 1st of ``first_month``.

    July is the default because state reporting years (and most district calendars) run July to June.
    """
    if not 1 <= first_month <= 12:
        raise ValueError(f"first_month must be 1..12, not {first_month}")
    start = day.year if day.month >= first_month else day.year - 1
    return f"{start}-{start + 1}"


def academic_year_mismatch(year_text: str, day: date, first_month: int = 7) -> str | None:
    """``None`` when ``day`` falls in school year ``year_text``, else a message for the clerk.

    ``year_text`` may be in any spelling :func:`normalise_academic_year` accepts.  An unreadable year is not
    a mismatch: that is a format problem, which :func:`normalise_academic_year` reports on its own.
    """
    year, code, _ = normalise_academic_year(year_text)
    actual = academic_year_for(day, first_month)
    if code is not None or not year or year == actual:
        return None
    return (
        f"Academic Year '{year}' does not contain {format_date(day)}, which falls in school year {actual}: "
        "correct the year or the date in the SIS"
    )
