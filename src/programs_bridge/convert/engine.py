"""Convert one export into programs.txt: read, map, validate, de-duplicate, apply the reject policy.

The output is staged next to its destination and only moved into place when the file as a whole is
accepted, so a rejected run never leaves a partial or stale-looking programs.txt behind, and a reader of the
destination never sees half a file.  Memory stays flat with the file's size: rows stream through, findings
spool to disk (``finding_log.py``), duplicate keys are found with a fixed-size bitset and decided from
temporary files (``dedupe.py``).
"""

from __future__ import annotations

import os
import tempfile
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from itertools import chain, compress, islice
from operator import itemgetter
from pathlib import Path
from typing import IO, BinaryIO

from programs_bridge.convert import staging_process
from programs_bridge.convert.codetable import CodeTable
from programs_bridge.convert.columns import ColumnConverter, Converted
from programs_bridge.convert.dates import parse_date
from programs_bridge.convert.dedupe import DuplicateFinder, RowSet
from programs_bridge.convert.finding_log import FindingLog
from programs_bridge.convert.findings import Finding, info, warning
from programs_bridge.convert.headers import PERSON_FIELDS, ColumnMatch, match_columns
from programs_bridge.convert.mapping import Mapping
from programs_bridge.convert.profiles import (
    CALPADS_SPRG,
    ILLUMINATE_PROFILES,
    PROFILES,
    base_profile,
    closest_profile,
    detect_profile,
    is_built_in,
)
from programs_bridge.convert.reader import (
    DEFAULT_LIMITS,
    Batch,
    ExportError,
    ExportInfo,
    ExportReader,
    ReadCounts,
    ReadLimits,
)
from programs_bridge.convert.rows import WRITTEN, Outcome, RecordKey, RowConverter
from programs_bridge.programs_txt.layout import COLUMN_BY_FIELD, COLUMNS, LEGACY, Field, key_positions
from programs_bridge.programs_txt.render import OutputFormat, render_header

DEFAULT_MAX_REJECT_SHARE = 0.05
_PROGRESS_EVERY = 50_000
_LINE_CHUNK = 1 << 16
_SITE_OF = itemgetter(3)  # of a RecordKey
_BATCH = 512  # rows converted and staged at a time: the per-batch calls are nearly free, and the batch stays in cache


class Status(StrEnum):
    OK = "ok"
    """Every row made it into programs.txt (warnings allowed)."""
    PARTIAL = "partial"
    """programs.txt was written; some rows were left out and are listed in the report."""
    REJECTED = "rejected"
    """Nothing was written: the file as a whole is not fit to send."""


@dataclass(frozen=True)
class ConvertOptions:
    output: OutputFormat = field(default_factory=OutputFormat)
    mapping: Mapping | None = None
    """None: detect a built-in profile from the header."""
    code_table: CodeTable | None = None
    max_reject_share: float = DEFAULT_MAX_REJECT_SHARE
    delimiter: str | None = None
    """None: the mapping's, else sniffed."""
    encoding: str | None = None
    today: date = field(default_factory=date.today)
    keep_source_lines: bool = False
    """Also write ``Conversion.source_lines``: which export line each programs.txt row came from."""
    read_limits: ReadLimits = DEFAULT_LIMITS
    """How large a file, line, value and header may be before the file is refused (README: What it reads)."""
    column_path: bool = True
    """Convert clean rows column by column (``columns.py``); False sends every row through the per-row
    reference, which gives the same output, findings and report (tests and benchmarks compare the two)."""
    staging_process: bool | None = None
    """Stage the written rows and run the duplicate finder's pass 1 in a second process
    (``staging_process.py``); None: when the file is large enough and there is a second CPU.  The same
    output, findings and report either way."""
    records_only: bool = False
    """The rows feed the ledger alone (``ledger seed``), never a delivery: a report of Illuminate's records
    may then lack names and birth date (``headers.PERSON_FIELDS``), which stay empty."""


@dataclass
class Conversion:
    """What happened to one export; ``report.conversion`` turns it into the JSON report and the summary."""

    source: str
    status: Status = Status.REJECTED
    reason: str | None = None
    profile: str | None = None
    profile_detected: bool = False
    info: ExportInfo | None = None
    options: ConvertOptions = field(default_factory=ConvertOptions)
    rows_read: int = 0
    rows_valid: int = 0
    """Rows that passed every check (written unless the file as a whole was rejected)."""
    rows_written: int = 0
    rows_rejected: int = 0
    rows_skipped: int = 0
    rows_merged: int = 0
    rows_blank: int = 0
    """Blank or delimiter-only lines, skipped: not rows, but counted so that every line is accounted for."""
    lines_read: int = 0
    """Physical lines: the header, ``rows_read`` rows, ``rows_blank`` and lines inside quoted values."""
    reason_code: str | None = None
    """With a limit's refusal, which one (``file_too_large``, ``line_too_long`` ...)."""
    findings: FindingLog = field(default_factory=FindingLog)
    output: Path | None = None
    source_lines: Path | None = None
    """With ``keep_source_lines``: int32 export line numbers, one per written row; the caller deletes it."""

    def reject(self, reason: str) -> Conversion:
        self.status, self.reason, self.rows_written = Status.REJECTED, reason, 0
        return self


