"""Read the dates an SIS export actually contains and write them the one way Illuminate wants: ``MM/DD/YYYY``.

Lenient about what comes in, strict about what goes out, because Program Start Date is part of
Illuminate's record key, so the same day must come out as the same text on every nightly run, whatever
mix of ``1/5/2024``, ``2024-01-05T00:00:00`` or ``05-JAN-24`` the export used.  A value that cannot be
read with certainty is reported (``code`` + a clerk-facing ``message``), never guessed.

Accepted forms (surrounding whitespace ignored):

* ``M/D/YYYY``, ``MM/DD/YYYY``, ``M-D-YYYY``, ``D.M.YYYY`` ... -- day and month read in the configured
  :class:`DateOrder`; the separator may be ``/``, ``-`` or ``.`` but must be the same twice;
* ``MM/DD/YY`` -- two-digit years pivot at 70: ``00``-``69`` are 2000-2069, ``70``-``99`` are 1970-1999
  (students born before 1970 or enrolled after 2069 need four digits);
* ``YYYY-MM-DD``, ``YYYY/MM/DD`` -- always year, month, day;
* ``YYYYMMDD`` -- eight digits starting with ``19`` or ``20``;
* ``01-JAN-2024``, ``1-Jan-24`` (Oracle), month names or abbreviations in any case;
* any of the above followed by a time (``T`` or spaces, then ``HH:MM[:SS[.fff]]``, optional ``AM``/``PM``
  and ``Z`` or ``+HH:MM``), e.g. ``2003-11-11T00:00:00Z`` or ``1/5/2024 12:00:00 AM``.  The time is ignored:
  programs.txt carries days, and shifting by a time zone would move an enrolment to another day.

Excel serial day numbers (``41856``) are recognised and reported with the date they mean, because an
export that went through Excel is a file the clerk should re-export, not one to trust silently.

Messages never quote the value, nor the day it would mean: in a ragged row a name, a student ID or a birth
date can land in any date column, and birth dates are personal themselves.  They say what kind of problem it
is and what to send instead; the finding's line and column tell the clerk where to look.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from enum import StrEnum
from typing import NamedTuple


class DateOrder(StrEnum):
    """How to read an ambiguous numeric date such as ``03/04/2025``.

    Only forms whose field order is not fixed by a four-digit year in front are affected.  ``YMD`` puts the
    month before the day, so with it ``03/04/2025`` reads month first, and ``24/03/04`` is 2024-03-04.
    """

    MDY = "MDY"
    DMY = "DMY"
    YMD = "YMD"


class DateResult(NamedTuple):
    """One parsed value.  ``text`` is what goes into programs.txt; ``code``/``message`` explain a rejection.

    ``text`` is ``MM/DD/YYYY`` for a good date and ``""`` otherwise (empty, not a date, or an Excel serial).
    ``day`` is the date, also for an Excel serial (the date it means), so a caller may choose to accept it.
    """

    text: str
    day: date | None
    code: str | None
    message: str | None


BAD_DATE = "bad_date"
IMPOSSIBLE_DATE = "impossible_date"
EXCEL_SERIAL_DATE = "excel_serial_date"
DATE_OUT_OF_RANGE = "date_out_of_range"
#: The years a birth or start date can fall in: before, a placeholder or a typo (0025 for 2025); after, the
#: same.  Outside them the date would enter a record key, and a derived Academic Year would read 9999-10000.
#: End dates take any year (``DateParser.parse_end``).
PLAUSIBLE_YEARS = range(1900, 2100)

EMPTY = DateResult("", None, None, None)

_TWO_DIGIT_YEAR_PIVOT = 70  # 00-69 -> 20xx, 70-99 -> 19xx

# Excel's 1900 date system counts serial 1 as 1900-01-01 and also counts the 29 February 1900 that never
# was, so from serial 61 (1900-03-01) on, day N is simply 1899-12-30 + N.  Only serials from 1930 to 2079
# are taken as dates: smaller or larger integers are far likelier to be IDs or counts than days.
_EXCEL_EPOCH = date(1899, 12, 30)
_EXCEL_FIRST = (date(1930, 1, 1) - _EXCEL_EPOCH).days
_EXCEL_LAST = (date(2079, 12, 31) - _EXCEL_EPOCH).days

# Both spellings are read whatever the export (CALPADS writes YYYYMMDD, most SIS exports month first).
_WHAT_TO_SEND = "send dates as MM/DD/YYYY or YYYYMMDD (for example 08/05/2014 or 20140805), or leave the field empty"
# A far-future end date (99991231) is how some systems write "no end yet"; YYYYMMDD is read for 1900-2099 only.
_FAR_FUTURE = re.compile(r"9999(?:0[1-9]|1[0-2])\d{2}", re.ASCII)

_TIME = (
    r"(?:(?:T|\s+)\d{1,2}[:.]\d{2}(?:[:.]\d{2}(?:[.,]\d{1,9})?)?"
    r"(?:\s*[AP]\.?M\.?)?(?:\s*(?:Z|[+-]\d{2}(?::?\d{2})?))?)?"
)
_NUMERIC = re.compile(rf"(\d{{1,4}})([/.-])(\d{{1,2}})\2(\d{{1,4}}){_TIME}", re.ASCII | re.IGNORECASE)
_NAMED_MONTH = re.compile(rf"(\d{{1,2}})([-\s])([a-z]{{3,9}})\2(\d{{4}}|\d{{2}}){_TIME}", re.ASCII | re.IGNORECASE)
_COMPACT = re.compile(r"((?:19|20)\d{2})(\d{2})(\d{2})", re.ASCII)
_EXCEL_SERIAL = re.compile(r"(\d{1,5})(?:\.\d+)?", re.ASCII)
# English on purpose: ``calendar.month_name`` follows the process locale, SIS exports do not.
_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_MONTHS: dict[str, int] = {
    spelling: number
    for number, name in enumerate(_MONTH_NAMES, start=1)
    for spelling in (name.lower(), name[:3].lower())
} | {"sept": 9}


def format_date(day: date) -> str:
    """``MM/DD/YYYY``, zero-padded: the only spelling programs.txt uses (so keys compare as text)."""
    return f"{day.month:02d}/{day.day:02d}/{day.year:04d}"


def excel_serial_day(serial: int) -> date:
    """The day Excel's 1900 date system means by ``serial`` (valid from serial 61, 1900-03-01, on)."""
    return _EXCEL_EPOCH + timedelta(days=serial)


