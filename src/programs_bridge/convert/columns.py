"""The fast path for clean rows: a batch of export rows converted column by column.

Why it exists: on a nightly export nearly every row is clean, and for a clean row ``RowConverter.convert``
does the same work every time, one Python operation at a time: strip each value, look each date up, test
each value for the handful of things that can be wrong with it, join the line.  Column by column the same
work runs in C over the whole batch (``zip(*rows)``, ``map(str.strip, column)``, one dictionary lookup a
value), and a value is judged in Python only the first time it is seen: a date, a program or a site that
passed is remembered with what it is written as, so the next million rows find it in a dictionary.

The per-row path stays the reference.  This module only *claims* rows: a row is converted here when every
test below shows that the reference would write it, unchanged by any repair and without a single finding;
every other row is left to the reference, in its place in line order (``Converted.slow``).  The tests are
deliberately conservative, so falling back costs speed, never correctness.  A claimed row

* has the header's width, and no invisible or special-space character in a value the conversion reads
  (the reference's own test, ``RowConverter._reveal``, finds nothing to say about the others);
* is of a record kind the mapping reads, and matches none of its skip rules;
* has an all-digit Import Student ID that needs no zeros restored, of a width whose example lines the
  leading-zeros tally (``id_shape``) has already collected, and a State Student ID without a ``+``;
* has the names a delivery needs, within Illuminate's lengths;
* has a Program ID that maps, is a code key (no space in a "Program" column, at most 30 characters) and,
  with a code table, one the reference has already checked (``RowConverter.checked_504``);
* has a Site ID that maps and is a whole number without leading zeros (those are said once per spelling,
  which only the reference does);
* has dates that parse (a plausible birth date), a start date, no end before its start, and an academic
  year that is one and agrees with the start date (or none, derived as the reference derives it);
* renders to a line without a tab or line break inside a value.

Why the converter's state cannot make the two paths differ: it either only grows (the programs checked
against the code table, the ID widths tallied), so a row claimed at the start of a batch is still one the
reference would pass after the batch's other rows went through it; or it is a cache of pure answers (dates,
derived years), the same whoever asked first.  The fast path adds to the tally only for widths whose
examples are complete: counts and flags, the same in any order.  What is counted or said once (zeros
restored, a site's leading zeros, a 504-like code) is left to the reference.  What the fast path remembers
is what passed, and what passed once passes again: a value that failed is judged again each time.  Every
table it keeps is cleared when full, so memory stays flat.

``tests/convert/test_columns.py`` feeds random damage through both paths and checks that they agree.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from datetime import date
from itertools import compress, count, repeat
from operator import and_, is_, itemgetter, lt, not_
from typing import NamedTuple, TypeVar

from programs_bridge.convert.academic_year import academic_year_mismatch, normalise_academic_year
from programs_bridge.convert.dates import DateResult
from programs_bridge.convert.findings import may_hide
from programs_bridge.convert.id_shape import EXAMPLE_LINES
from programs_bridge.convert.reader import Batch
from programs_bridge.convert.rows import RecordKey, RowConverter, pad_to
from programs_bridge.programs_txt.layout import COLUMNS, Field, record_keys

Column = Sequence[str]
_K = TypeVar("_K", bound=Hashable)
_T = TypeVar("_T")

_AT = {column.field: n for n, column in enumerate(COLUMNS)}
_TEXT_FIELDS = (
    Field.IMPORT_STUDENT_ID, Field.STATE_STUDENT_ID, Field.LAST_NAME, Field.FIRST_NAME, Field.MIDDLE_NAME,
    Field.PROGRAM_ID, Field.ACADEMIC_YEAR, Field.ELIGIBILITY_CODE, Field.EXIT_CODE, Field.SITE_ID,
)  # fmt: skip
_MAX_IDS, _MAX_NAMES = 30, 200  # the sums of lengths under which the reference never looks at each value
_REMEMBERED = 50_000  # values per table before it is cleared
_NO_DAY, _OPEN_END = 0, date.max.toordinal() + 1  # a missing start is before, a missing end after, every day


class Converted(NamedTuple):
    """One batch: the claimed rows' lines, keys and export lines, in order, and where the others are."""

    texts: list[str]
    keys: list[RecordKey]
    lines: list[int]
    slow: list[int]
    """Positions in the batch (ascending) of the rows left to the per-row path."""
    block: str
    """With no slow row: ``texts``, each followed by the newline (one write); else empty."""
    folded: bool = False
    """Every key is its own case-folding (``DuplicateFinder.add``): digits for IDs, programs checked."""

    @classmethod
    def none_claimed(cls, rows: int) -> Converted:
        """A batch of ``rows`` rows left whole to the per-row path."""
        return cls([], [], [], list(range(rows)), "")