Progress = Callable[[int], None]


def convert_export(
    source: Path,
    destination: Path | None,
    options: ConvertOptions,
    progress: Progress | None = None,
) -> Conversion:
    """Convert ``source``; write programs.txt to ``destination`` when given and the file is accepted."""
    result = Conversion(str(source), options=options)
    try:
        mapping = options.mapping
        # The column path reads a batch ahead (the first when the reader opens): the reader's findings wait for
        # their place.  The reference reads no row ahead, as it always has.
        held = _HeldFindings(result.findings, holding=options.column_path)
        reader = ExportReader(
            source, limits=options.read_limits, on_finding=held.add,
            delimiter=options.delimiter or (mapping.delimiter if mapping else None),
            encoding=options.encoding or (mapping.encoding if mapping else None),
            header=mapping is None or mapping.header, quoting=mapping is None or mapping.quoting,
            batch_rows=_BATCH if options.column_path else 1,
        )  # fmt: skip
        with reader:
            failed: list[ExportError] = []
            batches = _guarded(reader.batches(), failed)
            batch = next(batches)  # the reader has read it, and made sure there is one
            held.release(batch.lines[0])  # what the reader left out above it, in its place if the file is refused
            result.info = reader.info
            result.findings.extend(reader.findings)
            if _names_the_layout(mapping, batch.records[0]):
                result.findings.add(info(batch.lines[0], None, "header_row_skipped", _HEADER_ROW_SKIPPED))
                rest = Batch(batch.lines[1:], batch.records[1:]) if len(batch.lines) > 1 else next(batches, None)
                if rest is None:
                    held.release(None)
                    if failed:
                        raise failed[0]
                    return result.reject("the file holds only a header row naming the record layout's fields")
                batch = rest
                held.release(batch.lines[0])
            first = batch.records[0]
            header = reader.header or _headerless_names(options.mapping, first)
            chosen = _choose_mapping(header, options.mapping, result)
            if chosen is None:
                return result
            mapping, match = chosen
            named = _positional_names(mapping, header)
            converter = RowConverter(
                mapping, match, named, options.output.layout, today=options.today, code_table=options.code_table,
                person_required=not options.records_only,
            )  # fmt: skip
            wrong = converter.wrong_file(first)
            if wrong is not None:
                return result.reject(wrong)
            staging_dir = destination.parent if destination is not None else None
            helper = options.staging_process
            if helper is None:
                helper = options.column_path and staging_process.wanted(_size_on_disk(source))
            with _Staging(staging_dir, options.output, helper=helper) as staged:
                _first_pass(chain((batch,), batches), converter, staged, result, progress, held, failed)
                staged.end_first_pass()
                _count_lines(reader.counts, result)
                _second_pass(staged, result)
                _apply_reject_policy(result)
                if result.status is not Status.REJECTED and _sites_blank(mapping, staged, result.options):
                    result.reject(_no_site(mapping, blank=True))
                if result.status is not Status.REJECTED and destination is not None:
                    if options.keep_source_lines:
                        result.source_lines = staged.save_source_lines(destination)
                    staged.publish(destination)
                    result.output = destination
    except ExportError as exc:
        result.reason_code = exc.code
        return result.reject(str(exc))
    return result


def _size_on_disk(source: Path) -> int:
    with suppress(OSError):
        return source.stat().st_size
    return 0


def _count_lines(counts: ReadCounts, result: Conversion) -> None:
    """Every physical line in the totals: rows the reader left out for their encoding (each with its row
    error) are read and rejected rows; blank lines are counted apart."""
    result.rows_read += counts.damaged
    result.rows_rejected += counts.damaged
    result.rows_blank = counts.blank
    result.lines_read = counts.lines


_HEADER_ROW_SKIPPED = (
    "this line names the record layout's fields, a header the layout does not have: it was skipped, not read as a row"
)


def _names_the_layout(mapping: Mapping | None, first: list[str]) -> bool:
    """Whether a headerless layout's first line is a header after all (some tools add one on download)."""
    if mapping is None or mapping.header or not mapping.field_names:
        return False
    width = min(len(first), len(mapping.field_names))
    said = [value.strip().casefold() for value in first[:width]]
    return width >= 3 and said == [name.casefold() for name in mapping.field_names[:width]]


def _positional_names(mapping: Mapping, header: list[str]) -> list[str]:
    """The names findings give the columns: the header's labels, or ``field 1`` ... when the mapping reads
    every column by position and so never checked that the first line is a header: were it a student's row
    (``_data_as_header`` cannot tell from every row), its labels would be that student's values."""
    sources = [source for target in mapping.columns for source in mapping.sources(target)]
    if mapping.header and sources and all(isinstance(source, int) for source in sources):
        return [f"field {n}" for n in range(1, len(header) + 1)]
    return header


