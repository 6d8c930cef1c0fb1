"""One export row in, one programs.txt line (or the reasons it cannot be one) out.

This is the hot path of a nightly run (a million rows), so the mapping is compiled once per file into a flat
plan of positions and constants, each row is unpacked into local variables, and the clean case allocates no
finding at all.  Everything here is pure: the reference date (for "birth date in the future") is a parameter.

Messages never quote names, birth dates or student IDs; they point at the line and column instead.  Any
column may hold another column's value (a second export with another column order concatenated below the
first), so a value is quoted only when ``findings.quotable`` says its shape rules those out, or when it came
from the district's configuration (a code table code, a mapped value); otherwise it is described.

Record keys compare the way Illuminate compares them: Site ID is an integer key, so ``0012`` is written
``12``; invisible characters (a byte-order mark, zero-width spaces, ...) are taken out of every field the
conversion uses, from anywhere in a key or code and from the ends of a name, so a value that looks the
same is the same.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from enum import IntEnum
from operator import itemgetter
from typing import NamedTuple

from programs_bridge.convert.academic_year import academic_year_for, academic_year_mismatch, normalise_academic_year
from programs_bridge.convert.codetable import CodeTable
from programs_bridge.convert.dates import DATE_OUT_OF_RANGE, PLAUSIBLE_YEARS, DateParser
from programs_bridge.convert.findings import (
    CONTROL,
    INVISIBLE,
    LINE_SEPARATORS,
    SPACE_LIKE,
    Finding,
    describe,
    error,
    invisible_names,
    may_hide,
    quotable,
    shown,
    warning,
)
from programs_bridge.convert.headers import ColumnMatch
from programs_bridge.convert.id_shape import EXAMPLE_LINES, IdShape
from programs_bridge.convert.mapping import Mapping
from programs_bridge.programs_txt.layout import COLUMN_BY_FIELD, COLUMNS, Field, Layout, key_positions
from programs_bridge.programs_txt.render import render_line

RecordKey = tuple[str, str, str, str]
_SCIENTIFIC = re.compile(r"^\d(\.\d+)?[eE]\+\d+$")
_OLDEST_PLAUSIBLE_AGE = 25
#: Any invisible or special-space character.
_HIDDEN = re.compile(f"[{INVISIBLE}{SPACE_LIKE}]")
_INVISIBLE = re.compile(f"[{INVISIBLE}]")
_SPACE_LIKE = re.compile(f"[{SPACE_LIKE}]")
_CONTROL = re.compile(f"[{CONTROL}]")
_LINE_SEPARATOR = re.compile(f"[{LINE_SEPARATORS}]")
#: A line break or control code, which a key part must not hold inside it (``_broken_key``).
_BROKEN = re.compile(f"[\t\n\r{CONTROL}{LINE_SEPARATORS}]")
_KEY_TEXT = (Field.IMPORT_STUDENT_ID, Field.PROGRAM_ID, Field.SITE_ID)
_LEADING = re.compile(rf"[\s{INVISIBLE}]+")
_TRAILING = re.compile(rf"[\s{INVISIBLE}]+\Z")
_NAMES = frozenset({Field.LAST_NAME, Field.FIRST_NAME, Field.MIDDLE_NAME})
#: Distinct Site ID spellings already warned about; cleared when full, so memory stays flat.
_SITES_REMEMBERED = 1_000


class Outcome(IntEnum):
    WRITTEN = 0
    REJECTED = 1
    SKIPPED = 2


class RowResult(NamedTuple):
    """A tuple, not a dataclass: one is built per row, and tuples are the cheapest thing to build."""

    outcome: Outcome
    line: str = ""
    key: RecordKey = ("", "", "", "")
    findings: tuple[Finding, ...] = ()


SKIPPED = RowResult(Outcome.SKIPPED)
WRITTEN = Outcome.WRITTEN
#: ``tuple.__new__`` builds a RowResult without the Python-level ``__new__`` that NamedTuple generates.
_new_result = tuple.__new__


class RowConverter:
    """Compiled per file: the mapping resolved against this header, the layout, and the reference data."""

    def __init__(
        self,
        mapping: Mapping,
        match: ColumnMatch,
        header: Sequence[str],
        layout: Layout,
        *,
        today: date,
        code_table: CodeTable | None = None,
        person_required: bool = True,
    ) -> None:
        """``person_required=False``: rows for the ledger alone (``ConvertOptions.records_only``), which may
        lack names and birth date."""
        self.person_required = person_required
        self.width = len(header)
        # A headerless mapping may accept rows of other widths (SPRG-R's two trailing fields): those are cut
        # or padded to the width read.
        self.widths = frozenset(mapping.field_counts) if not mapping.header and mapping.field_counts else frozenset()
        self.expected = (
            f"the header has {self.width}" if mapping.header
            else f"mapping '{mapping.name}' reads rows of {' or '.join(map(str, sorted(self.widths)))} fields"
            if self.widths else f"the file's first row has {self.width}"
        )  # fmt: skip
        self.records = match.records
        self.record_rule = mapping.records
        self.layout = layout
        self.today = today
        self.oldest_birth = today.replace(year=today.year - _OLDEST_PLAUSIBLE_AGE - 1, month=1, day=1)
        self.code_table = code_table
        self.skip = match.skip
        # Unmapped columns read from constants appended after the row's own fields, so one C-level
        # itemgetter call picks all fifteen values.
        self.constants = [mapping.constants.get(c.field, "") for c in COLUMNS]
        #: Where each canonical field is read: a position in the row, or past its end (``constants``).
        self.positions = tuple(match.positions.get(c.field, self.width + n) for n, c in enumerate(COLUMNS))
        self.pick = itemgetter(*self.positions)
        canonical = [c.field for c in COLUMNS]
        # None for the standard layout, whose order is the canonical one: no reordering, and the record key
        # can be built from the values at hand.
        self.arrange = (
            None if list(layout.fields) == canonical else itemgetter(*(canonical.index(f) for f in layout.fields))
        )
        self.names = {
            c.field: header[match.positions[c.field]] if c.field in match.positions else c.label for c in COLUMNS
        }
        # Not quoting: a date column may hold a student ID or a birth date from a shifted row.
        self.dates = DateParser(mapping.dates.order, mapping.dates.open_end_dates)
        self.program_values = {k.strip().casefold(): v for k, v in mapping.values.get("program_id", {}).items()}
        self.site_values = {k.strip().casefold(): v for k, v in mapping.values.get("site_id", {}).items()}
        self.programs_required = "program_id" in mapping.required_values
        # A report column called just "Program" may hold the program's name, not its code key (Illuminate's
        # reports do): a value with a space in it there is not a Program ID.
        self.program_may_be_named = (
            Field.PROGRAM_ID in match.positions and self.names[Field.PROGRAM_ID].strip().casefold() == "program"
        )
        self.sites_required = "site_id" in mapping.required_values
        # Site IDs that are the district's own configuration, not a row's data: these may be quoted.
        self.configured_sites = set(self.site_values.values())
        if Field.SITE_ID not in match.positions and Field.SITE_ID in mapping.constants:
            self.configured_sites.add(mapping.constants[Field.SITE_ID].strip())
        self.sites_said: set[str] = set()
        # Where invisible characters are looked for: every column the conversion reads, names at their ends
        # only (a zero-width joiner inside a Persian or Indic name is part of its spelling).
        keys = {at for field, at in match.positions.items() if field not in _NAMES} | {at for at, _ in match.skip}
        keys |= {match.records[0]} if match.records else set()
        self.read_at = tuple(sorted(keys | set(match.positions.values())))
        #: Where the record key's text parts are read: a line break or control code inside one is refused.
        self.key_sources = {at: field for field, at in match.positions.items() if field in _KEY_TEXT}
        self.trim_only = frozenset(set(match.positions.values()) - keys)
        self.header = list(header)
        self.id_width = mapping.ids.import_student_id_width
        self.state_id_width = mapping.ids.state_student_id_width
        self.derive_year = mapping.academic_year.derive and Field.ACADEMIC_YEAR in layout.fields
        self.first_month = mapping.academic_year.first_month
        self.check_site = layout.needs_integer_site_id
        self.checked_504: set[str] = set()
        self.years: dict[date, str] = {}
        self.zeros_restored = 0
        self.id_shape = IdShape()
        self.parse_date, self.parse_end_date = self.dates.parse, self.dates.parse_end
        self.cached, self.cached_end = self.dates.cached, self.dates.cached_end
        self.key_at = key_positions(layout)
        self.tabs = len(layout.fields) - 1
        self.first_zero_restored_line: int | None = None

    def convert(self, line: int, fields: list[str]) -> RowResult:
        if len(fields) != self.width:
            if len(fields) not in self.widths:
                return RowResult(Outcome.REJECTED, findings=(self._miscounted(line, fields),))
            fields = fields[: self.width] + [""] * (self.width - len(fields))
        # One C-level test on the joined row (``may_hide``): a row of printable characters alone holds no
        # invisible character, control code or line break.
        joined = "".join(fields)
        revealed: list[Finding] | None = None
        if may_hide(joined):
            fields, revealed = self._reveal(line, fields)
        if self.records is not None and fields[self.records[0]].strip().casefold() not in self.records[1]:
            return RowResult(Outcome.REJECTED, findings=(self._other_record(line, fields),))
        for position, skip_values in self.skip:
            if fields[position].strip().casefold() in skip_values:
                return SKIPPED
        (sid, ssid, last, first, middle, birth, program, elig_start, elig_end, start, end, year, elig_code,
         exit_code, site) = self.pick(fields + self.constants)  # fmt: skip
        # Text values stripped one call each, cheaper than map() over all fifteen; dates need no stripping:
        # the date parser strips, and its caches are keyed by the raw value.
        sid, ssid, last, first, middle = sid.strip(), ssid.strip(), last.strip(), first.strip(), middle.strip()
        program, year, elig_code, exit_code = program.strip(), year.strip(), elig_code.strip(), exit_code.strip()
        site = site.strip()
        found: list[Finding] = revealed or []
        names = self.names
        F = Field

        # Import Student ID: the key Illuminate matches on, so damage here must stop the row.  The usual
        # all-digit ID is tested first: it is neither empty nor in scientific notation.  (``isdigit`` also
        # takes fullwidth and Arabic-Indic digits; ``isascii`` on the same value is a flag read, not a scan.)
        if sid.isdigit() and sid.isascii():
            width = len(sid)
            if self.id_width and width < self.id_width:
                sid = sid.zfill(self.id_width)
                self.zeros_restored += 1
                if self.first_zero_restored_line is None:
                    self.first_zero_restored_line = line
            elif width <= 30:  # longer is rejected below; IdShape.add, inlined for the hot loop
                shape = self.id_shape
                shape.by_width[width] += 1
                if sid[0] == "0":
                    shape.padded[width] = True
                if shape.by_width[width] <= EXAMPLE_LINES:
                    shape.examples[width].append(line)
        elif not sid:
            found.append(_required(line, names[F.IMPORT_STUDENT_ID], "Import Student ID"))
        elif not sid.isascii():
            found.append(_not_ascii(line, names[F.IMPORT_STUDENT_ID], "Import Student ID"))
        elif "+" in sid and _SCIENTIFIC.match(sid):
            found.append(_scientific(line, names[F.IMPORT_STUDENT_ID], "Import Student ID", fatal=True))
        if ssid:
            if "+" in ssid and _SCIENTIFIC.match(ssid):
                found.append(_scientific(line, names[F.STATE_STUDENT_ID], "State Student ID", fatal=False))
                ssid = ""
            elif self.state_id_width:
                ssid = pad_to(ssid, self.state_id_width)
        if not last and self.person_required:
            found.append(_required(line, names[F.LAST_NAME], "Student Last Name"))
        if not first and self.person_required:
            found.append(_required(line, names[F.FIRST_NAME], "Student First Name"))
        # Sums: no sum over its limit means no value over it, in fewer operations; _lengths checks each.
        if len(sid) + len(ssid) > 30 or len(last) + len(first) + len(middle) > 200:
            found.extend(self._lengths(line, sid, ssid, last, first, middle))

        # Program ID: a code key of the district's Student Programs code table.
        source_program = program
        if self.program_values:
            mapped = self.program_values.get(program.casefold())
            if mapped is not None:
                program = mapped
            elif self.programs_required and program:
                found.append(self._unmapped(line, F.PROGRAM_ID, program, (sid, ssid)))
        if not program:
            found.append(_required(line, names[F.PROGRAM_ID], "Program ID"))
        elif self.program_may_be_named and " " in program:
            found.append(error(line, names[F.PROGRAM_ID], "program_name", _PROGRAM_NAME))
        elif len(program) > 30:
            found.append(_too_long(line, names[F.PROGRAM_ID], "Program ID", 30))
        elif self.code_table is not None:  # a code key outside ASCII is found there, or is unknown_program
            found.extend(self._check_code(line, program, source_program))
        elif not program.isascii():
            found.append(_not_ascii(line, names[F.PROGRAM_ID], "Program ID", sent=True))

        if self.site_values:
            mapped = self.site_values.get(site.casefold())
            if mapped is not None:
                site = mapped
            elif self.sites_required and site:
                found.append(self._unmapped(line, F.SITE_ID, site, (sid, ssid)))
                site = ""
            elif self.sites_required:  # Site ID is part of the key: a row without it would open another record
                found.append(error(line, names[F.SITE_ID], "required", _NO_SCHOOL))
        if len(site) > 30:
            found.append(_too_long(line, names[F.SITE_ID], "Site ID", 30))
        elif self.check_site and site:
            if not site.isdigit() or not site.isascii():
                found.append(self._site_not_integer(line, site))
            elif site[0] == "0" and len(site) > 1:
                site = self._canonical_site(line, site, found)

        # Dates, unpacked: a NamedTuple's field access by name is a generic attribute lookup, unpacking is not.
        cached, cached_end = self.cached, self.cached_end
        born_text, born_day, born_code, _ = cached(birth) or self.parse_date(birth)
        if born_code:
            found.append(error(line, names[F.BIRTH_DATE], born_code, _birth_message(born_code)))
        elif not born_text and self.person_required:
            found.append(_required(line, names[F.BIRTH_DATE], "Birth Date"))
        elif born_day is not None and not self.oldest_birth <= born_day <= self.today:
            found.append(self._check_birth(line, born_day))
        es_text, es_day, es_code, es_message = cached(elig_start) or self.parse_date(elig_start)
        ee_text, ee_day, ee_code, ee_message = cached_end(elig_end) or self.parse_end_date(elig_end)
        ps_text, ps_day, ps_code, ps_message = cached(start) or self.parse_date(start)
        pe_text, pe_day, pe_code, pe_message = cached_end(end) or self.parse_end_date(end)
        if es_code or ee_code or ps_code or pe_code:
            for code, message, field in ((es_code, es_message, F.ELIGIBILITY_START_DATE),
                                         (ee_code, ee_message, F.ELIGIBILITY_END_DATE),
                                         (ps_code, ps_message, F.PROGRAM_START_DATE),
                                         (pe_code, pe_message, F.PROGRAM_END_DATE)):  # fmt: skip
                if code:
                    found.append(error(line, names[field], code, message or "not a date"))
        if not ps_text and not es_text and not ps_code and not es_code:
            found.append(
                error(
                    line,
                    names[F.PROGRAM_START_DATE],
                    "start_date_missing",
                    "neither Program Start Date nor Eligibility Start Date is given: Illuminate needs one "
                    "(Program Start Date preferred) and uses it in the record key",
                )
            )
        # A birth date said to be wrong already (in the future, an Excel serial) is not compared again.
        born = born_day if born_day is not None and not born_code and born_day <= self.today else None
        if born is not None and ((ps_day and ps_day < born) or (es_day and es_day < born)):
            found.extend(self._before_birth(line, born, ps_day, es_day))
        if pe_day and ps_day and pe_day < ps_day:
            found.append(_end_before_start(line, names[F.PROGRAM_END_DATE], "Program"))
        if ee_day and es_day and ee_day < es_day:
            found.append(_end_before_start(line, names[F.ELIGIBILITY_END_DATE], "Eligibility"))

        starts_on = ps_day or es_day
        if year:
            year, code, message = normalise_academic_year(year)
            if code:
                found.append(error(line, names[F.ACADEMIC_YEAR], code, message or "bad academic year"))
            elif starts_on is not None and academic_year_mismatch(year, starts_on, self.first_month):
                found.append(
                    warning(
                        line,
                        names[F.ACADEMIC_YEAR],
                        "academic_year_mismatch",
                        # The start date is not named: it may be a birth date in the wrong column.
                        f"Academic Year {shown(year)} does not contain the row's start date: correct the year "
                        "or the date in the SIS",
                    )
                )
        elif self.derive_year and starts_on is not None:
            year = self.years.get(starts_on) or self.academic_year_of(starts_on)

        if found and any(f.severity == "error" for f in found):
            return RowResult(Outcome.REJECTED, findings=tuple(found))
        values = (sid, ssid, last, first, middle, born_text, program, es_text, ee_text, ps_text, pe_text,
                  year, elig_code, exit_code, site)  # fmt: skip
        ordered = values if self.arrange is None else self.arrange(values)
        text = "\t".join(ordered)
        if text.count("\t") != self.tabs or "\n" in text or "\r" in text:
            text, _ = render_line(ordered)
            ordered = tuple(text.split("\t"))
            found.append(
                warning(
                    line,
                    None,
                    "line_break_in_value",
                    "a value held a tab or line break; it was replaced by a space (programs.txt cannot quote)",
                )
            )
            key = self._record_key(ordered)
        elif self.arrange is None:
            key = (sid, program, ps_text or es_text, site)  # the standard layout's record key (layout.record_key)
        else:
            key = self._record_key(ordered)
        return _new_result(RowResult, (WRITTEN, text, key, tuple(found) if found else ()))

    def _reveal(self, line: int, fields: list[str]) -> tuple[list[str], list[Finding]]:
        """The row without its invisible characters, and a warning for each value that held some.

        Keys and codes lose them wherever they are, and a special space inside one (a no-break space
        between a date and its time) becomes a plain space, but a line break or control code inside a key
        part (student, program, site) refuses the row (``_broken_key``).  Names lose invisible characters at
        their ends only (a joiner inside is part of a spelling), control codes anywhere, and a line break
        inside becomes a space.  Spaces at the ends are left to the usual stripping, which has always
        trimmed them, and are not warned about.
        """
        cleaned = fields.copy()
        found: list[Finding] = []
        for at in self.read_at:
            value = fields[at]
            if not may_hide(value):
                continue
            if at in self.key_sources and _BROKEN.search(value.strip()):
                found.append(self._broken_key(line, at))
                continue
            if _HIDDEN.search(value) is None:
                continue
            if at in self.trim_only:
                lead = _LEADING.match(value)
                trail = _TRAILING.search(value)
                start, end = (lead.end() if lead else 0), (trail.start() if trail else len(value))
                inner = value[start:end] if start < end else ""
                spaced, unbroken = "".join(_LINE_SEPARATOR.findall(inner)), _LINE_SEPARATOR.sub(" ", inner)
                controls = "".join(_CONTROL.findall(unbroken))
                removed = "".join(_INVISIBLE.findall(value[:start] + value[max(start, end) :])) + controls
                if not removed and not spaced:
                    continue
                cleaned[at] = _CONTROL.sub("", unbroken)
                where = "in this value" if controls or spaced else "at the start or end of this value"
                harm = "Illuminate would store them as part of the name"
            else:
                removed, spaced = "".join(_INVISIBLE.findall(value)), "".join(_SPACE_LIKE.findall(value.strip()))
                if not removed and not spaced:
                    continue
                cleaned[at] = _SPACE_LIKE.sub(" ", _INVISIBLE.sub("", value))
                where, harm = "in this value", "Illuminate would not match it to the same value typed without them"
            done = [f"removed {invisible_names(removed)}"] if removed else []
            if spaced:
                done.append(f"made {invisible_names(spaced)} a plain space")
            found.append(
                warning(
                    line,
                    self.header[at],
                    "invisible_character",
                    f"Characters nobody sees {where}: {'; '.join(done)}. Unseen, they make the value differ from "
                    f"what it looks like, and {harm}; re-type the value in the SIS to be rid of them",
                )
            )
        return cleaned, found

    def _broken_key(self, line: int, at: int) -> Finding:
        """A key part with a line break or control code inside: two values in one cell (a return typed in a
        spreadsheet cell, FileMaker's vertical tab).  Removing it, or making it a space, would send another
        student or program, so the row is refused; the value is not quoted."""
        label = COLUMN_BY_FIELD[self.key_sources[at]].label
        return error(
            line,
            self.header[at],
            "key_broken",
            f"{label} holds a line break or control code inside it, as if two values shared the cell; it is part "
            "of the record key, so the row is left out rather than sent under another key. Fix the cell in the SIS",
        )

    def wrong_file(self, fields: list[str]) -> str | None:
        """Why the whole file is the wrong one, judged on its first row: a record kind this mapping does not
        read (a CALPADS SENR file given to the SPRG profile).  None when the row's kind is read."""
        if self.records is None or self.record_rule is None:
            return None
        at, kinds = self.records
        if len(fields) <= at or fields[at].strip().casefold() in kinds:
            return None
        return (
            f"this is not a file of {' or '.join(self.record_rule.values)} records: the first row's "
            f"{self.header[at]} {self._kind(fields[at])}. Is this the right file? Send the "
            f"{'/'.join(self.record_rule.values)} extract"
        )

    def _miscounted(self, line: int, fields: list[str]) -> Finding:
        """A row of a field count the mapping does not read: a record of another kind (another CALPADS
        record type has another width) is named as such; an empty last field hints at a trailing delimiter."""
        records = self.records
        if records is not None and len(fields) > records[0] and fields[records[0]].strip().casefold() not in records[1]:
            return self._other_record(line, fields)
        count = len(fields)
        cause = "an unquoted delimiter inside a value, or a missing field"
        if not fields[-1].strip() and (count - 1 == self.width or count - 1 in self.widths):
            cause = "its last field is empty, as if the line ended with one delimiter too many"
        return error(
            line,
            None,
            "field_count",
            f"this row has {count} fields but {self.expected}: {cause}; fix the row in the SIS export",
        )

    def _other_record(self, line: int, fields: list[str]) -> Finding:
        assert self.records is not None and self.record_rule is not None
        at = self.records[0]
        return error(
            line,
            self.header[at],
            "other_record_type",
            f"this row's {self.header[at]} {self._kind(fields[at])}: this file should hold only "
            f"{' or '.join(self.record_rule.values)} records; the row is left out",
        )

    def _kind(self, value: str) -> str:
        """A record kind, quoted when it is one of the known kinds (a code), else described."""
        assert self.record_rule is not None
        value = value.strip()
        if value.casefold() in {other.casefold() for other in self.record_rule.others}:
            return f"is {value.upper()}, the record type of another file"
        return f"is {describe(value)}, not a record type this mapping reads"

    def _unmapped(self, line: int, field: Field, code: str, row_ids: tuple[str, str]) -> Finding:
        """A code with no entry in a value table the mapping requires (``required_values``)."""
        label, table = COLUMN_BY_FIELD[field].label, field.value
        school = field is Field.SITE_ID and _school_code(code, row_ids)  # a program's code is never a school's
        shown_code = f"'{code}'" if quotable(code) or school else describe(code)
        return error(
            line,
            self.names[field],
            f"unmapped_{table}",
            f"{label} comes from code {shown_code}, which has no entry in the mapping's [values.{table}] table: "
            f"add one that gives the district's {label} for it",
        )

    def _site_not_integer(self, line: int, site: str) -> Finding:
        fix = "add a values.site_id entry to the mapping or fix the export"
        if site in self.configured_sites:  # the mapping's own constant or values.site_id entry gave it
            what, fix = f"Site ID '{site}' is not a whole number", "correct that value in the mapping"
        elif quotable(site):
            what = f"Site ID '{site}' is not a whole number"
        else:
            what = f"Site ID is {describe(site)}, not a whole number"
        return error(
            line,
            self.names[Field.SITE_ID],
            "site_id_not_integer",
            f"{what}: Illuminate needs the numeric site key from sites.txt; {fix}",
        )

    def _canonical_site(self, line: int, site: str, found: list[Finding]) -> str:
        """``0012`` as ``12``, Illuminate's integer site key, said once for each spelling."""
        canonical = site.lstrip("0") or "0"
        if site not in self.sites_said:
            if len(self.sites_said) >= _SITES_REMEMBERED:
                self.sites_said.clear()
            self.sites_said.add(site)
            if site in self.configured_sites:
                what = f"Site ID '{site}' is written as {canonical}"
            else:  # not quoted: digits in the Site ID column may be a student ID from a shifted row
                what = "Site ID has leading zeros and is written without them"
            found.append(
                warning(
                    line,
                    self.names[Field.SITE_ID],
                    "site_id_normalised",
                    f"{what}: Illuminate compares site IDs as whole numbers (0012 and 12 are one site), and "
                    "one record written both ways would be two records here and in the ledger (said at the "
                    "first row of each spelling)",
                )
            )
        return canonical

    def _record_key(self, ordered: Sequence[str]) -> RecordKey:
        """``layout.record_key`` with the positions looked up once per file."""
        student, program_at, start_at, eligibility_at, site_at = self.key_at
        return (
            ordered[student],
            ordered[program_at],
            (ordered[start_at] if start_at >= 0 else "") or (ordered[eligibility_at] if eligibility_at >= 0 else ""),
            ordered[site_at] if site_at >= 0 else "",
        )

    def academic_year_of(self, day: date) -> str:
        """The academic year derived from a start day, remembered (a file has few distinct days)."""
        if len(self.years) > 10_000:
            self.years.clear()
        year = self.years[day] = academic_year_for(day, self.first_month)
        return year

    def _before_birth(self, line: int, born: date, *starts: date | None) -> list[Finding]:
        """A start date before the student was born: a birth date and a start date swapped between columns
        (which would put the birth date into the record key), or a typo.  No date is quoted."""
        out = []
        for field, day in zip((Field.PROGRAM_START_DATE, Field.ELIGIBILITY_START_DATE), starts, strict=True):
            if day is not None and day < born:
                label = COLUMN_BY_FIELD[field].label
                out.append(
                    error(
                        line,
                        self.names[field],
                        "start_before_birth",
                        f"{label} is before the student's Birth Date: one of the two is in the wrong column or "
                        "mistyped, and the start date is part of the record key; correct it in the SIS",
                    )
                )
        return out

    def _lengths(self, line: int, *values: str) -> list[Finding]:
        fields = (F := Field).IMPORT_STUDENT_ID, F.STATE_STUDENT_ID, F.LAST_NAME, F.FIRST_NAME, F.MIDDLE_NAME
        out = []
        for field, value in zip(fields, values, strict=True):
            column = COLUMN_BY_FIELD[field]
            if column.max_length is not None and len(value) > column.max_length:
                out.append(_too_long(line, self.names[field], column.label, column.max_length))
        return out

    def _check_code(self, line: int, program: str, source_program: str) -> list[Finding]:
        table = self.code_table
        assert table is not None
        column = self.names[Field.PROGRAM_ID]
        if program not in table:
            mapped = program != source_program  # the value came from the mapping: configuration, not data
            return [
                error(
                    line,
                    column,
                    "unknown_program",
                    f"Program ID {shown(program, checked=mapped)} is not a code key in the district's Student "
                    "Programs code table: use the code key (not the program name), or add a values.program_id "
                    "entry to the mapping",
                )
            ]
        if program in self.checked_504:
            return []
        self.checked_504.add(program)
        code_504 = table.code_504
        if program != code_504 and table.looks_like_504(program, source_program):
            where = f"code '{code_504}'" if code_504 else "a code with system key 504_plan (none in the table)"
            return [
                warning(
                    line,
                    column,
                    "not_504_system_code",
                    f"Program ID '{program}' looks like a 504 plan but is not {where}: Illuminate's 504 alert "
                    "in the student ribbon will not show for it (said once for all rows with this code)",
                )
            ]
        return []

    def _check_birth(self, line: int, born: date) -> Finding:
        column = self.names[Field.BIRTH_DATE]
        if born > self.today:
            return error(line, column, "birth_date_future", "Birth Date is in the future; correct it in the SIS")
        return warning(
            line,
            column,
            "birth_date_implausible",
            f"Birth Date makes the student older than {_OLDEST_PLAUSIBLE_AGE}; check it in the SIS",
        )


def pad_to(digits: str, width: int) -> str:
    """An all-digit ID shorter than ``width``, zero-padded to it (Excel strips the zeros); else unchanged."""
    return digits.zfill(width) if len(digits) < width and digits.isdigit() else digits


def _school_code(value: str, row_ids: tuple[str, str]) -> bool:
    """Whether ``value`` may be quoted as a school code: the 7 digits of a CDS school code (not a date, not a
    name) that are neither of the row's own student IDs.  A value misplaced in a school column comes from
    its own row, so this rules a student ID out where ``quotable``, which never quotes numbers, cannot."""
    return len(value) == 7 and value.isdigit() and value.isascii() and value not in row_ids


_PROGRAM_NAME = (
    "the Program column holds a program's name here, not its code key: take the report with the Program Code "
    "(or Program ID) column, or map the names to code keys in a mapping's [values.program_id]"
)
_NO_SCHOOL = "the school code is empty: the mapping needs every row's school for its Site ID; fill it in the SIS"


def _required(line: int, column: str, label: str) -> Finding:
    return error(line, column, "required", f"{label} is empty: Illuminate requires it; fill it in the SIS")


def _not_ascii(line: int, column: str, label: str, *, sent: bool = False) -> Finding:
    """A key that looks right and matches nothing: fullwidth digits from an East Asian input method, a
    Cyrillic letter that looks Latin; the value is not quoted.  ``sent``: a Program ID with no code table to
    check it against, which may still be the district's own code key (Bilingüe), is sent with a warning."""
    what = (
        f"{label} holds a character outside ASCII (a fullwidth digit, a letter of another script that looks like "
        "a Latin one)"
    )
    if sent:
        return warning(
            line,
            column,
            "id_not_ascii",
            f"{what}: sent, but unless it is exactly a code key of the district's Student Programs code table "
            "Illuminate will not match it; give the code table (--code-table, or the feed's code_table) to have "
            "it checked",
        )
    return error(
        line,
        column,
        "id_not_ascii",
        f"{what}: Illuminate would not match it to the student's record; re-type it in the SIS",
    )


def _too_long(line: int, column: str, label: str, limit: int) -> Finding:
    return error(line, column, "too_long", f"{label} is longer than Illuminate's limit of {limit} characters")


def _scientific(line: int, column: str, label: str, *, fatal: bool) -> Finding:
    consequence = (
        "the row is left out because the ID cannot be recovered" if fatal else "the value is left empty in programs.txt"
    )
    return (error if fatal else warning)(
        line,
        column,
        "excel_scientific_id",
        f"{label} is in scientific notation (like 1.23457E+11): Excel rewrote it and the digits are lost; "
        f"{consequence}. Re-export from the SIS without opening the file in Excel",
    )


def _birth_message(code: str) -> str:
    """Like the date parser's message, without quoting the birth date itself (personal data)."""
    if code == "excel_serial_date":
        return "Birth Date is an Excel serial number, not a date: the file was re-saved by Excel; re-export it"
    if code == "impossible_date":
        return "Birth Date is not a real calendar date; correct it in the SIS"
    if code == DATE_OUT_OF_RANGE:
        first, last = PLAUSIBLE_YEARS.start, PLAUSIBLE_YEARS.stop - 1
        return (
            f"Birth Date is before {first} or after {last}: a typo in the year, or a placeholder; correct it in the SIS"
        )
    return "Birth Date is not a date in a form we read (e.g. MM/DD/YYYY or YYYY-MM-DD); correct it in the SIS"


def _end_before_start(line: int, column: str, what: str) -> Finding:
    """The dates are not named: either may be a birth date in the wrong column."""
    return error(
        line, column, "end_before_start", f"{what} End Date is before {what} Start Date; correct one of them in the SIS"
    )