class _Same(list[str]):
    """A column that holds one value on every row: a constant of the mapping."""


class _Dates:
    """One kind of date (birth, start or end) as the fast path knows it: the raw values that passed, with
    their text, and each text's day, looked up in C.  A value is parsed by the reference's own
    ``DateParser``.  Days are keyed by the text, a few hundred shared strings whose hashes are cached, not by
    the raw values, fresh strings from every row that would each be hashed again."""

    __slots__ = ("accept", "days", "missing_day", "parse", "texts")

    def __init__(
        self, parse: Callable[[str], DateResult], accept: Callable[[DateResult], bool], missing_day: int
    ) -> None:
        self.parse, self.accept, self.missing_day = parse, accept, missing_day
        self.texts: dict[str, str] = {}
        self.days: dict[str, int] = {"": missing_day}
        """Text -> day as an ordinal; an accepted value's text is empty only when it names no day."""

    def text(self, raw: Column, bad: set[int]) -> list[str]:
        """Each row's date text; a row whose value does not pass is marked ``bad`` (and gets ``""``)."""
        if isinstance(raw, _Same):  # a constant: one value for every row
            text = self._learn(raw[0])
            if text is None:
                bad.update(range(len(raw)))
            return [text or ""] * len(raw)
        known = _looked_up(self.texts, raw)
        if known is not None:
            return known
        found = list(map(self.texts.get, raw))
        for at in compress(count(), map(is_, found, repeat(None))):
            text = self._learn(raw[at])
            if text is None:
                bad.add(at)
            found[at] = text or ""
        return found  # type: ignore[return-value]  # no None left

    def _learn(self, value: str) -> str | None:
        """The text of a value seen for the first time (remembered with its day), or None: it does not pass."""
        result = self.parse(value)
        if not self.accept(result):
            return None
        self.texts[value] = result.text
        if result.day is not None:
            self.days[result.text] = result.day.toordinal()
        return result.text

    def days_of(self, texts: Iterable[str]) -> list[int]:
        """The day (an ordinal; ``missing_day`` for ``""``) of each text that ``text`` gave in this batch."""
        return list(map(self.days.__getitem__, texts))

    def trim(self) -> None:
        """Forget every value when full: between batches only, so a batch's days are there for its checks."""
        if len(self.texts) >= _REMEMBERED:
            self.texts.clear()
            self.days.clear()
            self.days[""] = self.missing_day