def _headerless_names(mapping: Mapping | None, first: list[str]) -> list[str]:
    """What a headerless file's fields are called: the mapping's record layout, or ``field 1`` ... as wide
    as the widest row the mapping accepts, else as the first row."""
    assert mapping is not None  # a headerless read happens only for a mapping that says so
    if mapping.field_names:
        return list(mapping.field_names)
    return [f"field {n}" for n in range(1, max(mapping.field_counts, default=len(first)) + 1)]


def _choose_mapping(
    header: list[str], mapping: Mapping | None, result: Conversion
) -> tuple[Mapping, ColumnMatch] | None:
    optional = PERSON_FIELDS if result.options.records_only else frozenset()
    if mapping is not None and _data_as_header(mapping, header):
        result.reject(
            "the mapping reads columns by position and expects a header row, but the first line holds a date, or "
            "an ID of digits, where the mapping reads them, as a student's row does: the first student would be "
            "taken for the header and left out. If the file has no header row, set header = false in the mapping"
        )
        return None
    if mapping is not None:
        match = match_columns(mapping, header, optional)
        result.profile = mapping.name
        if not match.usable:
            result.reject(_unusable_header(mapping, match, len(header)))
            return None
    else:
        detection = detect_profile(header, optional)
        if detection is None:
            result.reject(_undetected(header, optional))
            return None
        mapping, match = detection.mapping, detection.match
        result.profile, result.profile_detected = mapping.name, True
        if result.options.records_only and mapping.name not in ILLUMINATE_PROFILES:
            result.reject(_not_illuminate(mapping.name))
            return None
    sited = result.options.output.layout.index(Field.SITE_ID) is not None
    if result.options.records_only and sited and Field.SITE_ID not in {*match.positions, *mapping.constants}:
        result.reject(_no_site(mapping))
        return None
    # A field given as a constant reads no code, so it needs no table (one school's file: site_id = "101").
    untabled = [t for t in mapping.required_values if not mapping.values.get(t) and Field(t) not in mapping.constants]
    if untabled:
        result.reject(_lacking_tables(mapping, untabled))
        return None
    return (mapping, match) if _fits_the_file(header, mapping, match, result) else None


def _fits_the_file(header: list[str], mapping: Mapping, match: ColumnMatch, result: Conversion) -> bool:
    """Whether the chosen mapping can be trusted with this file: the columns it names and the file lacks, a
    column it reads twice, a constant over a column the file has, a skip rule with nothing to read.  A
    refusal goes into ``result`` (False); the rest are findings."""
    absent = _absent(mapping, match, result.options)
    # A report of Illuminate's records may hold the key columns alone (README); its sites are _no_site's.
    vital = [f for f in absent if f in _VITAL and not result.options.records_only]
    if vital:
        result.reject(_vital_absent(mapping, vital))
        return False
    shown = _positional_names(mapping, header)  # what messages call the columns
    shared = _shared(match)
    ending = [pair for pair in shared if pair[0] in _ENDS and pair[1] in _STARTS]
    if ending:
        result.reject(_ends_on_start(shown, match, ending))
        return False
    for first, second in shared:
        if {first, second} not in _SHARED_ON_PURPOSE:
            result.findings.add(_reused(mapping, shown, match, first, second))
    for target in absent:
        result.findings.add(_column_absent(mapping, target, records_only=result.options.records_only))
    for target, at in _overridden_columns(mapping, header).items():
        result.findings.add(  # info: a district may mean it every night, and has no way to say so
            info(
                1 if mapping.header else None,
                shown[at],
                "constant_over_column",
                f"the mapping gives {COLUMN_BY_FIELD[target].label} as a constant, so this file's column for it, "
                f"which {mapping.extends} reads, is not read: every row is sent with the constant. Remove the "
                "constant if the column should be read",
            )
        )
    own_rules = _own_skip_columns(mapping)
    typos = [column for column in match.unmatched_skip_columns if column in own_rules]
    if typos:
        result.reject(
            f"the mapping's skip rule reads {' and '.join(map(_source, typos))}, which this file lacks: the rows it "
            "should leave out (deleted or withdrawn records) would be sent. Correct the rule's column, or remove "
            "the rule if the export no longer carries it"
        )
        return False
    for column in map(_source, match.unmatched_skip_columns):
        result.findings.add(
            info(
                1 if mapping.header else None,  # line 1 is the header, or a headerless file's first row
                column,
                "skip_column_absent",
                f"no column '{column}' in this file: its skip rule does nothing",
            )
        )
    return True


#: Fields whose column, named but absent, would change records rather than leave a column empty: without
#: the end dates every record is sent open (reopening what the SIS has exited); without the sites every key
#: loses a quarter of itself.
_VITAL = (Field.PROGRAM_END_DATE, Field.SITE_ID)