def parse_date(raw: str, order: DateOrder = DateOrder.MDY) -> DateResult:
    """Parse one value without caching (see :class:`DateParser` for the cached, per-file version)."""
    value = raw.strip()
    if not value:
        return EMPTY
    said = _Said(value)
    if match := _NUMERIC.fullmatch(value):
        return _numeric(match, order, said)
    if match := _NAMED_MONTH.fullmatch(value):
        month = _MONTHS.get(match[3].lower())
        if month is None:
            return said.bad()
        return said.checked(_full_year(match[4]), month, int(match[1]))
    if match := _COMPACT.fullmatch(value):
        return said.checked(int(match[1]), int(match[2]), int(match[3]))
    if (match := _EXCEL_SERIAL.fullmatch(value)) and _EXCEL_FIRST <= int(match[1]) <= _EXCEL_LAST:
        return said.excel_serial(int(match[1]))
    return said.bad()


def _numeric(match: re.Match[str], order: DateOrder, said: _Said) -> DateResult:
    """Three numbers with one separator: decide which is the year, then apply ``order`` to the rest."""
    first, middle, last = match[1], match[3], match[4]
    if len(first) == 4 and len(last) <= 2:
        return said.checked(int(first), int(middle), int(last))
    if len(first) == 2 and len(last) == 2 and order is DateOrder.YMD:
        return said.checked(_full_year(first), int(middle), int(last))
    if len(first) > 2 or len(last) not in (2, 4) or (len(last) == 2 and order is DateOrder.YMD):
        return said.bad()
    year = _full_year(last)
    if order is DateOrder.DMY:
        return said.checked(year, int(middle), int(first), other_order=DateOrder.MDY)
    return said.checked(year, int(first), int(middle), other_order=DateOrder.DMY)


def _full_year(digits: str) -> int:
    year = int(digits)
    if len(digits) == 2:
        year += 2000 if year < _TWO_DIGIT_YEAR_PIVOT else 1900
    return year


def _is_day(year: int, month: int, day: int) -> bool:
    """Whether year/month/day is a day on the calendar."""
    return year >= 1 and 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]