class ColumnConverter:
    """The fast path beside one file's ``RowConverter``, whose compiled plan, tables and caches it shares."""

    def __init__(self, rows: RowConverter, newline: str = "\n") -> None:
        self.rows = rows
        self.newline = newline
        rc = rows
        self._constant = {n: rc.constants[n] for n, at in enumerate(rc.positions) if at >= rc.width}
        #: A constant with a tab or line break in it (the reference replaces it, and says so) claims no row.
        self.claims = not any(map(_breaks, self._constant.values()))
        dates = rc.dates
        self._births = _Dates(dates.parse, self._good_birth, _NO_DAY)
        self._starts = _Dates(dates.parse, _parsed, _NO_DAY)
        self._ends = _Dates(dates.parse_end, _parsed, _OPEN_END)
        self._derived: dict[str, str] = {}
        """Program Start Date (its text, a day) -> the academic year derived from it."""
        self._year_texts: dict[tuple[str, int], str] = {}
        """A given Academic Year and a start day that passed (``_year``) -> the year as written."""
        self._programs: dict[str, str] = {}
        self._cased: set[str] = set()
        """Program IDs claimed that case-folding changes (the duplicate finder folds them)."""
        self._sites: dict[str, str] = {}

    def convert(self, batch: Batch) -> Converted:
        """Claim and convert the rows of ``batch`` that qualify; say which ones are the per-row path's."""
        lines: Sequence[int]
        records: Sequence[list[str]]
        lines, records = batch
        size = len(records)
        if not self.claims:
            return Converted.none_claimed(size)
        width = self.rows.width
        kept: Sequence[int] = range(size)
        if not all(map(width.__eq__, map(len, records))):
            kept = list(compress(count(), map(width.__eq__, map(len, records))))
            records, lines = [records[at] for at in kept], [lines[at] for at in kept]
        texts, keys, widths, sids, bad = self._columns(records) if records else ([], [], [], [], set())
        claimed_lines = list(lines)
        for at in sorted(bad, reverse=True):  # few: each a C-level move of the rest
            del texts[at], keys[at], claimed_lines[at], widths[at], sids[at]
        self._tally(widths, sids)
        if len(texts) == size:
            block = self.newline.join(texts) + self.newline
            return Converted(texts, keys, claimed_lines, [], block, self._folded(keys))
        slow = sorted(set(range(size)).difference(kept).union(kept[at] for at in bad))
        return Converted(texts, keys, claimed_lines, slow, "")

    def _columns(
        self, records: Sequence[list[str]]
    ) -> tuple[list[str], list[RecordKey], list[int], list[str], set[int]]:
        """The lines, keys, Import Student IDs and their widths of ``records`` (all of the header's width),
        and which of them the fast path cannot vouch for (``bad``: indices into ``records``)."""
        rc = self.rows
        size = len(records)
        bad: set[int] = set()
        self._trim()
        source = list(zip(*records, strict=True))
        bare = set()  # columns without a space anywhere, which stripping would not change
        for at in rc.read_at:  # C-level tests of a column; a value at a time only in a column that fails one
            joined = "".join(source[at])
            if may_hide(joined):
                _mark(bad, map(may_hide, source[at]))
            if "\t" in joined or "\n" in joined or "\r" in joined:  # programs.txt cannot hold them
                _mark(bad, map(_breaks, source[at]))
            if joined.split(None, 1) == [joined]:  # no whitespace: str.strip strips what str.split splits on
                bare.add(at)  # (maxsplit 1: a column with spaces stops at the first, not split into every word)
        if rc.records is not None:
            at, kinds = rc.records
            _mark(bad, map(kinds.__contains__, map(str.casefold, map(str.strip, source[at]))), invert=True)
        for at, skip_values in rc.skip:
            _mark(bad, map(skip_values.__contains__, map(str.casefold, map(str.strip, source[at]))))
        constant = self._constant

        def raw(field: Field) -> Column:
            n = _AT[field]
            return _Same([constant[n]] * size) if n in constant else source[rc.positions[n]]

        def stripped(field: Field) -> list[str]:
            n = _AT[field]
            if n in constant:
                return [constant[n].strip()] * size
            at = rc.positions[n]
            return list(source[at]) if at in bare else list(map(str.strip, source[at]))

        # Text values stripped as the reference strips them; dates looked up raw, as its caches are keyed.
        sids, ssids, lasts, firsts, middles, programs, years, eligibility_codes, exit_codes, sites = map(
            stripped, _TEXT_FIELDS
        )
        widths = self._student_ids(sids, bad)
        ssids = self._state_ids(ssids, bad)
        if rc.person_required:
            for names in (lasts, firsts):
                if not all(names):
                    _mark(bad, map(not_, names))
        if max(widths) + max(map(len, ssids)) > _MAX_IDS:
            _mark(bad, (len(a) + len(b) > _MAX_IDS for a, b in zip(sids, ssids, strict=True)))
        programs = _remembered(programs, self._programs, self._program, bad)
        sites = _remembered(sites, self._sites, self._site, bad)

        births = self._births.text(raw(Field.BIRTH_DATE), bad)
        es_raw, ps_raw = raw(Field.ELIGIBILITY_START_DATE), raw(Field.PROGRAM_START_DATE)
        ee_raw, pe_raw = raw(Field.ELIGIBILITY_END_DATE), raw(Field.PROGRAM_END_DATE)
        es_text, ps_text = self._starts.text(es_raw, bad), self._starts.text(ps_raw, bad)
        ee_text, pe_text = self._ends.text(ee_raw, bad), self._ends.text(pe_raw, bad)
        begins = ps_text if all(ps_text) else [p or e for p, e in zip(ps_text, es_text, strict=True)]
        if not all(begins):
            _mark(bad, map(not_, begins))  # neither start date: start_date_missing
        born_on, start_on = self._births.days.__getitem__, self._starts.days.__getitem__
        for start_text in (ps_text, es_text):  # start_before_birth, on the rows that have the start date:
            # one pass of chained C iterators; the rows are found only in a batch that has one.
            if any(start_text) and any(compress(map(lt, map(start_on, start_text), map(born_on, births)), start_text)):
                early = map(lt, map(start_on, start_text), map(born_on, births))
                bad.update(compress(count(), map(and_, early, map(bool, start_text))))
        for end_text, start_text in ((pe_text, ps_text), (ee_text, es_text)):
            if any(end_text):  # end_before_start, on the rows that have an end
                ends_on = self._ends.days_of(compress(end_text, end_text))
                starts_on = self._starts.days_of(compress(start_text, end_text))
                if any(map(lt, ends_on, starts_on)):
                    bad.update(compress(compress(count(), end_text), map(lt, ends_on, starts_on)))
        years = self._years(years, ps_raw, ps_text, es_raw, begins, bad)

        values = [sids, ssids, lasts, firsts, middles, births, programs, es_text, ee_text, ps_text, pe_text,
                  years, eligibility_codes, exit_codes, sites]  # fmt: skip
        ordered: Sequence[Column] = values if rc.arrange is None else rc.arrange(values)
        texts = list(map("\t".join, zip(*ordered, strict=True)))
        longest = max(map(len, texts))
        if longest > _MAX_NAMES:  # a line no longer than the limit holds names no longer than it
            sums = zip(map(len, lasts), map(len, firsts), map(len, middles), strict=True)
            _mark(bad, (a + b + c > _MAX_NAMES for a, b, c in sums))
        return texts, record_keys(ordered, rc.key_at, size), widths, sids, bad

    def _trim(self) -> None:
        for dates in (self._births, self._starts, self._ends):
            dates.trim()
        for known in (self._derived, self._year_texts, self._programs, self._sites):
            if len(known) >= _REMEMBERED:
                known.clear()
        if not self._programs:
            self._cased.clear()  # every program is learnt again, and said again if folding changes it

    # --- one column each ------------------------------------------------------------------------------

    def _student_ids(self, sids: list[str], bad: set[int]) -> list[int]:
        """Claim only all-digit IDs that the reference would neither pad nor give an example line of the
        leading-zeros tally; their widths."""
        if not all(map(str.isdigit, sids)):
            _mark(bad, map(str.isdigit, sids), invert=True)
        if not "".join(sids).isascii():  # str.isdigit also takes fullwidth digits: id_not_ascii
            _mark(bad, map(str.isascii, sids), invert=True)
        rc, tallied = self.rows, self.rows.id_shape.by_width
        widths = list(map(len, sids))
        unsure = {
            width
            for width in set(widths)
            if width > _MAX_IDS or (rc.id_width and width < rc.id_width) or tallied[width] < EXAMPLE_LINES
        }
        if unsure:
            _mark(bad, map(unsure.__contains__, widths))
        return widths

    def _state_ids(self, ssids: list[str], bad: set[int]) -> list[str]:
        """A ``+`` may be scientific notation, which the reference reports; zeros padded as it pads them."""
        if "+" in "".join(ssids):
            _mark(bad, map(str.__contains__, ssids, repeat("+")))
        width = self.rows.state_id_width
        if width and min(map(len, ssids)) < width:
            return [pad_to(ssid, width) for ssid in ssids]
        return ssids

    def _program(self, program: str) -> str | None:
        """The Program ID the reference would write for ``program`` without a finding, or None."""
        rc = self.rows
        if rc.program_values:
            mapped = rc.program_values.get(program.casefold())
            if mapped is not None:
                program = mapped
            elif rc.programs_required and program:
                return None
        if not program or (rc.program_may_be_named and " " in program) or len(program) > _MAX_IDS:
            return None
        if not program.isascii() and rc.code_table is None:  # id_not_ascii's warning
            return None
        if rc.code_table is not None and program not in rc.checked_504:  # checked: in the table, said once
            return None
        if _breaks(program):
            return None
        if program.casefold() != program:
            self._cased.add(program)
        return program

    def _site(self, site: str) -> str | None:
        """The Site ID the reference would write for ``site`` without a finding, or None."""
        rc = self.rows
        if rc.site_values:
            mapped = rc.site_values.get(site.casefold())
            if mapped is not None:
                site = mapped
            elif rc.sites_required:
                return None
        if rc.check_site and site and (not site.isdigit() or not site.isascii() or (site[0] == "0" and len(site) > 1)):
            return None
        return None if _breaks(site) or len(site) > _MAX_IDS else site

    def _good_birth(self, result: DateResult) -> bool:
        rc = self.rows
        text, day, code, _ = result
        if code or (not text and rc.person_required):
            return False
        return day is None or rc.oldest_birth <= day <= rc.today

    def _years(
        self, years: list[str], ps_raw: Column, ps_text: list[str], es_raw: Column, begins: list[str], bad: set[int]
    ) -> list[str]:
        """Academic Year as the reference writes it: normalised when given, else derived when asked for.
        ``begins``: each row's start date text, the Program Start Date's or else the Eligibility Start Date's."""
        rc, dates = self.rows, self.rows.dates
        if any(years):  # a year column: one answer per (year, start day), remembered: a year's checks are a
            # regular expression and a date sum
            pairs = list(zip(years, self._starts.days_of(begins), strict=True))
            return _remembered(pairs, self._year_texts, self._year, bad)
        if not rc.derive_year:
            return years
        known = _looked_up(self._derived, ps_text)
        if known is not None:
            return known
        derived = list(map(self._derived.get, ps_text))
        for at in compress(count(), map(is_, derived, repeat(None))):
            if at in bad:
                derived[at] = ""
                continue
            start_day = dates.parse(ps_raw[at]).day
            day = start_day or dates.parse(es_raw[at]).day
            derived[at] = year = "" if day is None else rc.years.get(day) or rc.academic_year_of(day)
            if start_day is not None:  # the year depends on the Program Start Date alone
                self._derived[ps_text[at]] = year
        return derived  # type: ignore[return-value]  # no None left

    def _year(self, pair: tuple[str, int]) -> str | None:
        """A given (or blank) Academic Year and the row's start day (an ordinal, ``_NO_DAY`` for none) ->
        the year as the reference writes it, or None: the reference reports the row."""
        rc = self.rows
        year, ordinal = pair
        starts_on = date.fromordinal(ordinal) if ordinal != _NO_DAY else None
        if year:
            text, code, _ = normalise_academic_year(year)
            if code or (starts_on is not None and academic_year_mismatch(text, starts_on, rc.first_month)):
                return None
            return text
        if rc.derive_year and starts_on is not None:
            return rc.years.get(starts_on) or rc.academic_year_of(starts_on)
        return ""

    def _folded(self, keys: list[RecordKey]) -> bool:
        """Whether every key is its own case-folding: the Import Student IDs are digits (``str.isdigit``: no
        digit has a case), so only a Program ID that folding changes can make one differ."""
        if not self._cased:
            return True
        return self._cased.isdisjoint(map(itemgetter(1), keys))

    def _tally(self, widths: list[int], sids: list[str]) -> None:
        """The claimed rows' Import Student IDs in the leading-zeros tally: of widths whose examples are
        complete, so counts and 'padded' flags only, the same in any order."""
        shape = self.rows.id_shape
        distinct = set(widths)
        for width in distinct:
            shape.by_width[width] += widths.count(width)
        if not all(shape.padded[width] for width in distinct):
            for width in set(compress(widths, map(str.startswith, sids, repeat("0")))):
                shape.padded[width] = True