def _absent(mapping: Mapping, match: ColumnMatch, options: ConvertOptions) -> list[Field]:
    """The fields programs.txt writes whose column the mapping names and the file lacks: every vital one, and
    of the rest those the district's own mapping names (a built-in profile lists columns many exports leave
    out, and saying so every night would teach the clerk to skip warnings).  A field given as a constant, or
    whose column is there more than once (said as ambiguous), is not absent; a derived Academic Year neither;
    nor the last three columns of a past programs.txt in the 12-column layout, which never had them; nor the
    program dates of an export dated by eligibility alone (no Program Start Date column either: Aeries' ESD
    and EED without PSD and PED), whose exits are its eligibility end dates."""
    base, own = base_profile(mapping), not is_built_in(mapping)
    found = set(match.positions) | set(mapping.constants)
    past_legacy = (mapping.extends or mapping.name) in ILLUMINATE_PROFILES and not found - set(LEGACY.fields)
    by_eligibility = Field.PROGRAM_START_DATE not in found and Field.ELIGIBILITY_START_DATE in found
    absent = []
    for target in options.output.layout.fields:
        if not mapping.sources(target) or target in match.positions or target in match.ambiguous:
            continue
        if (past_legacy and target not in LEGACY.fields) or (by_eligibility and target is Field.PROGRAM_END_DATE):
            continue
        if target in mapping.constants or (target is Field.ACADEMIC_YEAR and mapping.academic_year.derive):
            continue
        written_here = own and (base is None or base.sources(target) != mapping.sources(target))
        if target in _VITAL or written_here:
            absent.append(target)
    return absent


_STARTS = frozenset({Field.PROGRAM_START_DATE, Field.ELIGIBILITY_START_DATE})
_ENDS = frozenset({Field.PROGRAM_END_DATE, Field.ELIGIBILITY_END_DATE})
#: Fields a district may read from one column on purpose: the state ID used as the local one, and a program
#: whose eligibility runs exactly as long as the enrolment.
_SHARED_ON_PURPOSE = (
    {Field.IMPORT_STUDENT_ID, Field.STATE_STUDENT_ID},
    {Field.PROGRAM_START_DATE, Field.ELIGIBILITY_START_DATE},
    {Field.PROGRAM_END_DATE, Field.ELIGIBILITY_END_DATE},
)


def _shared(match: ColumnMatch) -> list[tuple[Field, Field]]:
    """Pairs of fields the match reads from one column, each as (later field, earlier field) in programs.txt
    order: a mapping that names a column twice, by a typo or a copied line."""
    first_at: dict[int, Field] = {}
    pairs = []
    for column in COLUMNS:
        at = match.positions.get(column.field)
        if at is None:
            continue
        if at in first_at:
            pairs.append((column.field, first_at[at]))
        else:
            first_at[at] = column.field
    return pairs


def _column_name(header: Sequence[str], match: ColumnMatch, target: Field) -> str:
    return f"'{header[match.positions[target]]}'"


def _ends_on_start(header: Sequence[str], match: ColumnMatch, pairs: list[tuple[Field, Field]]) -> str:
    said = "; ".join(
        f"{COLUMN_BY_FIELD[end].label} from the same column as {COLUMN_BY_FIELD[start].label} "
        f"({_column_name(header, match, end)})"
        for end, start in pairs
    )
    return (
        f"the mapping reads {said}: every record would be sent as ended on the day it started. Correct the "
        "mapping: the end date has a column of its own"
    )


def _reused(mapping: Mapping, header: Sequence[str], match: ColumnMatch, later: Field, earlier: Field) -> Finding:
    return warning(
        1 if mapping.header else None,
        header[match.positions[later]],
        "column_reused",
        f"the mapping reads both {COLUMN_BY_FIELD[earlier].label} and {COLUMN_BY_FIELD[later].label} from "
        f"{_column_name(header, match, later)}: every row sends the same value in both. Correct the mapping "
        "if one of them has a column of its own",
    )


def _overridden_columns(mapping: Mapping, header: Sequence[str]) -> dict[Field, int]:
    """The fields a mapping that extends a profile gives as constants while the file has the column the
    profile reads for them: a constant written for another export (``site_id = ""`` for a report without
    sites) silently discarding a column this one has.  A headerless file's "header" is its record layout's
    names (``field_names``), never a row of data, so its columns are named too."""
    base = base_profile(mapping)
    if base is None or not mapping.constants:
        return {}
    found = match_columns(base, header).positions
    return {target: found[target] for target in mapping.constants if target in found}


def _own_skip_columns(mapping: Mapping) -> set[str | int]:
    """The columns of the skip rules the district wrote itself, not those of the profile it extends: a
    profile's rule (Aeries' DEL) meets many exports without its column, a district's own rule is a typo."""
    if is_built_in(mapping):
        return set()
    base = base_profile(mapping)
    inherited = set(base.skip) if base is not None else set()
    return {rule.column for rule in mapping.skip if rule not in inherited}