class _Said(NamedTuple):
    """One raw value: builds the results, so every message describes it alike and none quotes it."""

    value: str

    def checked(self, year: int, month: int, day: int, other_order: DateOrder | None = None) -> DateResult:
        """The date, or ``impossible_date`` saying so and, when ``other_order`` would fit, how to fix it."""
        if _is_day(year, month, day):
            found = date(year, month, day)
            return DateResult(format_date(found), found, None, None)
        hint = ""
        if other_order is not None and _is_day(year, day, month):
            first = "day" if other_order is DateOrder.DMY else "month"
            hint = f"; if this file writes the {first} first, set the date order to {other_order} in the mapping"
        message = f"The value is not a calendar date: correct it in the SIS and re-export{hint}"
        return DateResult("", None, IMPOSSIBLE_DATE, message)

    def excel_serial(self, serial: int) -> DateResult:
        message = (
            "The value is an Excel serial number, not a date: the file was opened and saved "
            "in Excel; re-export it from the SIS or format the column as a date before saving"
        )
        return DateResult("", excel_serial_day(serial), EXCEL_SERIAL_DATE, message)

    def bad(self) -> DateResult:
        if _FAR_FUTURE.fullmatch(self.value):
            message = (
                'The value is a date in the year 9999, which some systems write for "no end yet": '
                "if it means the program is still open, add it to open_end_dates under [dates] in the mapping"
            )
            return DateResult("", None, BAD_DATE, message)
        width = len(self.value)
        subject = (
            f"{'An' if width in (8, 11, 18) else 'A'} {width}-digit number" if self.value.isdigit() else "The value"
        )
        return DateResult("", None, BAD_DATE, f"{subject} is not a date: {_WHAT_TO_SEND}")


def _plausible(result: DateResult) -> DateResult:
    """``result``, or ``date_out_of_range`` when its day lies outside ``PLAUSIBLE_YEARS`` (the value is not
    quoted: it may be a birth date)."""
    if result.day is None or result.code is not None or result.day.year in PLAUSIBLE_YEARS:
        return result
    message = (
        f"The value is a date before {PLAUSIBLE_YEARS.start} or after {PLAUSIBLE_YEARS.stop - 1}, which no "
        "birth or start date is: a typo in the year, or a placeholder; correct it in the SIS"
    )
    return DateResult("", None, DATE_OUT_OF_RANGE, message)


class DateParser:
    """Caching parser: a real export repeats few distinct date strings over 1M rows, so parse each once.

    One parser per (file, date order) is the intended use.  The caches are plain dicts, cleared
    when they reach ``cache_size`` entries so that a file of unique garbage cannot grow memory unbounded.
    """

    __slots__ = ("_cache", "_cache_size", "_end_cache", "_open_days", "_open_words", "order")

    def __init__(
        self,
        order: DateOrder = DateOrder.MDY,
        open_sentinels: Iterable[str] = ("1/1/1900", "01-JAN-1900"),
        *,
        cache_size: int = 100_000,
    ) -> None:
        """``open_sentinels`` are end dates that mean "still open".

        A sentinel that is a date matches that day in every spelling (``1/1/1900`` also matches
        ``1900-01-01T00:00:00``); any other sentinel (``NULL``, ``OPEN``) matches as text, ignoring case.
        """
        self.order = order
        self._cache_size = cache_size
        self._cache: dict[str, DateResult] = {}
        self._end_cache: dict[str, DateResult] = {}
        self._open_days: set[date] = set()
        self._open_words: set[str] = set()
        for sentinel in open_sentinels:
            result = parse_date(sentinel, order)
            if result.code is None and result.day is not None:
                self._open_days.add(result.day)
            else:
                self._open_words.add(sentinel.strip().casefold())

    @property
    def cached(self) -> Callable[[str], DateResult | None]:
        """The cache's own ``dict.get``: a hot loop calls it first (a C call, no Python frame) and falls
        back to :meth:`parse` on a miss.  Stays valid when the cache is cleared."""
        return self._cache.get

    @property
    def cached_end(self) -> Callable[[str], DateResult | None]:
        """Like :attr:`cached`, for :meth:`parse_end`."""
        return self._end_cache.get

    def parse(self, raw: str) -> DateResult:
        """The result for ``raw``; hot path, one dict lookup when the value was seen before.  A date outside
        ``PLAUSIBLE_YEARS`` is a ``date_out_of_range`` error."""
        result = self._cache.get(raw)
        if result is None:
            result = self._remember(self._cache, raw, _plausible(parse_date(raw, self.order)))
        return result

    def parse_end(self, raw: str) -> DateResult:
        """Like :meth:`parse`, but an "open" sentinel gives the empty result, as an empty end date would, and
        any year is taken: an end date is no part of a record key, and ``12/31/9999`` is how many systems,
        and past uploads, write "no end yet"."""
        result = self._end_cache.get(raw)
        if result is None:
            result = parse_date(raw, self.order)
            result = self._remember(self._end_cache, raw, EMPTY if self._is_open(raw, result) else result)
        return result

    def _is_open(self, raw: str, result: DateResult) -> bool:
        if result.code is None:
            return result.day in self._open_days
        return raw.strip().casefold() in self._open_words

    def _remember(self, cache: dict[str, DateResult], raw: str, result: DateResult) -> DateResult:
        if len(cache) >= self._cache_size:
            cache.clear()
        cache[raw] = result
        return result