def _parsed(result: DateResult) -> bool:
    return not result.code


def _breaks(value: str) -> bool:
    return "\t" in value or "\n" in value or "\r" in value


def _mark(bad: set[int], flags: Iterable[object], *, invert: bool = False) -> None:
    """Add to ``bad`` the index of every true flag (every false one with ``invert``), in C."""
    bad.update(compress(count(), map(not_, flags) if invert else flags))


def _remembered(
    column: Sequence[_K], known: dict[_K, str], convert: Callable[[_K], str | None], bad: set[int]
) -> list[str]:
    """Each value as ``convert`` writes it, found in ``known`` once it passed; the rows of a value that does
    not pass (None) are marked ``bad``."""
    every = _looked_up(known, column)
    if every is not None:
        return every
    found = list(map(known.get, column))
    for at in compress(count(), map(is_, found, repeat(None))):
        text = convert(column[at])
        if text is None:
            bad.add(at)
            found[at] = ""
            continue
        known[column[at]] = found[at] = text
    return found  # type: ignore[return-value]  # no None left


def _looked_up(table: dict[_K, _T], column: Iterable[_K]) -> list[_T] | None:
    """Every value of ``column`` found in ``table``, one C-level lookup a row; None when one is missing.

    ``__getitem__`` and a KeyError, not ``get`` and a test for None: comparing every value with None costs
    as much as the lookups."""
    try:
        return list(map(table.__getitem__, column))
    except KeyError:
        return None