def _column_absent(mapping: Mapping, target: Field, *, records_only: bool) -> Finding:
    if records_only and target is Field.PROGRAM_END_DATE:
        harm = "every record is learnt as open, and a reconcile would take the closed ones for reopened"
    else:
        harm = "every row is sent without one"
    return warning(
        1 if mapping.header else None,
        None,
        "column_absent",
        f"the mapping names {_named(mapping, target)} for {COLUMN_BY_FIELD[target].label}, and this file has no "
        f"such column: {harm}. Correct the mapping, or, if the file has no such column, say so under "
        f'[constants]: {target.value} = ""',
    )


def _named(mapping: Mapping, target: Field) -> str:
    return " or ".join(f"'{n}'" if isinstance(n, str) else f"field {n}" for n in mapping.sources(target))


def _vital_absent(mapping: Mapping, fields: list[Field]) -> str:
    """Why a file without its end-date or site column was refused, and the one line that accepts it when the
    feed truly has none."""
    harm = {
        Field.PROGRAM_END_DATE: "every record would be sent open, reopening any the SIS has exited",
        Field.SITE_ID: "every record would be sent without its site, which is part of its key",
    }
    said = "; ".join(f"no {COLUMN_BY_FIELD[f].label} column ({_named(mapping, f)}): {harm[f]}" for f in fields)
    return (
        f"the file has {said}. Is this the right export, or was the column renamed? Add it back or correct "
        f"the mapping; if the feed truly has no such column, say so {_in_a_mapping(mapping, fields)}"
    )


def _in_a_mapping(mapping: Mapping, fields: Sequence[Field]) -> str:
    """Where to say that a feed has no such column: in the district's own mapping, or in one that extends
    the built-in profile that was used."""
    constants = ", ".join(f'{f.value} = ""' for f in fields)
    if mapping.extends is None and not is_built_in(mapping):
        return f"in your mapping, under [constants]: {constants}"
    return f'in a mapping: extends = "{mapping.extends or mapping.name}" and, under [constants], {constants}'


_DATED = (Field.BIRTH_DATE, Field.PROGRAM_START_DATE, Field.ELIGIBILITY_START_DATE, Field.PROGRAM_END_DATE)


def _data_as_header(mapping: Mapping, header: Sequence[str]) -> bool:
    """Whether a mapping that reads by position takes a student's row for its header: the cell it reads a
    date from is a date (in any form the converter reads), or the one it reads the student ID from holds more
    digits than letters.  A header's labels are neither; any other cell may be (a census-date column).  A mapping
    by labels needs no such test: a row of data matches none of its labels."""
    if not mapping.header:
        return False

    def cell(target: Field) -> str | None:
        at = next((s for s in mapping.sources(target) if isinstance(s, int)), None)
        return header[at - 1].strip() if at is not None and at <= len(header) else None

    dates = (cell(target) for target in _DATED)
    if any(text and parse_date(text, mapping.dates.order).day is not None for text in dates):
        return True
    student = cell(Field.IMPORT_STUDENT_ID) or ""  # an ID is mostly digits (S-042), a label mostly letters
    return sum(map(str.isdigit, student)) > sum(map(str.isalpha, student))


def _undetected(header: list[str], optional: frozenset[Field]) -> str:
    """Why no profile was chosen.  Only exports with a header are detected; a CALPADS extract (no header,
    its first field a record type, a code safe to name) is told how to name its profile."""
    kind = header[0].strip().upper() if header else ""
    if CALPADS_SPRG.records is not None and kind in CALPADS_SPRG.records.values:
        return (
            f"this looks like a CALPADS {kind} extract, which has no header row and is never detected: give a "
            f'mapping with extends = "{CALPADS_SPRG.name}" and the district\'s school codes (--mapping, or a '
            "feed's [mapping] table; README: CALPADS SPRG)"
        )
    detected = ", ".join(name for name, profile in PROFILES.items() if profile.header)
    nearest, nearest_match = closest_profile(header, optional)
    if nearest_match.missing_required or not nearest_match.ambiguous:
        problem = f"lacks {', '.join(_labels(nearest_match.missing_required))}"
    else:  # every column is there, some more than once: say which (header labels, not student data)
        repeated = "; ".join(
            f"{', '.join(labels)} for {field.value}" for field, labels in nearest_match.ambiguous.items()
        )
        problem = f"finds columns more than once ({repeated}): remove the repeated column from the export"
    return (
        f"the header matches no known program export (profiles: {detected}); the closest, {nearest.name}, "
        f"{problem}. Is this the right file? If it is, describe its columns in a mapping (a --mapping file, or "
        "the feed config's [mapping] table)"
    )


def _no_site(mapping: Mapping, *, blank: bool = False) -> str:
    """Why a report of Illuminate's records without a site was refused: the site is a quarter of every key.
    ``blank``: the column is there but empty on every row (``_sites_blank``), which does the same harm."""
    labels = " or ".join(map(_source, mapping.sources(Field.SITE_ID))) or "Site ID"
    problem, fix = (
        ("'s Site ID column is blank on every row", "Include the records' sites in Illuminate's report")
        if blank
        else (f" has no Site ID column ({labels})", "Add the column to Illuminate's report")
    )
    return (
        f"the report{problem}: a record's key is its student, program, start date and site, so every record "
        f"would be learnt without its site and match nothing the feed sends. {fix}; if the feed's records truly "
        f"carry no site (Site ID is optional outside California), say so {_in_a_mapping(mapping, [Field.SITE_ID])}"
    )


def _sites_blank(mapping: Mapping, staged: _Staging, options: ConvertOptions) -> bool:
    """Whether a report of Illuminate's records has a Site ID column that is blank on every row written: the
    same harm as no column (``_no_site``), unless the mapping says the feed's records carry no site."""
    sited = options.output.layout.index(Field.SITE_ID) is not None
    return options.records_only and sited and not staged.sited and Field.SITE_ID not in mapping.constants


def _not_illuminate(profile: str) -> str:
    """Why a report meant to say what Illuminate holds (a seed, a reconcile) was refused: its header is a SIS
    export's.  Seeded, it would teach the ledger what the SIS says instead, and every check would pass."""
    return (
        f"the header is a SIS export's (profile {profile}), not a report of Illuminate's own records: seed or "
        "reconcile from Illuminate's report (Custom Reporting, Students: Programs) or from programs.txt files "
        f"uploaded to it. If this file really is what Illuminate holds, seed it from the command line naming "
        f"its shape (--profile {profile}, or a --mapping)"
    )


def _lacking_tables(mapping: Mapping, tables: Sequence[str]) -> str:
    named = " and ".join(f"[values.{t}]" for t in tables)
    where = f"add {named} to it"
    if is_built_in(mapping):
        where = (
            f"give a mapping (a --mapping file, or a feed's [mapping] table) with "
            f'extends = "{mapping.name}" and {named}'
        )
    return (
        f"mapping '{mapping.name}' needs a {named} table to turn this export's codes into the district's own "
        f"(a CALPADS school code is never an Illuminate Site ID): {where}, with an entry for each code"
    )


def _source(column: str | int) -> str:
    return f"field {column}" if isinstance(column, int) else column


def _labels(fields: tuple[Field, ...]) -> list[str]:
    return [COLUMN_BY_FIELD[f].label for f in fields]


def _unusable_header(mapping: Mapping, match: ColumnMatch, width: int) -> str:
    parts = []
    if match.missing_required:
        wanted = "; ".join(
            f"{COLUMN_BY_FIELD[f].label} ({' or '.join(map(_source, mapping.sources(f))) or 'not mapped'})"
            for f in match.missing_required
        )
        parts.append(f"the file has no column for {wanted}")
    if match.records_unmatched and mapping.records is not None:
        parts.append(f"no single column {_source(mapping.records.column)} says each record's kind")
    for target, names in match.ambiguous.items():
        parts.append(f"{target.value} matches several columns ({', '.join(names)}); name one exactly")
    if width == 1 and mapping.header:
        advice = (
            "The header reads as one column: is the delimiter right? A mapping's delimiter setting, or the "
            "file's own, must be the one between its columns"
        )
    elif is_built_in(mapping):
        advice = (
            f"Is this the right file, and is it a {mapping.name} export? Leave the profile out to have the shape "
            f'detected, or, if only the labels differ, describe them in a mapping (extends = "{mapping.name}" '
            "and [columns])"
        )
    else:
        advice = "Is this the right file? If it is, fix the mapping's column names"
    return f"mapping '{mapping.name}' does not fit this file: " + "; ".join(parts) + f". {advice}"


def _first_pass(
    batches: Iterator[Batch],
    converter: RowConverter,
    staged: _Staging,
    result: Conversion,
    progress: Progress | None,
    held: _HeldFindings,
    failed: list[ExportError],
) -> None:
    """Convert every row, a batch at a time: the rows the column path (``columns.py``) claims in one go, the
    others through the per-row reference in their place, so findings and state see rows in line order.
    ``failed`` holds the damage that ended ``batches`` (see ``_guarded``), raised once the rows before it are
    converted."""
    findings, convert = result.findings, converter.convert
    newline = result.options.output.newline
    # The reference (column path off) takes one row at a time and reads none ahead, as it always has.
    columns = ColumnConverter(converter, newline) if result.options.column_path else None
    read = rejected = skipped = 0
    said = _PROGRESS_EVERY
    try:
        for batch in batches:
            size = len(batch.lines)
            converted = columns.convert(batch) if columns is not None else Converted.none_claimed(size)
            texts, keys, lines, slow, block, folded = converted
            if slow or held:
                texts, keys, lines = [], [], []
                taken = 0
                for k, at in enumerate(slow):
                    upto = at - k  # claimed rows before this one
                    if upto > taken:
                        texts += converted.texts[taken:upto]
                        keys += converted.keys[taken:upto]
                        lines += converted.lines[taken:upto]
                        taken = upto
                    line, fields = batch.lines[at], batch.records[at]
                    held.release(line)
                    outcome, text, key, found = convert(line, fields)
                    if found:
                        findings.extend(found)
                    if outcome is WRITTEN:
                        texts.append(text)
                        keys.append(key)
                        lines.append(line)
                    elif outcome is Outcome.REJECTED:
                        rejected += 1
                    else:
                        skipped += 1
                texts += converted.texts[taken:]
                keys += converted.keys[taken:]
                lines += converted.lines[taken:]
                held.release(None)
                block = newline.join(texts) + newline if texts else ""
                folded = False
            staged.add(block, keys, lines, folded)
            read += size
            while progress is not None and said <= read:
                progress(said)
                said += _PROGRESS_EVERY
        held.release(None)  # rows left out after the last row read
    finally:
        held.holding = False
    if failed:  # the rows before the damage were converted, as they would have been one at a time
        raise failed[0]
    written = read - rejected - skipped
    result.rows_read, result.rows_valid, result.rows_written = read, written, written
    result.rows_rejected, result.rows_skipped = rejected, skipped
    stripped = converter.id_shape.finding(converter.names[Field.IMPORT_STUDENT_ID])
    if stripped is not None:
        result.findings.add(stripped)
    if converter.zeros_restored:
        result.findings.add(
            warning(
                converter.first_zero_restored_line,
                None,
                "leading_zeros_restored",
                f"{converter.zeros_restored} Import Student ID(s) were shorter than {converter.id_width} digits "
                "(Excel strips leading zeros) and were padded back; check one against the SIS",
            )
        )


def _guarded(batches: Iterator[Batch], failed: list[ExportError]) -> Iterator[Batch]:
    """``batches`` until damage the reader finds part-way (``failed``): the reader hands out the rows read
    before the damage first, and they are converted and count, as they would one at a time."""
    try:
        yield from batches
    except ExportError as exc:
        failed.append(exc)


class _HeldFindings:
    """The reader's findings (rows it leaves out), passed on at once, or held while a batch is read ahead and
    passed on at their place in line order: after the findings of every row above them."""

    def __init__(self, log: FindingLog, *, holding: bool) -> None:
        self._log = log
        self._held: list[Finding] = []
        self.holding = holding

    def add(self, finding: Finding) -> None:
        if self.holding:
            self._held.append(finding)
        else:
            self._log.add(finding)

    def __bool__(self) -> bool:
        return bool(self._held)

    def release(self, line: int | None) -> None:
        """Pass on the held findings of lines before ``line`` (all of them with None)."""
        held = self._held
        while held and (line is None or (held[0].line or 0) < line):
            self._log.add(held.pop(0))


def _second_pass(staged: _Staging, result: Conversion) -> None:
    with staged.rows() as rows:
        size = os.fstat(rows.fileno()).st_size - rows.tell()
        verdict = staged.duplicates.resolve(rows, result.options.output.layout, result.findings, size)
    if not verdict.drop:
        return
    result.rows_merged += verdict.merged
    result.rows_rejected += verdict.rejected
    result.rows_written -= len(verdict.drop)
    result.rows_valid -= len(verdict.drop)
    staged.dropped = verdict.drop


def converted_rows(conversion: Conversion) -> Iterator[tuple[int, list[str]]]:
    """The written programs.txt read back as ``(export line, fields)``: what the ledger plans and commits.

    Needs a conversion made with ``keep_source_lines``; walk it as often as needed.
    """
    if conversion.output is None or conversion.source_lines is None:
        raise ValueError("the conversion wrote no programs.txt with source lines")
    header = conversion.options.output.header
    newline = conversion.options.output.newline
    with conversion.output.open(encoding="utf-8", newline="") as rows, conversion.source_lines.open("rb") as lines:
        if header:
            rows.readline()
        numbers = array("i")
        for text in rows:
            if not numbers:
                with suppress(EOFError):
                    numbers.fromfile(lines, _LINE_CHUNK)
                numbers.reverse()
            yield numbers.pop(), text[: -len(newline)].split("\t")


def _apply_reject_policy(result: Conversion) -> None:
    considered = result.rows_read - result.rows_skipped
    if considered == 0 and result.rows_skipped:
        result.reject(
            f"all {result.rows_skipped:,} rows are ones the mapping skips (its skip rules, such as SPRG's D delete "
            "transactions): nothing would reach Illuminate. Is this the right file?"
        )
    elif considered == 0:
        result.reject("the file has a header but no data rows")
    elif result.rows_written == 0:
        result.reject(f"none of the {considered} rows is valid; nothing would reach Illuminate")
    elif result.rows_rejected / considered > result.options.max_reject_share:
        share = result.rows_rejected / considered
        result.reject(
            f"{result.rows_rejected} of {considered} rows ({share:.1%}) have errors, more than the "
            f"{result.options.max_reject_share:.0%} allowed: the export looks damaged, so nothing was sent. "
            "Fix the rows listed in the report, or raise the limit if this is expected"
        )
    elif result.rows_rejected:
        result.status = Status.PARTIAL
    else:
        result.status = Status.OK


class _Staging:
    """programs.txt rows written to a temporary file beside the destination, published by an atomic rename.

    ``helper``: the rows are written, and the duplicate finder's pass 1 runs, in a second process
    (``staging_process.py``) until ``end_first_pass``."""

    def __init__(self, directory: Path | None, output: OutputFormat, *, helper: bool = False) -> None:
        self.newline = output.newline
        self._header = render_header(output) if output.header else ""
        self._dir = directory
        self._file: IO[str] | None = None
        self._positions = key_positions(output.layout)
        self._helper: staging_process.StagingProcess | None = None
        self._spool: IO[bytes] | None = None
        self._wants_helper = helper
        self._duplicates = None if helper else DuplicateFinder()
        self.dropped = RowSet(0)
        self.sited = False
        """Whether a row staged so far has a Site ID (the key's last part)."""

    def __enter__(self) -> _Staging:
        fd, name = tempfile.mkstemp(prefix=".programs-", suffix=".staged", dir=self._dir)
        self.path = Path(name)
        try:
            self._file = os.fdopen(fd, "w", encoding="utf-8", newline="", buffering=1 << 20)
            self._file.write(self._header)
            if self._wants_helper:
                self._start_helper()
        except BaseException:  # a full disk, or Ctrl-C / SIGTERM this early: __exit__ will not run
            self.__exit__()
            raise
        return self

    def _start_helper(self) -> None:
        assert self._file is not None
        self._spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the finder, or in __exit__
        try:
            self._helper = staging_process.StagingProcess(self._file, self._spool, self._positions, self.newline)
        except OSError:  # no process can be started here (a sandbox, a limit): the same work, at home
            self._spool.close()
            self._spool, self._duplicates = None, DuplicateFinder()

    def add(self, block: str, keys: list[RecordKey], source_lines: list[int], folded: bool = False) -> None:
        """Stage a batch of written rows: their programs.txt lines (``block``, each with its newline), record
        keys and export lines.  One write a batch: the rows were joined for the column path's checks."""
        assert self._file is not None
        if self._helper is not None:
            self._helper.send(block, source_lines, folded=folded)
        else:
            self._file.write(block)
            self.duplicates.add(keys, source_lines, folded=folded)
        if not self.sited:  # a C-level test of the batch, until the first site
            self.sited = any(map(_SITE_OF, keys))

    def end_first_pass(self) -> None:
        """Every row is staged: with a second process, wait for it and take over what pass 1 learnt."""
        if self._helper is None or self._spool is None:  # in process, or taken over already
            return
        learnt = self._helper.finish()
        self._duplicates, self._spool = DuplicateFinder(self._spool, learnt=learnt), None

    @property
    def duplicates(self) -> DuplicateFinder:
        """The duplicate finder, once pass 1 is over when a second process runs it."""
        assert self._duplicates is not None, "pass 1 runs in the staging process until end_first_pass"
        return self._duplicates

    def __exit__(self, *_: object) -> None:
        try:
            if self._helper is not None:
                self._helper.close()
            if self._spool is not None:
                self._spool.close()
            if self._file is not None:
                with suppress(OSError):  # a full disk fails the last flush too: the rows go with the file below
                    self._file.close()
            if self._duplicates is not None:
                self._duplicates.close()
        finally:
            self.path.unlink(missing_ok=True)

    def rows(self) -> BinaryIO:
        """The staged file positioned after the header: its lines are the rows, as UTF-8 with line ends.

        Bytes, not text: pass 2 picks a few suspect rows out of a million, and only those need decoding.
        """
        assert self._file is not None
        self._file.flush()
        staged = self.path.open("rb")
        if self._header:
            staged.readline()
        return staged

    def save_source_lines(self, destination: Path) -> Path:
        """The export line of every row still staged, beside ``destination`` (see ``converted_rows``)."""
        fd, name = tempfile.mkstemp(prefix=f".{destination.name}-", suffix=".lines", dir=destination.parent)
        with os.fdopen(fd, "wb") as out:
            kept = self.dropped.kept()
            for lines in self.duplicates.source_lines():
                array("i", compress(lines, islice(kept, len(lines)))).tofile(out)
        return Path(name)

    def publish(self, destination: Path) -> None:
        """Move the staged file into place without the ``dropped`` rows; staged beside the destination, so the
        rename is atomic.  Dropping here rather than when the duplicates are judged copies the file once, and
        not at all when the file as a whole is rejected."""
        assert self._file is not None
        self._file.close()
        self._file = None
        if self.dropped:
            self._copy_without_dropped()
        self.path.replace(destination)

    def _copy_without_dropped(self) -> None:
        """Rewrite the staged file without the rows in ``dropped``: C-level copying, one flag a row."""
        fd, name = tempfile.mkstemp(prefix=".programs-", suffix=".staged", dir=self._dir)
        with os.fdopen(fd, "wb", buffering=1 << 20) as kept, self.path.open("rb") as staged:
            if self._header:
                kept.write(staged.readline())
            kept.writelines(compress(staged, self.dropped.kept()))
        Path(name).replace(self.path)
